"""CPU against GPU on the same data: the two children's timings side by side, their checks and result tables
compared, everything that would make a speed-up untrustworthy listed, and the figure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import devices
from .child import run_isolated
from .data import write_sales
from .tolerances import TOLERANCES, Tolerance

__all__ = ["CPU_SHARE_LIMIT", "CPU_STAGES", "Comparison", "GPU_KINDS", "compare", "compare_tables", "cpu_share", "plot_comparisons"]

#: The GPU work (:data:`sparkbooks.devices.KINDS`) each workload's accelerated child needs.
GPU_KINDS: dict[str, str] = {"pandas-etl": "cudf", "sklearn": "cuml"}
#: Largest share of a stage's time its CPU fallbacks may take on the GPU path before the speed-up is not trusted.
CPU_SHARE_LIMIT = 0.10
#: Stages expected to run on the CPU under cudf.pandas: a Python function per value cannot run on the GPU.
CPU_STAGES = frozenset({"apply"})


def cpu_share(counts: dict[str, Any]) -> float | None:
    """Share of a stage's time (profiled run) spent in CPU fallbacks; ``None`` when the child recorded no times."""
    if "stage_s" not in counts or "cpu_s" not in counts:
        return None
    return counts["cpu_s"] / counts["stage_s"] if counts["stage_s"] > 0 else 0.0


@dataclass
class Comparison:
    """CPU and (when a GPU works) accelerated timings of one workload on the same data."""

    workload: str
    params: dict[str, Any]
    cpu: dict[str, Any]
    gpu: dict[str, Any] | None = None
    gpu_reason: str = ""
    table_differences: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        """Warm CPU time / warm GPU time over all stages."""
        return self.cpu["total_s"] / self.gpu["total_s"] if self.gpu else None

    def table(self):
        """Per stage: cold and warm (median) seconds per path, the warm speed-up, and GPU vs CPU call counts."""
        import pandas as pd  # noqa: PLC0415

        rows = []
        for stage, cpu_s in self.cpu["warm"].items():
            row = {"stage": stage, "cpu_cold_s": self.cpu["cold"][stage], "cpu_warm_s": cpu_s}
            if self.gpu:
                gpu_s = self.gpu["warm"][stage]
                counts = self.gpu["counts"][stage]
                row |= {"gpu_cold_s": self.gpu["cold"][stage], "gpu_warm_s": gpu_s,
                        "speedup": cpu_s / gpu_s if gpu_s else None,
                        "gpu_calls": counts["gpu_calls"], "cpu_fallback_calls": counts["cpu_calls"],
                        "cpu_time_share": cpu_share(counts), "fell_back": ", ".join(counts["fallbacks"])}
            else:
                row |= {"accelerated": "not accelerated (CPU path)"}
            rows.append(row)
        total = {"stage": "total", "cpu_cold_s": self.cpu["total_cold_s"], "cpu_warm_s": self.cpu["total_s"]}
        wall = {"stage": "child process wall (start-up, imports, all runs)", "cpu_cold_s": self.cpu["wall_s"]}
        if self.gpu:
            total |= {"gpu_cold_s": self.gpu["total_cold_s"], "gpu_warm_s": self.gpu["total_s"], "speedup": self.speedup,
                      "gpu_calls": sum(c["gpu_calls"] for c in self.gpu["counts"].values()),
                      "cpu_fallback_calls": sum(c["cpu_calls"] for c in self.gpu["counts"].values())}
            wall |= {"gpu_cold_s": self.gpu["wall_s"]}
        return pd.DataFrame(rows + [total, wall]).set_index("stage").round(3)

    def disagreements(self) -> dict[str, tuple[Any, Any]]:
        """Checks whose CPU and GPU values differ beyond :data:`TOLERANCES` (empty without a GPU run)."""
        if not self.gpu:
            return {}
        out = {}
        for key, cpu_v in self.cpu["checks"].items():
            gpu_v = self.gpu["checks"].get(key)
            rule = TOLERANCES.get(key, Tolerance("abs", 0.0, "must match exactly"))
            if gpu_v is None or not rule.allows(cpu_v, gpu_v):
                out[key] = (cpu_v, gpu_v)
        return out

    def problems(self) -> list[str]:
        """Everything that makes the speed-up untrustworthy: disagreeing checks or tables, a GPU path that ran
        nothing on the GPU, or a stage outside :data:`CPU_STAGES` that spent more than :data:`CPU_SHARE_LIMIT` of
        its time in CPU fallbacks (timed by the child's hooks; a child without times: a stage whose calls all fell back).
        """
        found = [f"{k}: CPU {c} vs GPU {g} (tolerance: {TOLERANCES.get(k, Tolerance('abs', 0, 'exact')).why})"
                 for k, (c, g) in self.disagreements().items()]
        found += self.table_differences
        if not self.gpu:
            return found
        if not sum(c["gpu_calls"] for c in self.gpu["counts"].values()):
            found.append("the GPU child ran no call on the GPU: every call fell back to the CPU")
            return found
        for stage, counts in self.gpu["counts"].items():
            if stage in CPU_STAGES:
                continue
            share = cpu_share(counts)
            fell = ", ".join(counts.get("fallbacks", [])) or "unnamed calls"
            if share is not None and share > CPU_SHARE_LIMIT:
                found.append(f"{stage}: {share:.0%} of its time on the CPU (limit {CPU_SHARE_LIMIT:.0%}; fell back: {fell})")
            elif share is None and counts.get("cpu_calls") and not counts.get("gpu_calls"):
                found.append(f"{stage}: ran only on the CPU ({counts['cpu_calls']} calls fell back: {fell})")
        return found

    def record(self, *, prefix: str) -> None:
        """Record warm total seconds per path, the cold totals, and the speed-up when both ran."""
        from ..session import record  # noqa: PLC0415

        note = f"{self.workload} {', '.join(f'{k}={v:,}' for k, v in self.params.items() if k != 'seed')}"
        record(f"{prefix}_cpu_s", round(self.cpu["total_s"], 3), unit="s", note=f"CPU, median of warm runs, {note}")
        record(f"{prefix}_cpu_cold_s", round(self.cpu["total_cold_s"], 3), unit="s", note="CPU, first run in the process")
        if self.gpu:
            where = f"{self.gpu.get('device', 'GPU')}, cudf.pandas memory: {self.gpu.get('memory_mode', '?')}"
            record(f"{prefix}_gpu_s", round(self.gpu["total_s"], 3), unit="s", note=f"{where}, median of warm runs, {note}")
            record(f"{prefix}_gpu_cold_s", round(self.gpu["total_cold_s"], 3), unit="s", note="GPU, first run in the process")
            record(f"{prefix}_speedup", round(self.speedup, 2), unit="×", note=f"warm CPU time / warm GPU time, same data; {where}")


