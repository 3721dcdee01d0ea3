"""Training checkpoints written atomically, found again by a ``latest.json`` pointer (torch.save files).

One implementation for every torchrun worker (``finetune_worker``, ``pretrain.worker``): a crash
mid-write never leaves a file that looks whole, and ``latest.json`` moves only after the file is on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import fileio

__all__ = ["latest_step", "load_latest", "save"]


def save(directory: Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``step-NNNNNN.pt`` (temp file, fsync, rename), then point ``latest.json`` at it."""
    import torch  # noqa: PLC0415

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step-{step:06d}.pt"
    partial = directory / f".step-{step:06d}.pt.tmp"
    torch.save(state, partial)
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, target)
    fileio.write_json_atomic(directory / "latest.json", {"step": step, "file": target.name})
    return target


def latest_step(directory: Path) -> int | None:
    """The step of the newest whole checkpoint in ``directory`` (``None`` when there is none)."""
    latest = fileio.read_json(Path(directory) / "latest.json")
    return int(latest["step"]) if latest else None


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest checkpoint's state on the CPU, or ``None`` when ``directory`` holds none.

    Loaded to the CPU (``map_location``): rank 0 reads it and broadcasts it pickled, and CUDA tensors would
    land on each receiver's *saved* device index; the model and optimizer copy it onto their own device.
    """
    import torch  # noqa: PLC0415

    latest = fileio.read_json(Path(directory) / "latest.json")
    if not latest:
        return None
    return torch.load(Path(directory) / latest["file"], weights_only=False, map_location="cpu")
