"""Realistic pandas and scikit-learn workloads, timed per stage, for CPU-vs-GPU comparisons.

Each workload runs in a fresh child process (``python -m sparkbooks.dataframes.workloads``) so the CPU
run and the accelerated run start equal: the GPU child installs ``cudf.pandas`` and
``cuml.accel`` before pandas or scikit-learn is imported, exactly as a user script would.
Nothing here imports pandas at module level for the same reason.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..accel import enable, probe_gpu
from ..exceptions import AcceleratorUnavailableError, InputError, ServiceExitError
from ..timing import Stopwatch

__all__ = [
    "CHILD_ACCEL_VARIABLES",
    "Comparison",
    "REQUIRED_ACCELERATORS",
    "TOLERANCES",
    "Tolerance",
    "WORKLOADS",
    "accelerated_here",
    "compare",
    "compare_tables",
    "make_sales",
    "pandas_etl",
    "plot_comparisons",
    "run_isolated",
    "sklearn_estimators",
    "sklearn_suite",
    "write_sales",
]

_MARK = "SPARKBOOKS_RESULT "
#: Environment variables through which an accelerated parent switches its children on.
CHILD_ACCEL_VARIABLES = ("CUML_ACCEL_ENABLED", "CUML_ACCEL_LOG_LEVEL")


def make_sales(n_rows: int, *, seed: int = 0, n_stores: int = 500, n_products: int = 5_000,
               missing: float = 0.0) -> dict[str, Any]:
    """Generate a retail data set: ``sales`` (one row per order line), ``products``, ``stores``.

    Deterministic for a given ``seed``; prices, quantities and popularity are skewed like real sales.
    ``missing`` is the share of order lines whose ``unit_price`` is missing (NaN), as in real exports.
    """
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    regions = np.array(["north", "south", "east", "west", "central", "coast", "mountain", "islands"])
    stores = pd.DataFrame({
        "store_id": np.arange(n_stores, dtype="int32"),
        "region": regions[rng.integers(0, len(regions), n_stores)],
        "floor_m2": rng.integers(200, 5_000, n_stores).astype("int32"),
    })
    categories = np.array([f"cat-{i:02d}" for i in range(20)])
    base_price = np.round(rng.lognormal(2.5, 0.8, n_products), 2)
    products = pd.DataFrame({
        "product_id": np.arange(n_products, dtype="int32"),
        "category": categories[rng.integers(0, len(categories), n_products)],
        "unit_cost": np.round(base_price * rng.uniform(0.4, 0.8, n_products), 2),
    })
    popularity = rng.zipf(1.3, n_rows) % n_products  # a few best-sellers, a long tail
    sales = pd.DataFrame({
        "date": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n_rows), unit="D"),
        "store_id": rng.integers(0, n_stores, n_rows).astype("int32"),
        "product_id": popularity.astype("int32"),
        "customer_id": rng.integers(0, max(n_rows // 10, 1), n_rows).astype("int64"),
        "quantity": (rng.poisson(1.5, n_rows) + 1).astype("int16"),
        "unit_price": np.round(base_price[popularity] * rng.uniform(0.9, 1.1, n_rows), 2),
    })
    if missing:
        sales.loc[rng.random(n_rows) < missing, "unit_price"] = np.nan
    return {"sales": sales, "products": products, "stores": stores}


def write_sales(folder: Path, n_rows: int, *, seed: int = 0) -> Path:
    """Write the data set once as files both paths read: sales as Parquet and CSV, products and stores as Parquet."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = make_sales(n_rows, seed=seed, missing=0.02)
    data["sales"].to_parquet(folder / "sales.parquet", index=False)
    data["sales"].to_csv(folder / "sales.csv", index=False)
    for name in ("products", "stores"):
        data[name].to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _etl_stages(folder: Path) -> list[tuple[str, Callable[[dict], Any]]]:
    """The ETL as named stages over a shared state; each stage is what a user would write in plain pandas."""
    import pandas as pd  # noqa: PLC0415 - cudf.pandas' proxy when the child switched it on

    def read_parquet(st):
        st["sales"] = pd.read_parquet(folder / "sales.parquet")
        st["products"] = pd.read_parquet(folder / "products.parquet")
        st["stores"] = pd.read_parquet(folder / "stores.parquet")

    def read_csv(st):
        st["sales_csv"] = pd.read_csv(folder / "sales.csv", parse_dates=["date"])

    def fill_missing(st):  # a missing price takes its product's median price
        s = st["sales"]
        s["unit_price"] = s["unit_price"].fillna(s.groupby("product_id")["unit_price"].transform("median"))

    def join(st):
        st["df"] = st["sales"].merge(st["products"], on="product_id").merge(st["stores"], on="store_id")

    def derive(st):
        df = st["df"]
        df["revenue"] = df["quantity"] * df["unit_price"]
        df["margin"] = df["revenue"] - df["quantity"] * df["unit_cost"]
        df["month"] = df["date"].dt.month
        df["weekday"] = df["date"].dt.dayofweek
        df["days_in"] = (df["date"] - df["date"].min()).dt.days
        df["weekend"] = df["weekday"] >= 5

    def strings(st):
        df = st["df"]
        df["category_code"] = df["category"].str.upper().str.replace("CAT-", "C", regex=False)
        df["coastal"] = df["region"].str.contains("coast|islands", regex=True)

    def apply(st):  # a Python function per value: the step most likely to fall back to the CPU
        st["df"]["size_band"] = st["df"]["quantity"].apply(lambda q: "bulk" if q >= 4 else "single")

    def groupby(st):
        st["summary"] = st["df"].groupby(["region", "category", "month"]).agg(
            revenue=("revenue", "sum"), margin=("margin", "mean"), orders=("revenue", "size"),
            customers=("customer_id", "nunique"), bulk=("size_band", lambda b: (b == "bulk").sum()))

    def rolling(st):
        daily = st["df"].groupby(["store_id", "date"])["revenue"].sum().sort_index()
        st["weekly"] = daily.groupby(level="store_id").rolling(7, min_periods=1).mean()

    def top_n(st):
        st["top"] = (st["df"].groupby(["region", "product_id"])["revenue"].sum()
                     .sort_values(ascending=False).groupby(level="region").head(10))

    return [("read_parquet", read_parquet), ("read_csv", read_csv), ("fill_missing", fill_missing), ("join", join),
            ("derive", derive), ("strings", strings), ("apply", apply), ("groupby", groupby), ("rolling", rolling),
            ("top_n", top_n)]


