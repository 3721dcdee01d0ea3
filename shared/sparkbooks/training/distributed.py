"""Run a worker module on N ranks with torch.distributed's own launcher, ``torchrun``.

One launch helper serves every multi-rank playbook (``fine-tune``, ``pretrain``): it builds the
``torchrun`` command (static rendezvous, no restarts), runs it as a :class:`~sparkbooks.services.Service`
(its own process group, log file, stopped whatever happens), shows the workers' progress lines,
and turns torchrun's failures into errors that say what to check:

* the rendezvous endpoint cannot be reached within ``rendezvous_timeout`` → :class:`RendezvousError`
  naming ``host:port``, the firewall and the network interface variables;
* a rank dies → torchrun stops the others and :class:`RankFailedError` names the rank and its last lines.

**Why static rendezvous.** With ``--rdzv-backend=c10d`` torchrun ignores ``--node-rank`` ("node_rank is only
used for static rdzv_backend", ``torch/distributed/run.py``) and numbers the nodes by sorting (address, pid):
rank 0 — the rank that writes metrics, checkpoints and adapters — lands on whichever agent sorts first, and
the store's host is guessed by matching the endpoint against this machine's names (which can fail for a QSFP
address, pytorch#79388). ``--rdzv-backend=static`` pins both: node ``--node-rank=0`` hosts the TCP store on
the endpoint's port, its workers are ranks ``0 … nproc_per_node-1``, and every worker's ``MASTER_ADDR`` is the
endpoint's address (node 0's link address), not an FQDN a direct cable cannot resolve. A node started early
waits up to ``rendezvous_timeout`` for node 0's store.

On one machine with CPUs: ``Launch(nproc_per_node=2)`` (gloo over loopback). ``backend="auto"`` asks the
device policy (:func:`sparkbooks.devices.dist_backend`): NCCL only where it works and every rank of this node
gets its own CUDA device, gloo otherwise (always under ``SPARKBOOKS_ACCELERATOR=cpu``). On two DGX Sparks:
``Launch(nproc_per_node=1, nnodes=2, endpoint="10.0.0.1:29500", backend="nccl")`` here, and
:meth:`Launch.command_for_node` prints the exact command for the second box. Workers call
:func:`init_worker` (the process group with a bounded timeout) and print ``progress: …`` lines
(:mod:`~sparkbooks.training.worker_side`); the link variables come from :mod:`~sparkbooks.training.links`.
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
from pathlib import Path

from .. import devices, log, services
from ..exceptions import InputError, RankFailedError, RendezvousError, ServiceExitError
from .links import LINK_VARIABLES, SPARK_LINK_EXAMPLE, link_environment
from .worker_side import COLLECTIVE_TIMEOUT, WorkerContext, finish_worker, from_rank_zero, init_worker, worker_progress

__all__ = ["COLLECTIVE_TIMEOUT", "LINK_VARIABLES", "Launch", "SPARK_LINK_EXAMPLE", "Torchrun", "WorkerContext", "finish_worker",
           "from_rank_zero", "init_worker", "link_environment", "run", "worker_progress"]

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
    collective_timeout: float = COLLECTIVE_TIMEOUT
    threads_per_rank: int | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    #: NCCL/gloo/UCX interface variables for every node's workers, as (name, value) pairs; ``None`` reads them
    #: from the interface that holds the endpoint's address on this machine (:func:`link_environment`).
    link_env: tuple[tuple[str, str], ...] | Mapping[str, str] | None = None

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
        if self.link_env is None:
            found = link_environment(self.endpoint.rpartition(":")[0]) if self.nnodes > 1 and self.endpoint else {}
            object.__setattr__(self, "link_env", tuple(found.items()))
        elif isinstance(self.link_env, Mapping):
            object.__setattr__(self, "link_env", tuple(self.link_env.items()))

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
        """The ``torchrun`` command line (as ``python -m torch.distributed.run``) for this node.

        Static rendezvous: ``--node-rank`` is honoured (node 0's workers are ranks 0…), node 0 hosts the
        store at the endpoint, and the workers' ``MASTER_ADDR`` is the endpoint's host (see the module docstring).
        """
        launch = self.resolved()
        timeout = max(1, round(launch.rendezvous_timeout))
        return [sys.executable, "-m", "torch.distributed.run",
                f"--nnodes={launch.nnodes}", f"--nproc-per-node={launch.nproc_per_node}",
                f"--node-rank={launch.node_rank}", "--rdzv-backend=static", f"--rdzv-endpoint={launch.endpoint}",
                f"--rdzv-id={launch.run_id}", f"--rdzv-conf=timeout={timeout}",
                "--max-restarts=0", "--monitor-interval=0.5", "-m", module, *args]

    def command_for_node(self, node_rank: int, module: str, args: Sequence[str] = ()) -> str:
        """The exact shell command to type on node ``node_rank`` (e.g. the second Spark).

        It carries the link variables (:attr:`link_env`) read on this node: twin Sparks name their QSFP
        interfaces and RDMA devices alike; and ``collective_timeout`` when it is not the default both nodes share.
        """
        other = replace(self.resolved(), node_rank=node_rank)
        own = [("SPARKBOOKS_DIST_BACKEND", self.backend)]
        if self.collective_timeout != COLLECTIVE_TIMEOUT:  # node 1's workers default to the same; carry any other
            own.append(("SPARKBOOKS_DIST_TIMEOUT", f"{self.collective_timeout:g}"))
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in (*own, *self.link_env))
        return env + " " + shlex.join(["torchrun", *other.command(module, args)[3:]])

    def environment(self) -> dict[str, str]:
        """Variables every worker reads in :func:`init_worker` (and NCCL/gloo/UCX read: :attr:`link_env`)."""
        env = {"SPARKBOOKS_DIST_BACKEND": self.backend,
               "SPARKBOOKS_DIST_TIMEOUT": str(self.collective_timeout),
               "PYTHONUNBUFFERED": "1", **dict(self.link_env)}
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
    peers = [n for n in range(job.launch.nnodes) if n != job.launch.node_rank]
    with job:
        last_shown, last_line = started, b""
        if peers:  # say at once what the other node(s) must type, then again with every heartbeat until they join
            log.terminal(_waiting(job, peers, 0.0))
        while job.running:
            time.sleep(0.2)
            if time.perf_counter() - started > timeout:
                job.stop()
                raise ServiceExitError(f"torchrun ({module}) was still running after {timeout:.0f} s and was stopped:\n"
                                       f"{job.log_tail()}")
            if time.perf_counter() - last_shown >= every:
                line = _last_progress(job)
                elapsed = time.perf_counter() - started
                if peers and line is None and not _workers_started(job):
                    log.terminal(_waiting(job, peers, elapsed))
                else:
                    shown = line.decode(errors="replace") if line and line != last_line else "still running"
                    log.terminal(f"  {module} … {shown} ({log.format_seconds(elapsed)})")
                last_shown, last_line = time.perf_counter(), line or last_line
        code = job.returncode
        if code != 0:
            raise _diagnose(job, code)
    return time.perf_counter() - started


def _waiting(job: Torchrun, peers: Sequence[int], elapsed: float) -> str:
    """The heartbeat while this node waits at the rendezvous: how long, and each peer's exact command."""
    lines = [f"  {job.module} … waiting for node(s) {', '.join(map(str, peers))} at {job.launch.endpoint} "
             f"({log.format_seconds(elapsed)} of {job.launch.rendezvous_timeout:.0f} s). Run there:"]
    lines += [f"    node {n}: {job.launch.command_for_node(n, job.module, job.args)}" for n in peers]
    return "\n".join(lines)


def _workers_started(job: Torchrun) -> bool:
    """Whether torchrun got past the rendezvous: its agent forks the workers only once every node joined."""
    pid = job.pid
    if pid is None:
        return False
    try:
        return any(Path(task, "children").read_text().split() for task in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True  # no /proc (not Linux): stop saying "waiting" rather than say it wrongly


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
        if launch.node_rank == 0 and launch.nnodes > 1:  # node 0 hosts the store: the others never came
            others = "\n".join(f"  node {n}: {launch.command_for_node(n, job.module, job.args)}"
                               for n in range(1, launch.nnodes))
            where = (f"This node (node 0) hosted the store at {launch.endpoint}; the other node(s) did not join. Start "
                     f"them with:\n{others}\nand check that {host} is reachable from them (ping {host}) and TCP port "
                     f"{port} is open in this box's firewall.")
        else:
            where = (f"Check that node 0 is started with the same --rdzv-endpoint (it hosts the store), that {host} is "
                     f"reachable from this box (ping {host}) and that TCP port {port} is open in its firewall.")
        return RendezvousError(
            f"The ranks did not meet at {launch.endpoint} within {launch.rendezvous_timeout:.0f} s. {where} On machines "
            f"with several interfaces set GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME to the one that carries {host}."
            f"\n{tail}")
    # torchrun's report puts the rank that failed first under "Root Cause"; the rest it stopped (SIGTERM).
    cause = text.split("Root Cause", 1)[-1] if "Root Cause" in text else text.split("Failures:")[-1]
    rank = _FAILED_RANK.search(cause)
    exitcode = _EXITCODE.search(cause)
    which = f"rank {rank.group(1)}" if rank else "a rank"
    how = f" with exit code {exitcode.group(1)}" if exitcode else ""
    return RankFailedError(f"torchrun ({job.module}) failed: {which} exited{how}, and torchrun stopped the other "
                           f"ranks. The ranks' last lines:\n{_ranks_tail(text)}\ntorchrun's report:\n{tail}")


def _ranks_tail(text: str, lines: int = 15) -> str:
    """The workers' last lines: what the log holds before torchrun's own traceback (the agent's, which comes last).

    A rank killed by a signal (SIGABRT from a C++ ``terminate``, say) says why only there; torchrun's report
    after it names the signal, not the cause.
    """
    head, marker, after = text.rpartition("Traceback (most recent call last):")
    workers = head if marker and "ChildFailedError" in after else text
    return "\n".join(workers.strip().splitlines()[-lines:]) or "(none)"
