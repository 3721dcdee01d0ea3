"""sparkbooks: helpers behind executable playbooks for DGX Spark, DGX Station and CPU laptops."""

from __future__ import annotations

from . import accel, catalog, doctor, hardware, sources, workloads
from .accel import AccelStatus, enable, probe_gpu
from .catalog import Playbook
from .exceptions import (
    AcceleratorUnavailableError,
    ChecksumMismatchError,
    MetadataError,
    NotebookExecutionError,
    ParameterError,
    PlaybookNotFoundError,
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
    "Hardware",
    "MetadataError",
    "NotebookExecutionError",
    "ParameterError",
    "Playbook",
    "PlaybookNotFoundError",
    "Session",
    "SourceError",
    "SparkbooksError",
    "accel",
    "begin",
    "catalog",
    "current",
    "detect",
    "doctor",
    "enable",
    "hardware",
    "probe_gpu",
    "record",
    "settings",
    "sources",
    "workloads",
]
