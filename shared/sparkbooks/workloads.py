"""Realistic pandas and scikit-learn workloads, timed per stage, for CPU-vs-GPU comparisons.

Each workload runs in a fresh child process (``python -m sparkbooks.workloads``) so the CPU
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .accel import enable, probe_gpu
from .exceptions import AcceleratorUnavailableError, InputError, ServiceExitError
from .timing import Stopwatch

__all__ = [
    "CHILD_ACCEL_VARIABLES",
    "Comparison",
    "WORKLOADS",
    "accelerated_here",
    "compare",
    "make_sales",
    "pandas_etl",
    "plot_comparisons",
    "run_isolated",
    "sklearn_estimators",
    "sklearn_suite",
]

_MARK = "SPARKBOOKS_RESULT "
#: Environment variables through which an accelerated parent switches its children on.
CHILD_ACCEL_VARIABLES = ("CUML_ACCEL_ENABLED", "CUML_ACCEL_LOG_LEVEL")


def make_sales(n_rows: int, *, seed: int = 0, n_stores: int = 500, n_products: int = 5_000) -> dict[str, Any]:
    """Generate a retail data set: ``sales`` (one row per order line), ``products``, ``stores``.

    Deterministic for a given ``seed``; prices, quantities and popularity are skewed like real sales.
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
    return {"sales": sales, "products": products, "stores": stores}


def pandas_etl(n_rows: int, *, seed: int = 0) -> dict[str, Any]:
    """Join, derive, group, roll and rank ``n_rows`` of sales; return stage seconds and checks."""
    watch = Stopwatch()
    stages = watch.seconds
    data = watch.call("generate", make_sales, n_rows, seed=seed)
    sales, products, stores = data["sales"], data["products"], data["stores"]
    df = watch.call("join", lambda: sales.merge(products, on="product_id").merge(stores, on="store_id"))

    def derive():
        df["revenue"] = df["quantity"] * df["unit_price"]
        df["margin"] = df["revenue"] - df["quantity"] * df["unit_cost"]
        df["month"] = df["date"].dt.month
        return df

    df = watch.call("derive", derive)
    summary = watch.call("groupby", lambda: df.groupby(["region", "category", "month"]).agg(
        revenue=("revenue", "sum"), margin=("margin", "mean"), orders=("revenue", "size"),
        customers=("customer_id", "nunique")))

    def rolling():
        daily = df.groupby(["store_id", "date"])["revenue"].sum().sort_index()
        return daily.groupby(level="store_id").rolling(7, min_periods=1).mean()

    weekly = watch.call("rolling", rolling)
    top = watch.call("top_n", lambda: df.groupby(["region", "product_id"])["revenue"].sum()
                 .sort_values(ascending=False).groupby(level="region").head(10))
    timed = {k: v for k, v in stages.items() if k != "generate"}
    return {
        "stages": stages,
        "total_s": sum(timed.values()),
        "checks": {
            "rows_joined": int(len(df)),
            "revenue_total": round(float(summary["revenue"].sum()), 2),
            "groups": int(len(summary)),
            "rolling_points": int(len(weekly)),
            "top_rows": int(len(top)),
        },
    }


def sklearn_estimators(*, seed: int = 0) -> dict[str, Any]:
    """The estimators :func:`sklearn_suite` fits, by stage (cuml.accel swaps in cuML's on a GPU path)."""
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    return {"kmeans": KMeans(n_clusters=8, n_init=3, random_state=seed),
            "random_forest": RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=seed),
            "nearest_neighbors": NearestNeighbors(n_neighbors=10)}


def sklearn_suite(n_samples: int, *, n_features: int = 32, seed: int = 0) -> dict[str, Any]:
    """Fit k-means, a random forest and a nearest-neighbour index; return stage seconds and quality."""
    from sklearn.datasets import make_classification  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    watch = Stopwatch()
    stages = watch.seconds
    X, y = watch.call("generate", lambda: make_classification(
        n_samples=n_samples, n_features=n_features, n_informative=n_features // 2, n_classes=4,
        random_state=seed))
    X = X.astype("float32")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)
    estimators = sklearn_estimators(seed=seed)
    km = watch.call("kmeans", lambda: estimators["kmeans"].fit(X))
    forest = watch.call("random_forest", lambda: estimators["random_forest"].fit(X_train, y_train))
    accuracy = float((forest.predict(X_test) == y_test).mean())
    nn = estimators["nearest_neighbors"]
    dist, _ = watch.call("nearest_neighbors", lambda: nn.fit(X_train).kneighbors(X_test))
    timed = {k: v for k, v in stages.items() if k != "generate"}
    return {
        "stages": stages,
        "total_s": sum(timed.values()),
        "checks": {
            "kmeans_inertia_per_sample": round(float(km.inertia_) / n_samples, 3),
            "forest_accuracy": round(accuracy, 4),
            "mean_knn_distance": round(float(dist.mean()), 3),
        },
    }


WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {"pandas-etl": pandas_etl, "sklearn": sklearn_suite}


