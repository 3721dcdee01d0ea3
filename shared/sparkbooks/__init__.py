"""sparkbooks: helpers behind executable playbooks for DGX Spark, DGX Station and CPU laptops.

The package has two layers. The **engine** — catalog, parameters, session, runner, render,
notebook, sources, services, timing, exceptions, settings, log, fileio, hardware, accel, doctor,
cli — runs and renders playbooks and is imported here, light (no pandas, torch, nbformat).
The **domains** — one per workflow family — use only the engine's public API and are imported
on first use: ``sb.topics`` loads :mod:`sparkbooks.topics` the first time it is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import accel, catalog, exceptions, hardware, log, parameters, services, session, sources, timing
from .accel import AccelStatus, enable, probe_gpu
from .catalog import Playbook
from .exceptions import (
    AcceleratorUnavailableError,
    ChecksumMismatchError,
    ContextLengthError,
    ImageInputError,
    InfeasibleError,
    InputError,
    MetadataError,
    MissingDependencyError,
    ModelNotServedError,
    NotebookExecutionError,
    ParameterError,
    PlaybookNotFoundError,
    RankFailedError,
    RendezvousError,
    RequestTimeoutError,
    RunLockedError,
    ServerDiedError,
    ServerError,
    ServerUnreachableError,
    ServiceError,
    ServiceExitError,
    ServiceStartError,
    SessionError,
    SolverError,
    SourceError,
    SparkbooksError,
    VisionUnsupportedError,
)
from .hardware import Hardware, detect
from .services import Service
from .session import Session, active, begin, current, record
from .settings import settings
from .timing import Stopwatch

__version__ = "0.1.0"

#: Engine modules besides those imported above, loaded on first use (they pull in nbformat, papermill, jinja2).
ENGINE_LAZY = ("cli", "doctor", "fileio", "notebook", "render", "runner")
#: Domain modules and packages, loaded on first use.
DOMAINS = ("cardinality", "checkpoints", "chunking", "claims", "cvar", "collectives", "datasets", "distributed", "documents", "embeddings", "finetune", "intervals", "kg", "llm", "memory", "model_specs",
           "nvidia_portfolio", "ocr", "portfolio", "portfolio_backtest", "pretrain", "quant", "quant_eval", "rag", "robot", "singlecell", "topic_eval", "topics", "training_memory", "vlm",
           "workloads")

__all__ = sorted([
    "AccelStatus", "AcceleratorUnavailableError", "ChecksumMismatchError", "ContextLengthError", "Hardware",
    "ImageInputError", "InfeasibleError", "InputError", "MetadataError", "MissingDependencyError",
    "ModelNotServedError", "NotebookExecutionError", "ParameterError", "Playbook", "PlaybookNotFoundError", "RankFailedError", "RendezvousError",
    "RequestTimeoutError", "RunLockedError", "ServerDiedError", "ServerError", "ServerUnreachableError", "Service",
    "ServiceError", "ServiceExitError", "ServiceStartError", "Session", "SessionError", "SolverError", "SourceError",
    "SparkbooksError", "Stopwatch", "VisionUnsupportedError", "accel", "active", "begin", "catalog", "current",
    "detect", "enable", "exceptions", "hardware", "log", "parameters", "probe_gpu", "record", "services", "session",
    "settings", "sources", "timing", *ENGINE_LAZY, *DOMAINS,
])


def __getattr__(name: str) -> Any:
    if name in DOMAINS or name in ENGINE_LAZY:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'sparkbooks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
