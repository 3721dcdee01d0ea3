"""Is the link healthy? An all-reduce bandwidth sweep through torch.distributed, measured like nccl-tests.

``all_reduce_perf`` from nccl-tests times ``all_reduce`` of a float32 buffer at growing sizes and
reports two bandwidths: **algbw** = bytes / time, and **busbw** = algbw × 2(n−1)/n, the rate each
link must carry in a ring all-reduce — the figure to hold against the link's limit (a DGX Spark's
ConnectX-7 QSFP link: 200 Gb/s ≈ 25 GB/s). :func:`sweep` runs the same measurement on every rank
of a :class:`~sparkbooks.training.distributed.Launch` (gloo on CPUs, NCCL on GPUs) with ``torchrun``.

Run as a worker: ``torchrun … -m sparkbooks.training.collectives --out sweep.json --sizes 1048576 …``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import InputError

__all__ = ["Bandwidth", "KNOWN_FIXES", "LinkCheck", "bus_bandwidth", "check_link", "sweep", "sweep_args"]

#: What users of NVIDIA's NCCL playbook changed on a slow two-Spark link, most decisive first. The jump from
#: ≈3 GB/s to 23.7 GB/s (``all_gather_perf`` busbw, dgx-spark-playbooks PR #103) came from the NCCL *build*:
#: with MTU 9000 and NCCL_IB_HCA already set, a development-branch NCCL plateaued at 3.04 GB/s, and the
#: release tag (v2.28.9-1, the only change between the two runs) gave 23.74 GB/s. MTU and both HCA halves are
#: what the single-cable maximum needs once NCCL is sound (PR #103's other root causes).
KNOWN_FIXES = ("NCCL built from a release tag, not a development branch (NVIDIA's NCCL playbook clones v2.28.9-1; "
               "`python -c 'import torch; print(torch.cuda.nccl.version())'` shows what torch loads): a dev build "
               "plateaued at 3 GB/s where v2.28.9-1 reached 23.7 (dgx-spark-playbooks PR #103)",
               "MTU 9000 on the QSFP interface (`ip link set <if> mtu 9000` on both boxes)",
               "NCCL_IB_HCA naming both PCIe halves of the QSFP port (e.g. rocep1s0f1,roceP2p1s0f1; `ibv_devices` "
               "lists them), so NCCL uses RoCE on both, not TCP or one half",
               "NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME set to the QSFP interface, not the 1 GbE or Wi-Fi one")


@dataclass(frozen=True)
class Bandwidth:
    """An all-reduce's two rates, bytes/s: algorithm bandwidth and bus bandwidth."""

    algbw: float
    busbw: float


def bus_bandwidth(nbytes: float, seconds: float, world_size: int) -> Bandwidth:
    """algbw = bytes / time and busbw = algbw × 2(n−1)/n for an all-reduce of ``nbytes`` on ``world_size`` ranks."""
    if seconds <= 0 or world_size < 1:
        raise InputError("seconds must be > 0 and world_size ≥ 1.")
    algbw = nbytes / seconds
    return Bandwidth(algbw, algbw * 2 * (world_size - 1) / world_size)


def sweep(launch, sizes: Sequence[int], *, iterations: int = 20, warmup: int = 5, timeout: float = 600.0):
    """All-reduce ``sizes`` (bytes, float32) on every rank of ``launch``; one row per size (a DataFrame).

    Timed like nccl-tests' ``all_reduce_perf`` (its defaults: 5 warm-up and 20 timed iterations, no barrier
    between them). Columns: ``bytes``, ``seconds`` (per call: the slowest rank's time for all ``iterations`` ÷ iterations),
    ``algbw_GBps``, ``busbw_GBps``, ``ranks``, ``backend``.
    """
    import pandas as pd  # noqa: PLC0415

    from . import distributed  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="sparkbooks-allreduce-") as tmp:
        out = Path(tmp) / "sweep.json"
        distributed.run(launch, "sparkbooks.training.collectives", sweep_args(sizes, out=out, iterations=iterations,
                                                                      warmup=warmup), timeout=timeout)
        rows = json.loads(out.read_text())
    return pd.DataFrame(rows)


def sweep_args(sizes: Sequence[int], *, out: Path | str = "/tmp/sparkbooks-sweep.json", iterations: int = 20,
               warmup: int = 5) -> list[str]:
    """The worker's arguments for a sweep: every node passes the same sizes and counts (only rank 0 — on node 0,
    static rendezvous — writes ``out``; node 1's ``out`` is never opened)."""
    if not sizes or min(sizes) < 4:
        raise InputError("sizes must be a non-empty list of byte counts ≥ 4.")
    return ["--out", str(out), "--iterations", str(iterations), "--warmup", str(warmup), "--sizes", *map(str, sizes)]


@dataclass(frozen=True)
class LinkCheck:
    """busbw at the largest size against a link's limit, and what to do when it falls short."""

    busbw_GBps: float
    limit_GBps: float
    share: float
    healthy: bool
    advice: tuple[str, ...]

    def __str__(self) -> str:
        verdict = "healthy" if self.healthy else "SLOW"
        lines = [f"{verdict}: busbw {self.busbw_GBps:.2f} GB/s = {self.share:.0%} of the {self.limit_GBps:.0f} GB/s link"]
        lines += [f"  fix: {a}" for a in self.advice]
        return "\n".join(lines)


def check_link(table, *, limit_bytes_per_s: float, threshold: float = 0.6) -> LinkCheck:
    """Compare the sweep's busbw at its largest size with ``limit_bytes_per_s``; below ``threshold`` name the fixes."""
    row = table.sort_values("bytes").iloc[-1]
    busbw = float(row["busbw_GBps"])
    share = busbw * 1e9 / limit_bytes_per_s
    healthy = share >= threshold
    return LinkCheck(busbw, limit_bytes_per_s / 1e9, share, healthy, () if healthy else KNOWN_FIXES)


def _worker(argv: Sequence[str] | None = None) -> None:
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    from . import distributed
    from .. import fileio  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="sparkbooks.training.collectives")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", required=True)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    ctx = distributed.init_worker()
    rows = []
    for nbytes in args.sizes:
        buffer = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=ctx.device)
        for _ in range(args.warmup):
            dist.all_reduce(buffer)
        # As nccl-tests' all_reduce_perf: one barrier, `iterations` calls back to back, one synchronisation,
        # time per call = elapsed / iterations (a barrier per call would add its latency to every small size).
        dist.barrier()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.iterations):
            dist.all_reduce(buffer)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = torch.tensor([(time.perf_counter() - start) / args.iterations], dtype=torch.float64, device=ctx.device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the job ends when its slowest rank does
        seconds = float(elapsed)
        rate = bus_bandwidth(buffer.numel() * 4, seconds, ctx.world_size)
        rows.append({"bytes": buffer.numel() * 4, "seconds": seconds, "algbw_GBps": rate.algbw / 1e9,
                     "busbw_GBps": rate.busbw / 1e9, "ranks": ctx.world_size, "backend": ctx.backend})
        distributed.worker_progress(ctx, f"all_reduce {buffer.numel() * 4 / 2**20:.0f} MiB: "
                                         f"busbw {rate.busbw / 1e9:.2f} GB/s")
    if ctx.rank == 0:
        fileio.write_json_atomic(Path(args.out), rows)
    distributed.finish_worker()


if __name__ == "__main__":
    _worker()