def _gpu_sync() -> None:
    """Wait for queued GPU work before a clock read (cupy is loaded whenever cudf is)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.cuda.runtime.deviceSynchronize()


@contextmanager
def _cudf_pandas_tally() -> Iterator[dict[str, Any]]:
    """Count cudf.pandas' GPU calls and CPU fallbacks through the two hooks its own pytest profiler uses.

    cudf.pandas calls ``_fast_function_call()`` after every call that ran on the GPU and
    ``_slow_function_call()`` before every fallback; wrapping them costs nothing per call, where its
    public ``Profiler`` traces every Python line (minutes on a large frame).
    """
    from cudf.pandas import fast_slow_proxy as fsp  # noqa: PLC0415

    tally: dict[str, Any] = {"gpu": 0, "cpu": 0, "fallbacks": set()}
    fast, slow = fsp._fast_function_call, fsp._slow_function_call

    def on_fast():
        tally["gpu"] += 1

    def on_slow():
        tally["cpu"] += 1
        args = sys._getframe(1).f_locals.get("slow_args") or (None,)
        tally["fallbacks"].add(getattr(args[0], "__qualname__", type(args[0]).__qualname__))

    fsp._fast_function_call, fsp._slow_function_call = on_fast, on_slow
    try:
        yield tally
    finally:
        fsp._fast_function_call, fsp._slow_function_call = fast, slow


def _profiled_counts(stages: list[tuple[str, Callable[[dict], Any]]], state: dict) -> dict[str, dict[str, Any]]:
    """Per stage: calls cudf.pandas / cuml.accel ran on the GPU, calls they sent to the CPU, and which functions fell back.

    cudf.pandas' counts come from its own call hooks, cuml.accel's from ``cuml.accel.profile``; the
    counting run is separate from the timed ones.
    """
    from contextlib import ExitStack  # noqa: PLC0415

    on = accelerated_here()
    if not on:  # a CPU child: nothing to count, so no extra run
        return {name: {"gpu_calls": 0, "cpu_calls": 0, "fallbacks": []} for name, _ in stages}
    counts = {}
    for name, fn in stages:
        with ExitStack() as stack:
            pandas_tally = stack.enter_context(_cudf_pandas_tally()) if "cudf.pandas" in on else None
            accel_prof = None
            if "cuml.accel" in on:
                import cuml.accel  # noqa: PLC0415

                accel_prof = stack.enter_context(cuml.accel.profile(quiet=True))
            fn(state)
        gpu = cpu = 0
        fallbacks: set[str] = set()
        if pandas_tally is not None:
            gpu, cpu, fallbacks = pandas_tally["gpu"], pandas_tally["cpu"], set(pandas_tally["fallbacks"])
        if accel_prof is not None:
            for method, stats in accel_prof.method_calls.items():
                gpu, cpu = gpu + stats.gpu_calls, cpu + stats.cpu_calls
                if stats.cpu_calls:
                    reasons = "; ".join(sorted(stats.fallback_reasons))
                    fallbacks.add(method + (f" ({reasons})" if reasons else ""))
        counts[name] = {"gpu_calls": gpu, "cpu_calls": cpu, "fallbacks": sorted(fallbacks)}
    return counts


def _run_repeated(stages, *, repeats: int, fresh_state: Callable[[], dict]) -> dict[str, Any]:
    """One cold run, ``repeats`` warm runs (median per stage), then (accelerated only) one profiled run for call counts."""
    import statistics  # noqa: PLC0415

    runs, state = [], {}
    for _ in range(1 + repeats):
        state = fresh_state()
        watch = Stopwatch(sync=_gpu_sync)
        for name, fn in stages:
            watch.call(name, fn, state)
        runs.append(watch.seconds)
    counts = _profiled_counts(stages, fresh_state() if accelerated_here() else {})
    warm = {name: statistics.median(r[name] for r in runs[1:]) for name, _ in stages}
    return {"cold": runs[0], "warm": warm, "warm_runs": {n: [r[n] for r in runs[1:]] for n, _ in stages},
            "total_cold_s": sum(runs[0].values()), "total_s": sum(warm.values()), "counts": counts, "state": state}


def pandas_etl(n_rows: int, *, seed: int = 0, data_dir: str | None = None, out_dir: str | None = None,
               repeats: int = 3) -> dict[str, Any]:
    """Read, clean, join, derive, group, roll and rank ``n_rows`` of sales; stage seconds, call counts and checks.

    Reads the files :func:`write_sales` wrote in ``data_dir`` (written here when it is None). The
    result tables (summary, rolling means, top products) go to ``out_dir`` as Parquet for an exact comparison.
    """
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(data_dir) if data_dir else write_sales(Path(scratch), n_rows, seed=seed)
        stages = _etl_stages(folder)
        done = _run_repeated(stages, repeats=repeats, fresh_state=dict)
    st = done.pop("state")
    if out_dir:
        tables = {"summary": st["summary"], "weekly": st["weekly"].to_frame("revenue_7d"), "top": st["top"].to_frame("revenue")}
        for name, table in tables.items():
            table.to_parquet(Path(out_dir) / f"{name}.parquet")
    return done | {"checks": {
        "rows_joined": int(len(st["df"])),
        "csv_rows": int(len(st["sales_csv"])),
        "revenue_total": float(st["summary"]["revenue"].sum()),
        "margin_mean": float(st["df"]["margin"].mean()),
        "customers_total": int(st["summary"]["customers"].sum()),
        "groups": int(len(st["summary"])),
        "rolling_points": int(len(st["weekly"])),
        "missing_prices_left": int(st["df"]["unit_price"].isna().sum()),
    }}


def sklearn_estimators(*, seed: int = 0) -> dict[str, Any]:
    """The estimators :func:`sklearn_suite` fits, by name (cuml.accel swaps in cuML's on a GPU path)."""
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.decomposition import PCA  # noqa: PLC0415
    from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    return {"kmeans": KMeans(n_clusters=8, n_init=3, random_state=seed),
            "random_forest": RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=seed),
            "logistic_regression": LogisticRegression(max_iter=500),
            "pca": PCA(n_components=8, random_state=seed),
            "nearest_neighbors": NearestNeighbors(n_neighbors=10)}


