"""The speed of an ANN operating point against exact search, timed in interleaved pairs.

A frontier's QPS column says how fast each setting ran *at the moment it was timed*; on a shared machine the
load moves between points, so "faster than exact search" is measured apart: exact search and the engine at
its operating point timed back to back, who goes first alternating, ``pairs`` times. The pair is the unit;
the claim is decided by a paired bootstrap over the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...exceptions import InputError
from .ann import AnnData, Engine, ExactTruth, _autorange

__all__ = ["Speedup", "speedup"]


@dataclass(frozen=True)
class Speedup:
    """Exact search and one engine setting timed in interleaved pairs (QPS per timing, pair by pair)."""

    engine: str
    value: int
    engine_qps: list[float]
    exact_qps: list[float]
    interval: tuple[float, float]  # 95 % paired bootstrap of mean(engine − exact) QPS over the pairs

    @property
    def ratios(self) -> np.ndarray:
        """Speed-up over exact search in each pair."""
        return np.asarray(self.engine_qps) / np.asarray(self.exact_qps)

    def describe(self) -> str:
        r, (low, high) = self.ratios, self.interval
        return f"{np.median(r):.2f}× exact (median of {len(r)} interleaved pairs, {r.min():.2f}–{r.max():.2f}×); QPS difference 95 % [{low:,.0f}, {high:,.0f}]"


def speedup(engine: Engine, data: AnnData, truth: ExactTruth, *, value: int, pairs: int = 6, min_s: float = 0.2,
            seed: int = 0) -> Speedup:
    """Time exact search and ``engine`` at ``value`` in ``pairs`` back-to-back pairs (who goes first alternates).

    A pair shares the machine's load of its moment; ``interval`` is a paired bootstrap over the pairs (six
    same-sign pairs of pure noise decide 3 % of the time, see ``evidence.MIN_SEEDS``).
    """
    from ...intervals import paired_bootstrap  # noqa: PLC0415

    if truth.search is None:
        raise InputError("speedup needs an ExactTruth from exact(), which keeps its index to time again.")
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    k = truth.ids.shape[1]
    runs = {"engine": lambda: engine.search(queries, k, value), "exact": lambda: truth.search(queries)}
    qps: dict[str, list[float]] = {"engine": [], "exact": []}
    for pair in range(max(2, pairs)):
        for who in ("engine", "exact") if pair % 2 else ("exact", "engine"):
            calls, seconds = _autorange(runs[who], min_s)
            qps[who].append(len(queries) * calls / seconds)
    diff = paired_bootstrap(qps["engine"], qps["exact"], seed=seed)
    return Speedup(engine.name, int(value), qps["engine"], qps["exact"], (float(diff.low), float(diff.high)))
