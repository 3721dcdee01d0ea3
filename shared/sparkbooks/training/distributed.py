"""Run a worker module on N ranks with torch.distributed's own launcher, ``torchrun``.

One launch helper serves every multi-rank playbook (``fine-tune``, ``pretrain``): it builds the
``torchrun`` command (c10d rendezvous, no restarts), runs it as a :class:`~sparkbooks.services.Service`
(its own process group, log file, stopped whatever happens), shows the workers' progress lines,
and turns torchrun's failures into errors that say what to check:

* the rendezvous endpoint cannot be reached within ``rendezvous_timeout`` → :class:`RendezvousError`
  naming ``host:port``, the firewall and the network interface variables;
* a rank dies → torchrun stops the others and :class:`RankFailedError` names the rank and its last lines.

On one machine with CPUs: ``Launch(nproc_per_node=2)`` (gloo over loopback). ``backend="auto"`` asks the
device policy (:func:`sparkbooks.devices.dist_backend`): NCCL only where it works and every rank of this node
gets its own CUDA device, gloo otherwise (always under ``SPARKBOOKS_ACCELERATOR=cpu``). On two DGX Sparks:
``Launch(nproc_per_node=1, nnodes=2, endpoint="10.0.0.1:29500", backend="nccl")`` here, and
:meth:`Launch.command_for_node` prints the exact command for the second box. Workers call
:func:`init_worker` (the process group with a bounded timeout) and print ``progress: …`` lines.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from .. import devices, log, services
from ..exceptions import InputError, RankFailedError, RendezvousError, ServiceExitError

__all__ = ["Launch", "Torchrun", "WorkerContext", "init_worker", "run", "worker_progress"]

BACKENDS = ("gloo", "nccl", "auto")
_PROGRESS = re.compile(rb"^(?:\[[^\]]*\]:?)?\s*progress: (.*)$")
_FAILED_RANK = re.compile(r"rank\s*:\s*(\d+)")
_EXITCODE = re.compile(r"exitcode\s*:\s*(-?\d+)")


@dataclass(frozen=True)
class Launch:
    """Where the ranks run and how they meet.

    ``endpoint`` is the rendezvous ``host:port`` every node reaches (node 0's address);
    ``None`` on one node picks a free loopback port. ``backend`` is the process-group backend
    the workers use: ``gloo`` on CPUs, ``nccl`` between GPUs (one CUDA device per rank, checked
    before the job starts), ``auto`` resolved at once by the device policy. ``rendezvous_timeout`` bounds how
    long a node waits for the others; ``collective_timeout`` how long a rank waits in a
    collective for a peer that is gone.
    """

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    endpoint: str | None = None
    backend: str = "gloo"
    rendezvous_timeout: float = 60.0
    collective_timeout: float = 60.0
    threads_per_rank: int | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise InputError(f"nproc_per_node and nnodes must be ≥ 1 (got {self.nproc_per_node}, {self.nnodes}).")
        if not 0 <= self.node_rank < self.nnodes:
            raise InputError(f"node_rank must be in 0…{self.nnodes - 1} (got {self.node_rank}).")
        if self.backend not in BACKENDS:
            raise InputError(f"backend must be one of {BACKENDS} (got {self.backend!r}).")
        if self.backend == "auto":
            object.__setattr__(self, "backend", devices.dist_backend(self.nproc_per_node))
        if self.nnodes > 1 and not self.endpoint:
            raise InputError("Two or more nodes need endpoint='HOST:PORT', the address of node 0 every node can reach.")
        if self.endpoint is not None:
            host, _, port = self.endpoint.rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"endpoint must look like HOST:PORT (got {self.endpoint!r}).")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def check_devices(self) -> None:
        """Refuse NCCL on this node unless each of its ``nproc_per_node`` ranks gets its own CUDA device.

        Raises
        ------
        InputError
            With the device count, why, and what to set instead (else the ranks die in
            ``torch.cuda.set_device`` with "invalid device ordinal").
        """
        if self.backend != "nccl":
            return
        have = devices.cuda_device_count()
        if self.nproc_per_node > have:
            why = "" if have else f" ({devices.probe().reason('nccl')})"
            raise InputError(
                f"backend='nccl' needs one CUDA device per rank: {self.nproc_per_node} ranks per node, but this node "
                f"has {have} CUDA device(s) the device policy lets torch use{why}. Set the ranks per node to "
                f"{max(have, 1)}, or backend='gloo' (or 'auto', which picks gloo here).")

    def named(self, run_id: str) -> Launch:
        """This launch under a fixed rendezvous id: what lets node 1 start the matching job from a printed command."""
        return replace(self, run_id=run_id)

    def resolved(self) -> Launch:
        """This launch with a concrete endpoint (a free loopback port when none was given)."""
        if self.endpoint is not None:
            return self
        return replace(self, endpoint=f"127.0.0.1:{services.free_port()}")

    def command(self, module: str, args: Sequence[str] = ()) -> list[str]:
        """The ``torchrun`` command line (as ``python -m torch.distributed.run``) for this node."""
        launch = self.resolved()
        timeout = max(1, round(launch.rendezvous_timeout))
        return [sys.executable, "-m", "torch.distributed.run",
                f"--nnodes={launch.nnodes}", f"--nproc-per-node={launch.nproc_per_node}",
                f"--node-rank={launch.node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint={launch.endpoint}",
                f"--rdzv-id={launch.run_id}", f"--rdzv-conf=join_timeout={timeout},read_timeout={timeout}",
                "--max-restarts=0", "--monitor-interval=0.5", "-m", module, *args]

    def command_for_node(self, node_rank: int, module: str, args: Sequence[str] = ()) -> str:
        """The exact shell command to type on node ``node_rank`` (e.g. the second Spark)."""
        other = replace(self.resolved(), node_rank=node_rank)
        env = f"SPARKBOOKS_DIST_BACKEND={self.backend} "
        return env + shlex.join(["torchrun", *other.command(module, args)[3:]])

    def environment(self) -> dict[str, str]:
        """Variables every worker reads in :func:`init_worker`."""
        env = {"SPARKBOOKS_DIST_BACKEND": self.backend,
               "SPARKBOOKS_DIST_TIMEOUT": str(self.collective_timeout),
               "PYTHONUNBUFFERED": "1"}
        if self.threads_per_rank:
            env["OMP_NUM_THREADS"] = str(self.threads_per_rank)
        return env


class Torchrun(services.Service):
    """One torchrun job on this node: a :class:`~sparkbooks.services.Service` that runs to its end."""

    def __init__(self, launch: Launch, module: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None):
        launch.check_devices()
        self.launch = launch.resolved()
        self.module, self.args = module, list(args)
        super().__init__("torchrun", startup_timeout=30.0, env={**self.launch.environment(), **(env or {})})

    def command(self) -> list[str]:
        return self.launch.command(self.module, self.args)

    def describe(self) -> str:
        launch = self.launch
        return (f"{self.module}: {launch.nnodes} node(s) × {launch.nproc_per_node} rank(s), {launch.backend}, "
                f"rendezvous {launch.endpoint}")


def run(launch: Launch, module: str, args: Sequence[str] = (), *, timeout: float = 1800.0,
        env: Mapping[str, str] | None = None, every: float = 10.0) -> float:
    """Run ``python -m module args`` on every rank of ``launch`` and wait for it; return the wall seconds.

    Rank 0's ``progress: …`` lines are shown at most every ``every`` seconds (a heartbeat when
    there is none). The job is stopped (whole process group) on timeout, error or interrupt.

    Raises
    ------
    InputError
        ``backend="nccl"`` with more ranks on this node than CUDA devices (:meth:`Launch.check_devices`).
    RendezvousError
        The nodes did not meet within ``launch.rendezvous_timeout`` seconds.
    RankFailedError
        A rank exited non-zero (torchrun then stops the others).
    ServiceExitError
        Still running after ``timeout`` seconds.
    """
    job = Torchrun(launch, module, args, env=env)
    started = time.perf_counter()
    with job:
        last_shown, last_line = started, b""
        while job.running:
            time.sleep(0.2)
            if time.perf_counter() - started > timeout:
                job.stop()
                raise ServiceExitError(f"torchrun ({module}) was still running after {timeout:.0f} s and was stopped:\n"
                                       f"{job.log_tail()}")
            if time.perf_counter() - last_shown >= every:
                line = _last_progress(job)
                shown = line.decode(errors="replace") if line and line != last_line else "still running"
                log.info(f"  {module} … {shown} ({log.format_seconds(time.perf_counter() - started)})")
                last_shown, last_line = time.perf_counter(), line or last_line
        code = job.returncode
        if code != 0:
            raise _diagnose(job, code)
    return time.perf_counter() - started


def _last_progress(job: Torchrun) -> bytes | None:
    if job.log_path is None or not job.log_path.exists():
        return None
    for line in reversed(job.log_path.read_bytes().splitlines()[-200:]):
        found = _PROGRESS.match(line)
        if found:
            return found.group(1).strip()
    return None


def _diagnose(job: Torchrun, code: int | None) -> Exception:
    text = job.log_path.read_text(errors="replace") if job.log_path else ""
    tail = job.log_tail(25)
    launch = job.launch
    if "RendezvousTimeoutError" in text or "RendezvousConnectionError" in text or "DistNetworkError" in text \
            or "DistStoreError" in text:
        host, _, port = (launch.endpoint or "").rpartition(":")
        tail = job.log_tail(3)  # the rendezvous error itself; the traceback above it says nothing more
        return RendezvousError(
            f"The ranks did not meet at {launch.endpoint} within {launch.rendezvous_timeout:.0f} s. Check that node 0 "
            f"is started with the same --rdzv-endpoint, that {host} is reachable from this box (ping {host}) and that "
            f"TCP port {port} is open in its firewall; on machines with several interfaces set GLOO_SOCKET_IFNAME / "
            f"NCCL_SOCKET_IFNAME to the one that carries {host}.\n{tail}")
    # torchrun's report puts the rank that failed first under "Root Cause"; the rest it stopped (SIGTERM).
    cause = text.split("Root Cause", 1)[-1] if "Root Cause" in text else text.split("Failures:")[-1]
    rank = _FAILED_RANK.search(cause)
    exitcode = _EXITCODE.search(cause)
    which = f"rank {rank.group(1)}" if rank else "a rank"
    how = f" with exit code {exitcode.group(1)}" if exitcode else ""
    return RankFailedError(f"torchrun ({job.module}) failed: {which} exited{how}, and torchrun stopped the other "
                           f"ranks. Last lines:\n{tail}")


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
    timeout = float(os.environ.get("SPARKBOOKS_DIST_TIMEOUT", "60"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    return WorkerContext(dist.get_rank(), dist.get_world_size(), local_rank, backend, device)


def worker_progress(context: WorkerContext, message: str) -> None:
    """Print a ``progress:`` line from rank 0 (what :func:`run` shows the user)."""
    if context.rank == 0:
        print(f"progress: {message}", flush=True)
