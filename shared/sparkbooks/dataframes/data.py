"""The start-here data: a deterministic retail data set (orders, products, stores), in memory or as files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["make_sales", "write_sales"]


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
