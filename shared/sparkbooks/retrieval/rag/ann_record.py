"""The committed full-size ANN frontier: what ``benchmarks/rag_retrieval.py --part frontier`` measured on every tweet.

A playbook's cpu run cannot afford HNSW and IVF sweeps over all ≈ 54k distinct tweet vectors, so the benchmark
measures them in resumable parts and commits one JSON record (``benchmarks/results/rag_ann_frontier.json``):
the machine, each run's dates and load, every grid point and each engine's operating point timed in
interleaved pairs with exact search. :func:`load` reads it back as a table the guide shows — labelled as that
record, never as the run's own measurement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...exceptions import InputError

__all__ = ["FullSizeRecord", "RECORD", "load"]

#: Where the benchmark's full-size record is committed (the repository's ``benchmarks/results``).
RECORD = Path(__file__).resolve().parents[4] / "benchmarks" / "results" / "rag_ann_frontier.json"


@dataclass(frozen=True)
class FullSizeRecord:
    """The record's rows (one per engine and grid value), operating points, problem and provenance."""

    rows: Any  # pandas DataFrame
    operating: dict[str, dict]
    data: dict
    machine: dict
    runs: list[dict]
    settings: dict

    @property
    def complete(self) -> bool:
        """Every engine that has rows has its operating point too."""
        return set(self.rows["key"]) <= set(self.operating)

    @property
    def shortest_timing_s(self) -> float:
        return float(self.rows["timing s"].min())

    def provenance(self) -> str:
        """Machine, dates and load of the runs, in one line."""
        loads = [r[k] for r in self.runs for k in ("load_avg_1m_before", "load_avg_1m_after") if k in r]
        return (f"{self.machine['description']}; {len(self.runs)} run(s) {self.runs[0]['started']} – "
                f"{self.runs[-1].get('finished', '?')}, 1-min load {min(loads):.1f}–{max(loads):.1f}; exact on "
                f"{self.runs[0]['exact_threads']} threads; every timing ≥ {self.settings['min_s']} s "
                f"(shortest {self.shortest_timing_s:.2f} s)")

    def describe(self, key: str) -> str:
        """One engine's operating point in words."""
        o = self.operating[key]
        if o.get("value") is None:
            return f"{o['engine']}: {o.get('note', 'no operating point')}"
        return (f"{o['engine']}: first {o['knob']} reaching recall@10 0.95 is {o['value']} (recall {o['recall@10']:.3f} "
                f"[{o['recall low']:.3f}, {o['recall high']:.3f}]), {o['speedup_median']:.2f}× exact search "
                f"(median of {len(o['engine_qps'])} interleaved pairs, {o['speedup_min']:.2f}–{o['speedup_max']:.2f}×; "
                f"{o['queries']} queries)")


def load(path: str | Path = RECORD) -> FullSizeRecord:
    """Read the committed record; a missing or incomplete file is refused with the command that makes it."""
    import pandas as pd  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise InputError(f"No full-size ANN record at {path}: run `python benchmarks/rag_retrieval.py --part frontier "
                         f"--tweets all --out {path}` (resumable) until it prints 'complete'.")
    raw = json.loads(path.read_text())
    rows = pd.DataFrame(raw["rows"])
    if rows.empty:
        raise InputError(f"{path} holds no frontier points yet: run the benchmark again (it resumes).")
    rows["speed-up vs exact (same run)"] = rows["QPS"] / rows["exact_qps_run"]
    return FullSizeRecord(rows.sort_values(["key", "value"]).reset_index(drop=True), raw["operating"], raw["data"],
                          raw["machine"], raw["runs"], raw["settings"])