def compare_tables(cpu_dir: Path, gpu_dir: Path, *, rtol: float = 1e-9) -> list[str]:
    """Differences between the result tables two children wrote (sorted; floats within ``rtol``); empty when equal."""
    import pandas as pd  # noqa: PLC0415

    found = []
    for path in sorted(Path(cpu_dir).glob("*.parquet")):
        other = Path(gpu_dir) / path.name
        if not other.exists():
            found.append(f"{path.stem}: the GPU run wrote no table")
            continue
        a, b = pd.read_parquet(path).sort_index(), pd.read_parquet(other).sort_index()
        try:
            pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=rtol, check_index_type=False,
                                          check_column_type=False, check_categorical=False)
        except AssertionError as exc:
            found.append(f"{path.stem}: {' '.join(str(exc).split())[:300]}")
    return found


def compare(name: str, params: Mapping[str, Any], *, timeout: float = 1800) -> Comparison:
    """Time ``name`` on the CPU and, when the device policy lets its GPU work run (:data:`GPU_KINDS`), again under
    cudf.pandas/cuml.accel, on the same data.

    The pandas workload's files are written once here and read by both children; each child
    writes its result tables, which are compared exactly (floats to 1e-9) after sorting.
    """
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="sparkbooks-workload-") as scratch:
        root = Path(scratch)
        params = dict(params)
        child = dict(params)
        if name == "pandas-etl":
            child["data_dir"] = str(write_sales(root / "data", params["n_rows"], seed=params.get("seed", 0)))
            for path in ("cpu", "gpu"):
                (root / path).mkdir()
        cpu = run_isolated(name, child | ({"out_dir": str(root / "cpu")} if name == "pandas-etl" else {}),
                           path="cpu", timeout=timeout)
        kind = GPU_KINDS[name]
        if not devices.use_gpu(kind):  # the one device policy: SPARKBOOKS_ACCELERATOR=cpu starts no GPU child
            return Comparison(name, params, cpu, None, f"GPU run skipped: {devices.probe().reason(kind)}")
        gpu = run_isolated(name, child | ({"out_dir": str(root / "gpu")} if name == "pandas-etl" else {}),
                           path="gpu", timeout=timeout)
        tables = compare_tables(root / "cpu", root / "gpu") if name == "pandas-etl" else []
    return Comparison(name, params, cpu, gpu, "GPU run: cudf.pandas + cuml.accel in a fresh process", tables)


def plot_comparisons(comparisons: Mapping[str, Comparison]):
    """Horizontal bars of warm seconds per stage, CPU and (when measured) GPU, one panel per workload."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(comparisons), figsize=(5.5 * len(comparisons), 3.6), squeeze=False)
    for ax, (title, cmp) in zip(axes[0], comparisons.items()):
        table = cmp.table().iloc[:-2]
        cols = [c for c in ("cpu_warm_s", "gpu_warm_s") if c in table]
        table[cols].plot.barh(ax=ax, color=["#5b5b5b", "#76b900"][: len(cols)])
        ax.set_title(title)
        ax.set_xlabel("seconds, median of warm runs (lower is better)")
        ax.invert_yaxis()
    fig.tight_layout()
    return fig
