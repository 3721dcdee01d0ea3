"""What runs inside each torchrun worker: join the process group, read from rank 0, report progress, finish.

Every worker module (fine-tune, pretrain, the collectives sweep) starts with :func:`init_worker` and ends with
:func:`finish_worker`; :func:`sparkbooks.training.distributed.run` shows its ``progress:`` lines.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = ["COLLECTIVE_TIMEOUT", "WorkerContext", "finish_worker", "from_rank_zero", "init_worker", "worker_progress"]

#: Seconds a rank waits in one collective before it gives up on its peers (``init_process_group(timeout=…)``).
#: Ten minutes, torch's own default for NCCL process groups: rank 0 broadcasts the config while a cold node 1
#: may still be reading 16 GB of BF16 weights (an 8B model) from disk — 2–3 min at a SATA SSD's 100–150 MB/s,
#: before any CUDA warm-up. A peer that dies usually fails the next collective at once (its connection closes; on
#: this node torchrun stops the job when a rank exits): the timeout bounds only a hang nothing else ends.
COLLECTIVE_TIMEOUT = 600.0


@dataclass(frozen=True)
class WorkerContext:
    """What a worker knows about its place in the job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: Any


def init_worker() -> WorkerContext:
    """Inside a torchrun worker: join the process group (gloo or nccl, bounded timeout) and return the context."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    backend = os.environ.get("SPARKBOOKS_DIST_BACKEND", "gloo")
    timeout = float(os.environ.get("SPARKBOOKS_DIST_TIMEOUT", COLLECTIVE_TIMEOUT))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    return WorkerContext(dist.get_rank(), dist.get_world_size(), local_rank, backend, device)


def finish_worker() -> None:
    """Inside a torchrun worker, at its end: meet the other ranks, leave the process group and exit 0.

    Under torchrun (``TORCHELASTIC_RUN_ID`` set) the exit skips interpreter finalisation (``os._exit`` after
    flushing): gloo's C++ threads can still hold work objects with Python references then, and destroying them
    while the interpreter is torn down aborts the rank with SIGABRT after its work is done and written
    (pytorch/pytorch#179291) — seen once in CI as ``rank 1 exited with exit code -6`` on a finished run.
    Called in any other process (a test driving a worker in-process) it returns after leaving the group.
    """
    import torch.distributed as dist  # noqa: PLC0415

    dist.barrier()
    dist.destroy_process_group()
    if "TORCHELASTIC_RUN_ID" in os.environ:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def from_rank_zero(context: WorkerContext, load):
    """``load()`` run on rank 0 only, its result sent to every rank (``broadcast_object_list``).

    What a worker reads from disk — its config, data, a checkpoint to resume from — comes from node 0's disk:
    node 1 needs the repository and the model at the same paths, not a copy of node 0's files (a node with a
    stale or missing copy would otherwise train on other data, or resume from other weights).
    """
    import torch.distributed as dist  # noqa: PLC0415

    box = [load() if context.rank == 0 else None]
    dist.broadcast_object_list(box, src=0, device=context.device if context.backend == "nccl" else None)
    return box[0]


def worker_progress(context: WorkerContext, message: str) -> None:
    """Print a ``progress:`` line from rank 0 (what :func:`run` shows the user)."""
    if context.rank == 0:
        print(f"progress: {message}", flush=True)
