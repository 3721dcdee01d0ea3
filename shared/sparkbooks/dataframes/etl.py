"""The pandas workload: read, clean, join, derive, group, roll and rank retail sales — plain pandas, stage by stage,
which cudf.pandas runs on the GPU without a code change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .data import write_sales
from .measure import run_repeated

__all__ = ["SUMMARY_AGGREGATIONS", "pandas_etl"]

#: The monthly summary's columns as ``(input column, aggregation)``: every aggregation a name cuDF's group-by runs on
#: the GPU (a Python function there makes cudf.pandas copy the frame to the host and run the whole ``agg`` in pandas).
SUMMARY_AGGREGATIONS: dict[str, tuple[str, str]] = {
    "revenue": ("revenue", "sum"),
    "margin": ("margin", "mean"),
    "orders": ("revenue", "size"),
    "customers": ("customer_id", "nunique"),
    "bulk": ("is_bulk", "sum"),
}

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
        df = st["df"]
        df["is_bulk"] = df["size_band"] == "bulk"  # counted by a "sum" cuDF runs, not a Python function it cannot
        st["summary"] = df.groupby(["region", "category", "month"]).agg(**SUMMARY_AGGREGATIONS)

    def rolling(st):
        daily = st["df"].groupby(["store_id", "date"])["revenue"].sum().sort_index()
        st["weekly"] = daily.groupby(level="store_id").rolling(7, min_periods=1).mean()

    def top_n(st):
        st["top"] = (st["df"].groupby(["region", "product_id"])["revenue"].sum()
                     .sort_values(ascending=False).groupby(level="region").head(10))

    return [("read_parquet", read_parquet), ("read_csv", read_csv), ("fill_missing", fill_missing), ("join", join),
            ("derive", derive), ("strings", strings), ("apply", apply), ("groupby", groupby), ("rolling", rolling),
            ("top_n", top_n)]


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
        done = run_repeated(stages, repeats=repeats, fresh_state=dict)
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
