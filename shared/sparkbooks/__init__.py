"""sparkbooks: helpers behind executable playbooks for DGX Spark, DGX Station and CPU laptops."""

from __future__ import annotations

from . import (
    accel,
    catalog,
    chat_widget,
    claims,
    datasets,
    doctor,
    embeddings,
    hardware,
    llamacpp,
    llm,
    memory,
    model_specs,
    quant,
    quant_eval,
    serve,
    singlecell,
    sources,
    workloads,
)
from .accel import AccelStatus, enable, probe_gpu
from .catalog import Playbook
from .exceptions import (
    AcceleratorUnavailableError,
    ChecksumMismatchError,
    ContextLengthError,
    MetadataError,
    MissingDependencyError,
    ModelNotServedError,
    NotebookExecutionError,
    ParameterError,
    PlaybookNotFoundError,
    ServerDiedError,
    ServerError,
    ServerUnreachableError,
    SourceError,
    SparkbooksError,
)
from .hardware import Hardware, detect
from .session import Session, begin, current, record
from .settings import settings

__version__ = "0.1.0"

__all__ = [
    "AccelStatus",
    "AcceleratorUnavailableError",
    "ChecksumMismatchError",
    "ContextLengthError",
    "Hardware",
    "MetadataError",
    "MissingDependencyError",
    "ModelNotServedError",
    "NotebookExecutionError",
    "ParameterError",
    "Playbook",
    "PlaybookNotFoundError",
    "ServerDiedError",
    "ServerError",
    "ServerUnreachableError",
    "Session",
    "SourceError",
    "SparkbooksError",
    "accel",
    "begin",
    "catalog",
    "chat_widget",
    "claims",
    "current",
    "datasets",
    "detect",
    "doctor",
    "embeddings",
    "enable",
    "hardware",
    "llamacpp",
    "llm",
    "memory",
    "model_specs",
    "probe_gpu",
    "quant",
    "quant_eval",
    "record",
    "serve",
    "settings",
    "singlecell",
    "sources",
    "workloads",
]