def sklearn_suite(n_samples: int, *, n_features: int = 32, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Fit and predict with five estimators, cold then warm; stage seconds, call counts and quality checks."""
    from sklearn.datasets import make_classification  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=n_features // 2,
                               n_classes=4, random_state=seed)
    X = X.astype("float32")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)

    def fresh():
        return {"est": sklearn_estimators(seed=seed)}

    def stage(name, fn):
        return name, fn

    stages = [
        stage("kmeans_fit", lambda st: st.__setitem__("km", st["est"]["kmeans"].fit(X))),
        stage("forest_fit", lambda st: st["est"]["random_forest"].fit(X_train, y_train)),
        stage("forest_predict", lambda st: st.__setitem__("forest_pred", st["est"]["random_forest"].predict(X_test))),
        stage("logistic_fit", lambda st: st["est"]["logistic_regression"].fit(X_train, y_train)),
        stage("logistic_predict", lambda st: st.__setitem__("logit_pred", st["est"]["logistic_regression"].predict(X_test))),
        stage("pca_fit_transform", lambda st: st.__setitem__("pca_out", st["est"]["pca"].fit_transform(X))),
        stage("nearest_neighbors", lambda st: st.__setitem__("knn", st["est"]["nearest_neighbors"].fit(X_train).kneighbors(X_test))),
    ]
    done = _run_repeated(stages, repeats=repeats, fresh_state=fresh)
    st = done.pop("state")
    return done | {"checks": {
        "kmeans_inertia_per_sample": float(st["km"].inertia_) / n_samples,
        "forest_accuracy": float((st["forest_pred"] == y_test).mean()),
        "logistic_accuracy": float((st["logit_pred"] == y_test).mean()),
        "pca_explained_variance": float(st["est"]["pca"].explained_variance_ratio_.sum()),
        "mean_knn_distance": float(st["knn"][0].mean()),
    }}


WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {"pandas-etl": pandas_etl, "sklearn": sklearn_suite}
#: What each workload needs switched on in its GPU child; missing one is an error, not a quiet CPU run.
REQUIRED_ACCELERATORS: dict[str, tuple[str, ...]] = {"pandas-etl": ("cudf.pandas",), "sklearn": ("cuml.accel",)}


@dataclass(frozen=True)
class Tolerance:
    """How far a GPU check may differ from the CPU's, and why the libraries legitimately differ."""

    kind: str  # "abs" or "rel"
    limit: float
    why: str

    def allows(self, cpu: float, gpu: float) -> bool:
        gap = abs(cpu - gpu)
        return gap <= self.limit * (max(abs(cpu), 1e-12) if self.kind == "rel" else 1.0)


#: Per-check tolerances; a check not listed must match exactly.
TOLERANCES: dict[str, Tolerance] = {
    "revenue_total": Tolerance("rel", 1e-9, "float64 sums in a different order"),
    "margin_mean": Tolerance("rel", 1e-9, "float64 sums in a different order"),
    "kmeans_inertia_per_sample": Tolerance("rel", 0.01, "k-means++ seeding differs between scikit-learn and cuML"),
    "forest_accuracy": Tolerance("abs", 0.02, "cuML's forest picks splits from 128 quantile bins, not every threshold"),
    "logistic_accuracy": Tolerance("abs", 0.01, "cuML's QN solver and lbfgs stop at slightly different optima"),
    "pca_explained_variance": Tolerance("rel", 1e-3, "float32 eigen-solvers"),
    "mean_knn_distance": Tolerance("rel", 1e-4, "exact neighbours both ways; float32 distances"),
}


def run_isolated(name: str, params: Mapping[str, Any], *, path: str = "cpu", timeout: float = 1800) -> dict[str, Any]:
    """Run workload ``name`` in a fresh Python process on the ``cpu`` or ``gpu`` path; adds the child's wall time.

    Raises
    ------
    InputError
        No workload has that name.
    ServiceExitError
        The child failed; the message carries its last error line.
    """
    if name not in WORKLOADS:
        raise InputError(f"No workload named {name!r}. Workloads: {', '.join(WORKLOADS)}.")
    cmd = [sys.executable, "-m", "sparkbooks.dataframes.workloads", name, "--path", path, "--params", json.dumps(dict(params))]
    env = dict(os.environ)
    if path == "cpu":
        # cuml.accel.install() exports CUML_ACCEL_ENABLED so children accelerate too (its .pth file installs it at
        # start-up): a CPU baseline must not inherit that, or it silently runs on the GPU.
        for variable in CHILD_ACCEL_VARIABLES:
            env.pop(variable, None)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - start
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServiceExitError(f"Workload {name!r} failed on the {path} path: {last}")
    return json.loads(lines[-1][len(_MARK):]) | {"wall_s": wall}


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
                        "fell_back": ", ".join(counts["fallbacks"])}
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
        """Everything that makes the speed-up untrustworthy: disagreeing checks or tables, or a GPU path that ran nothing on the GPU."""
        found = [f"{k}: CPU {c} vs GPU {g} (tolerance: {TOLERANCES.get(k, Tolerance('abs', 0, 'exact')).why})"
                 for k, (c, g) in self.disagreements().items()]
        found += self.table_differences
        if self.gpu and not sum(c["gpu_calls"] for c in self.gpu["counts"].values()):
            found.append("the GPU child ran no call on the GPU: every call fell back to the CPU")
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


