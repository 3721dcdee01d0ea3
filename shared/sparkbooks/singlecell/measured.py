"""NVIDIA's step list at their post-QC size, as measured: read from the JSON ``benchmarks/single_cell_scaling.py``
writes (never retyped), rendered as a table with the issue's goals judged from its figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..exceptions import SourceError
from .official import EMBEDDINGS, FAST, HARMONY_CELL, NVIDIA_CELLS, NVIDIA_SECONDS, SHAPE_BOUND, like_nvidia

__all__ = ["GOALS", "RESULT", "load", "summary", "table"]

#: The committed record of the 216,382-cell run (repository root / benchmarks / results).
RESULT = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "single_cell_216382.json"
#: Issue 43's goals at 216,382 post-QC cells on 2 cores: every step but the pictures within 150 s, NMI of the
#: Harmony clusters against the simulated types at least 0.85, peak memory under 16 GB.
GOALS = {"non_embedding_s": 150.0, "nmi_groups": 0.85, "peak_gb": 16.0}
_NEEDED = ("command", "date", "machine", "source", "fast", "runs")
_RUN_NEEDED = ("cells", "genes", "total_s", "non_embedding_s", "peak_mb", "nmi_groups", "steps", "peak_mb_by_step")


def load(path: str | Path = RESULT) -> dict[str, Any]:
    """The benchmark's record, checked for the fields the guide prints (a clear error if one is missing)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"No benchmark record at {path}: run `python benchmarks/single_cell_scaling.py --sizes 216382 "
                          f"--fast-only --out {path}` (about 30 minutes on 2 cores).")
    record = json.loads(path.read_text())
    missing = [k for k in _NEEDED if k not in record]
    missing += [f"runs.{name}.{k}" for name, run in record.get("runs", {}).items() for k in _RUN_NEEDED if k not in run]
    if missing or not record.get("runs"):
        raise SourceError(f"{path} lacks {missing or ['runs']}: rewrite it with benchmarks/single_cell_scaling.py.")
    return record


def _run(record: dict, name: str | None) -> tuple[str, dict]:
    name = name or next(iter(record["runs"]))
    return name, record["runs"][name]


def table(record: dict, name: str | None = None):
    """Per step: seconds here, NVIDIA's GPU seconds (theirs), the ratio — only when the run had their 216,382
    cells after QC —, shape-bound or data-dependent, iterations, the step's own peak (GiB), and the settings:
    ``shortened`` on the pictures when the run used ``official.FAST``."""
    import pandas as pd  # noqa: PLC0415

    _, run = _run(record, name)
    same = run["cells"] == NVIDIA_CELLS
    rows = []
    as_theirs = like_nvidia(run["steps"])  # neighbors_harmony: the four steps NVIDIA timed as one cell
    for step, seconds in run["steps"].items():
        theirs = NVIDIA_SECONDS.get(step)  # none after neighbors_harmony: NVIDIA timed those four steps as one cell
        shortened = record["fast"] and step in EMBEDDINGS
        # a sum holding a shortened picture is not their work either
        unlike = record["fast"] and step == HARMONY_CELL[0] and any(s in EMBEDDINGS for s in HARMONY_CELL)
        rows.append({"step": step, "seconds": seconds, "nvidia_gpu_s": theirs,
                     "ratio": round(as_theirs[step] / theirs, 1) if same and theirs and not (shortened or unlike) else None,
                     "comparable": "shape-bound" if step in SHAPE_BOUND else "data-dependent",
                     "iterations": run.get("iterations", {}).get(step, ""),
                     "step_peak_gib": round(run["peak_mb_by_step"][step] / 1024, 1),
                     "settings": ("shortened: " + FAST["umap" if step.startswith("umap") else "tsne"]) if shortened
                     else ("picture, NVIDIA's settings" if step in EMBEDDINGS else "NVIDIA's")})
    return pd.DataFrame(rows).set_index("step")


def summary(record: dict, name: str | None = None) -> str:
    """Markdown: where and how the figures were measured, and each goal met or not, computed from them."""
    _, run = _run(record, name)
    machine, source = record["machine"], record["source"]
    peak_gb = max(run["peak_mb"], *run["peak_mb_by_step"].values()) * 2**20 / 1e9
    ne, nmi = run["non_embedding_s"], run["nmi_groups"]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    pictures = sum(run["steps"].get(s, 0.0) for s in EMBEDDINGS)
    origin = (f"Transcribed from that run's log `{source.get('log')}` ({source.get('how', '')}); "
              if source.get("transcribed") else "Written by the benchmark itself; ")
    shortened = (f"The UMAP and t-SNE rows are **shortened** (`--fast-only`: {'; '.join(FAST.values())}), so they are "
                 "not NVIDIA's settings and get no ratio; nothing downstream reads them. "
                 if record["fast"] else "")
    iterations = "; ".join(f"{step} {n}" for step, n in run.get("iterations", {}).items())
    return (f"`{record['command']}`, {record['date']}, on {machine['description']} ({machine['cpus']} cores, "
            f"1-minute load average {machine.get('load_avg_1m_at_end', '?')} at the end: the figures are upper bounds "
            f"on the work). {origin}one run, so no spread. **{run['cells']:,} cells after QC × {run['genes']:,} genes** "
            f"({'NVIDIA' if run['cells'] == NVIDIA_CELLS else 'not NVIDIA'}'s post-QC shape). {shortened}\n\n"
            f"- Every step but the pictures: **{ne:.1f} s** against the goal of ≤ {GOALS['non_embedding_s']:.0f} s on "
            f"2 cores: {verdict(ne <= GOALS['non_embedding_s'])}. With the pictures ({pictures:.1f} s): "
            f"{run['total_s']:.1f} s.\n"
            f"- Harmony's Leiden clusters against the simulated types: NMI **{nmi:.3f}** (goal ≥ "
            f"{GOALS['nmi_groups']}: {verdict(nmi >= GOALS['nmi_groups'])}); ARI against the batches "
            f"{run.get('ari_batch', float('nan')):.4f} (0 = mixed).\n"
            f"- Peak memory **{peak_gb:.1f} GB** ({peak_gb * 1e9 / 2**30:.1f} GiB, the largest step peak; goal < "
            f"{GOALS['peak_gb']:.0f} GB: {verdict(peak_gb < GOALS['peak_gb'])}).\n"
            f"- Iterations to convergence: {iterations or 'not recorded'}.\n")
