"""sparkbooks: helpers behind executable playbooks for DGX Spark, DGX Station and CPU laptops.

The package has two layers, and the folder shows them. **Files at the top are the engine** —
catalog, parameters, session, runner, render, notebook, sources, corpora, services, timing, log,
fileio, exceptions, settings, hardware, accel, devices (device_probe, device_report), claims (evidence,
claim_checks), doctor, intervals, lazy, cli, run_isolation — which runs and renders
playbooks and is imported here, light (no pandas, torch, nbformat). **Every folder is a field**
(finance, singlecell, llm, documents, quant, fit, training, retrieval, topics, dataframes, robot):
it uses only the engine's public names and other fields' public modules, and is imported on first
use: ``sb.finance`` loads :mod:`sparkbooks.finance` the first time it is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import (accel, catalog, claims, devices, exceptions, hardware, log, parameters, services, session, sources,
               timing)
from .accel import AccelStatus, enable, probe_gpu
from .catalog import Playbook
from .claims import claim
from .exceptions import (
    AcceleratorUnavailableError,
    CheckpointMismatchError,
    ChecksumMismatchError,
    ContextLengthError,
    DatabaseUnreachableError,
    DocumentUnreadableError,
    ImageInputError,
    IndexMismatchError,
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
    TrainingDivergedError,
    UnsafeQueryError,
    VisionUnsupportedError,
)
from .hardware import Hardware, detect
from .services import Service
from .session import Session, active, begin, current, record
from .settings import settings
from .timing import Stopwatch

__version__ = "0.1.0"

#: Engine modules besides those imported above, loaded on first use (they pull in nbformat, papermill, jinja2).
ENGINE_LAZY = ("claim_checks", "cli", "corpora", "device_probe", "device_report", "doctor", "evidence", "fileio",
               "intervals", "lazy", "notebook", "render", "run_isolation", "runner")
#: Fields: one folder each, loaded on first use (``sb.finance.cvar``, ``sb.retrieval.rag``).
FIELDS = ("dataframes", "documents", "finance", "fit", "llm", "quant", "retrieval", "robot", "singlecell", "topics",
          "training")
#: Every public error of the tree (:mod:`sparkbooks.exceptions`), importable from here.
ERRORS = tuple(name for name in exceptions.__all__ if name != "require")
__all__ = sorted([
    "AccelStatus", "ERRORS", "Hardware", "Playbook", "Service", "Session", "Stopwatch", "accel", "active", "begin",
    "catalog", "claim", "claims", "current", "detect", "devices", "enable", "exceptions", "hardware", "log",
    "parameters", "probe_gpu", "record", "services", "session", "settings", "sources", "timing", *ERRORS,
    *ENGINE_LAZY, *FIELDS,
])


def __getattr__(name: str) -> Any:
    if name in FIELDS or name in ENGINE_LAZY:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'sparkbooks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
