"""sparkbooks: helpers behind executable playbooks for DGX Spark, DGX Station and CPU laptops."""

from __future__ import annotations

from . import accel, catalog, chat_widget, doctor, hardware, llamacpp, llm, memory, serve, sources, workloads
from .accel import AccelStatus, enable, probe_gpu
from .catalog import Playbook
from .exceptions import (
    AcceleratorUnavailableError,
    ChecksumMismatchError,
    ContextLengthError,
    MetadataError,
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
    "current",
    "detect",
    "doctor",
    "enable",
    "hardware",
    "llamacpp",
    "llm",
    "memory",
    "probe_gpu",
    "record",
    "serve",
    "settings",
    "sources",
    "workloads",
]