def run_isolated(name: str, params: Mapping[str, Any], *, path: str = "cpu", timeout: float = 1800) -> dict[str, Any]:
    """Run workload ``name`` in a fresh Python process on the ``cpu`` or ``gpu`` path.

    Raises
    ------
    InputError
        No workload has that name.
    ServiceExitError
        The child failed; the message carries its last error line.
    """
    if name not in WORKLOADS:
        raise InputError(f"No workload named {name!r}. Workloads: {', '.join(WORKLOADS)}.")
    cmd = [sys.executable, "-m", "sparkbooks.workloads", name, "--path", path, "--params", json.dumps(dict(params))]
    env = dict(os.environ)
    if path == "cpu":
        # cuml.accel.install() exports CUML_ACCEL_ENABLED so children accelerate too (its .pth file installs it at
        # start-up): a CPU baseline must not inherit that, or it silently runs on the GPU.
        for variable in CHILD_ACCEL_VARIABLES:
            env.pop(variable, None)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServiceExitError(f"Workload {name!r} failed on the {path} path: {last}")
    return json.loads(lines[-1][len(_MARK):])


@dataclass
class Comparison:
    """CPU and (when a GPU works) accelerated timings of one workload on the same data."""

    workload: str
    params: dict[str, Any]
    cpu: dict[str, Any]
    gpu: dict[str, Any] | None = None
    gpu_reason: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        return self.cpu["total_s"] / self.gpu["total_s"] if self.gpu else None

    def table(self):
        """Per-stage seconds (and speed-ups when the GPU ran) as a pandas DataFrame."""
        import pandas as pd  # noqa: PLC0415

        rows = []
        for stage, cpu_s in self.cpu["stages"].items():
            row = {"stage": stage, "cpu_s": round(cpu_s, 3)}
            if self.gpu:
                gpu_s = self.gpu["stages"][stage]
                row |= {"gpu_s": round(gpu_s, 3), "speedup": round(cpu_s / gpu_s, 1) if gpu_s else None}
            rows.append(row)
        total = {"stage": "total (excl. generate)", "cpu_s": round(self.cpu["total_s"], 3)}
        if self.gpu:
            total |= {"gpu_s": round(self.gpu["total_s"], 3), "speedup": round(self.speedup, 1)}
        return pd.DataFrame(rows + [total]).set_index("stage")

    def disagreements(self, *, rtol: float = 1e-3) -> dict[str, tuple[Any, Any]]:
        """Checks whose CPU and GPU values differ by more than ``rtol`` (empty without a GPU run)."""
        if not self.gpu:
            return {}
        out = {}
        for key, cpu_v in self.cpu["checks"].items():
            gpu_v = self.gpu["checks"].get(key)
            if gpu_v is None or abs(cpu_v - gpu_v) > rtol * max(abs(cpu_v), 1e-12):
                out[key] = (cpu_v, gpu_v)
        return out

    def record(self, *, prefix: str) -> None:
        """Record total seconds per path, and the speed-up when both ran."""
        from .session import record  # noqa: PLC0415

        note = f"{self.workload} {', '.join(f'{k}={v:,}' for k, v in self.params.items() if k != 'seed')}"
        record(f"{prefix}_cpu_s", round(self.cpu["total_s"], 3), unit="s", note=f"CPU, {note}")
        if self.gpu:
            record(f"{prefix}_gpu_s", round(self.gpu["total_s"], 3), unit="s", note=f"GPU, {note}")
            record(f"{prefix}_speedup", round(self.speedup, 2), unit="×", note="CPU time / GPU time, same data")


def plot_comparisons(comparisons: Mapping[str, Comparison]):
    """Horizontal bars of seconds per stage, CPU and (when measured) GPU, one panel per workload."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(comparisons), figsize=(5.5 * len(comparisons), 3.2), squeeze=False)
    for ax, (title, cmp) in zip(axes[0], comparisons.items()):
        table = cmp.table().drop(index="total (excl. generate)")
        cols = [c for c in ("cpu_s", "gpu_s") if c in table]
        table[cols].plot.barh(ax=ax, color=["#5b5b5b", "#76b900"][: len(cols)])
        ax.set_title(title)
        ax.set_xlabel("seconds (lower is better)")
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def compare(name: str, params: Mapping[str, Any], *, timeout: float = 1800) -> Comparison:
    """Time ``name`` on the CPU and, when the GPU probe passes, again under cudf.pandas/cuml.accel."""
    cpu = run_isolated(name, params, path="cpu", timeout=timeout)
    probe = probe_gpu()
    if not probe.ok:
        return Comparison(name, dict(params), cpu, None, f"GPU run skipped: {probe.detail}")
    gpu = run_isolated(name, params, path="gpu", timeout=timeout)
    return Comparison(name, dict(params), cpu, gpu, "GPU run: cudf.pandas + cuml.accel in a fresh process")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkbooks.workloads", description=__doc__)
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
    params = json.loads(args.params)
    n = params.pop("n_rows", params.pop("n_samples", None))
    result = WORKLOADS[args.workload](n, **params)
    result["path"] = status.describe()
    result["accelerators"] = accelerated_here()
    print(_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
