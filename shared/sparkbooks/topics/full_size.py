"""Fewer topics at full size, read from the record ``benchmarks/topic_clustering.py --reduce`` wrote: all 54k
fitting-side tweets clustered small (hundreds of topics), then brought to a readable number three ways —
merged by centroids (ours), BERTopic's ``reduce_topics``, and the trivial route, HDBSCAN with a larger
``min_cluster_size`` (about as many topics, no merging) — over seeds, each row scored by AMI against the outlets and
NPMI (shown; not decided on a held-out set smaller than the guide's NPMI reference).

The guide decides its claims from the per-seed differences here (seed-level Student-t), never from typed figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..evidence import SeedInterval, seed_t_interval
from ..exceptions import InputError
from .evaluate import NPMI_REFERENCE_DOCS

__all__ = ["COMPARISONS", "Comparison", "REDUCTION_RESULT", "reduction_record"]

REDUCTION_RESULT = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "topic_reduction.json"
#: name → (row, baseline row, score): what the guide decides about the full-size reduction. Not ours against BERTopic's
#: ``reduce_topics``: it runs the same average linkage on cosine distances of mean topic embeddings, so the two rows
#: differ only by the clustering upstream (review 48, round 6).
COMPARISONS = {"merged_vs_coarse_ami": ("merged", "coarse", "ami"),
               "merged_vs_coarse_npmi": ("merged", "coarse", "npmi_held"),
               "merging_cost_npmi": ("merged", "as_clustered", "npmi_held")}
_ROLES = ("as_clustered", "merged", "words", "placed", "coarse", "bertopic", "bertopic_reduced")  # the benchmark's order


@dataclass(frozen=True)
class Comparison:
    """One row against another on one score: both means over seeds and the seed-t interval of their difference."""

    row: str
    baseline_row: str
    score: str
    value: float
    baseline: float
    interval: SeedInterval


def reduction_record(path: Path = REDUCTION_RESULT) -> dict:
    """The record's table (mean ± sd over seeds), its rows by role, the :data:`COMPARISONS` decided (``refused``: those
    not decidable, with why), and its runs.

    Raises :class:`InputError` when the record is missing or holds no seed (run
    ``python benchmarks/topic_clustering.py --reduce 100``)."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    record = json.loads(path.read_text()) if path.exists() else {}
    seeds = sorted(record.get("seeds", {}), key=int)
    if not seeds:
        raise InputError(f"No reduction record at {path}: run python benchmarks/topic_clustering.py --reduce 100.")
    per_seed = [record["seeds"][s] for s in seeds]
    names = [n for n in per_seed[0] if n != "run"]
    if len(names) != len(_ROLES):
        raise InputError(f"{path} has rows {names}; expected {len(_ROLES)} — rerun the benchmark with this version.")
    roles = dict(zip(_ROLES, names))

    def values(role: str, score: str) -> np.ndarray:
        return np.array([run[roles[role]][score] for run in per_seed], dtype=float)

    table = pd.DataFrame({name: {score: f"{np.mean(v):.4g} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2g}"
                                 for score in ("topics", "outlier_share", "npmi_held", "npmi", "diversity", "ami",
                                               "ami_clustered", "s")
                                 for v in [values(role, score)]} for role, name in roles.items()}).T
    # NPMI over a few thousand short texts is decided by pairs that never meet (Step 7): refused below the reference
    # size the guide holds its own NPMI to, however the intervals fall
    held = record["settings"].get("held_out", 0)
    refused = {key: (f"NPMI counted in {held:,} held-out tweets, fewer than the {NPMI_REFERENCE_DOCS:,} the guide "
                     "requires: most pairs never meet there, so no NPMI comparison is decided")
               for key, (_, _, score) in COMPARISONS.items() if score == "npmi_held" and held < NPMI_REFERENCE_DOCS}
    decided = {key: Comparison(roles[row], roles[base], score, float(values(row, score).mean()),
                               float(values(base, score).mean()), seed_t_interval(values(row, score) - values(base, score)))
               for key, (row, base, score) in COMPARISONS.items() if key not in refused} if len(seeds) > 1 else {}
    runs = [run["run"] for run in per_seed]
    return {"settings": record["settings"], "seeds": len(seeds), "rows": roles, "table": table, "comparisons": decided,
            "refused": refused,
            "machine": runs[0]["machine"], "dates": [min(r["date"] for r in runs), max(r["date"] for r in runs)],
            "loads": [min(r["load_1min"] for r in runs), max(r["load_1min"] for r in runs)]}