def compare(name: str, params: Mapping[str, Any], *, timeout: float = 1800) -> Comparison:
    """Time ``name`` on the CPU and, when the GPU probe passes, again under cudf.pandas/cuml.accel, on the same data.

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
        probe = probe_gpu()
        if not probe.ok:
            return Comparison(name, params, cpu, None, f"GPU run skipped: {probe.detail}")
        gpu = run_isolated(name, child | ({"out_dir": str(root / "gpu")} if name == "pandas-etl" else {}),
                           path="gpu", timeout=timeout)
        tables = compare_tables(root / "cpu", root / "gpu") if name == "pandas-etl" else []
    return Comparison(name, params, cpu, gpu, "GPU run: cudf.pandas + cuml.accel in a fresh process", tables)


def accelerated_here() -> list[str]:
    """The zero-code-change accelerators switched on in this process (a CPU baseline must have none)."""
    on = []
    cudf_pandas = sys.modules.get("cudf.pandas")
    if cudf_pandas is not None and getattr(cudf_pandas, "LOADED", False):
        on.append("cudf.pandas")
    cuml_accel = sys.modules.get("cuml.accel")
    if cuml_accel is not None and cuml_accel.enabled():
        on.append("cuml.accel")
    return on


def _device_name() -> str:
    cupy = sys.modules.get("cupy")
    try:
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a label only: never fail a measured run for it
        return "unknown GPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkbooks.dataframes.workloads", description=__doc__)
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--path", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--params", default="{}", help="JSON object of keyword arguments")
    args = parser.parse_args(argv)
    try:
        status = enable(prefer=args.path)  # before pandas / sklearn are imported
    except AcceleratorUnavailableError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.path == "cpu" and accelerated_here():
        print(f"AcceleratorUnavailableError: the CPU baseline found {', '.join(accelerated_here())} switched on "
              "(inherited from the parent): its timings would be GPU timings.", file=sys.stderr)
        return 1
    missing = [a for a in REQUIRED_ACCELERATORS[args.workload] if a not in accelerated_here()]
    if args.path == "gpu" and missing:
        print(f"AcceleratorUnavailableError: the GPU child has {', '.join(missing)} switched off; its timings would be "
              "CPU timings. Run `sparkbooks doctor` and check that cudf and cuml come from one RAPIDS release.",
              file=sys.stderr)
        return 1
    params = json.loads(args.params)
    n = params.pop("n_rows", params.pop("n_samples", None))
    result = WORKLOADS[args.workload](n, **params)
    result["path"] = status.describe()
    result["accelerators"] = accelerated_here()
    if args.path == "gpu":
        result["device"] = _device_name()
        # cudf.pandas picks its RMM memory resource from this variable (managed memory by default where supported)
        result["memory_mode"] = os.environ.get("CUDF_PANDAS_RMM_MODE", "cudf.pandas default")
    print(_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
