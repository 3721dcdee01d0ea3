"""Is a difference between strategies real, and was a risk forecast right: the tests that judge a backtest.

:func:`sharpe_test` (Ledoit–Wolf-style HAC test of a Sharpe-ratio difference of excess returns, the iid test, and a
circular block-bootstrap interval), :func:`var_backtest` (Kupiec's test and Christoffersen's independence and
conditional-coverage tests of the forecast VaR, and the realised shortfall against the forecast CVaR) and
:func:`es_backtest` (Acerbi & Szekely's Z₂ for the forecast expected shortfall, simulated p-value).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erf, sqrt

import numpy as np

from ..exceptions import InputError
from .market_data import TRADING_DAYS

__all__ = ["SharpeTest", "es_backtest", "sharpe_test", "var_backtest"]


def _normal_sf(z: float) -> float:
    return 0.5 * (1 - erf(z / sqrt(2)))


def _newey_west(v: np.ndarray, lag: int) -> np.ndarray:
    """Newey–West (Bartlett) long-run covariance of the rows of ``v`` (T × k), each column demeaned."""
    v = v - v.mean(axis=0)
    t = len(v)
    cov = v.T @ v / t
    for k in range(1, lag + 1):
        gamma = v[k:].T @ v[:-k] / t
        cov += (1 - k / (lag + 1)) * (gamma + gamma.T)
    return cov


@dataclass(frozen=True)
class SharpeTest:
    """A difference of annualised Sharpe ratios, its HAC standard error and p-value, an iid p-value and a bootstrap interval."""

    sharpe_a: float
    sharpe_b: float
    difference: float
    se_hac: float
    p_hac: float
    p_iid: float
    ci_low: float
    ci_high: float


def sharpe_test(a, b, *, risk_free=None, block: int = 21, n_boot: int = 2000, seed: int = 0) -> SharpeTest:
    """Is strategy ``a``'s Sharpe ratio different from ``b``'s (same days)?

    Sharpe ratios are of excess returns: ``risk_free`` (the same days' risk-free returns, e.g. T-bills) is
    subtracted from both series first; without it the ratios are over a 0 % rate.

    * HAC test (Ledoit & Wolf 2008, §3.1): the delta method on the four moments (means and second
      moments of both series), their covariance by Newey–West with lag ⌊4(T/100)^(2/9)⌋ — robust to
      fat tails and autocorrelation, unlike
    * the iid test (Jobson & Korkie 1981 with Memmel's 2003 correction), shown for comparison;
    * a 95% circular block-bootstrap interval (blocks of ``block`` days) for the difference.
    """
    x = np.column_stack([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    if risk_free is not None:
        rf = np.asarray(risk_free, dtype=np.float64).reshape(-1)
        if rf.shape != (len(x),):
            raise InputError(f"risk_free must hold one return per day ({len(x)}); got {rf.shape[0]}.")
        x = x - rf[:, None]
    x = x[np.isfinite(x).all(axis=1)]
    t = len(x)
    if t < 60:
        raise InputError(f"{t} common days are too few to test a Sharpe difference.")
    ann = np.sqrt(TRADING_DAYS)

    def sharpe(columns: np.ndarray) -> np.ndarray:
        return columns.mean(axis=0) / columns.std(axis=0, ddof=0)

    sa, sb = sharpe(x)
    mu1, mu2 = x.mean(axis=0)
    g1, g2 = (x**2).mean(axis=0)
    grad = np.array([g1 / (g1 - mu1**2) ** 1.5, -g2 / (g2 - mu2**2) ** 1.5,
                     -0.5 * mu1 / (g1 - mu1**2) ** 1.5, 0.5 * mu2 / (g2 - mu2**2) ** 1.5])
    moments = np.column_stack([x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 1] ** 2])
    lag = int(np.floor(4 * (t / 100) ** (2 / 9)))
    se = float(np.sqrt(grad @ _newey_west(moments, lag) @ grad / t))
    diff = sa - sb
    p_hac = 2 * _normal_sf(abs(diff) / se)
    rho = float(np.corrcoef(x.T)[0, 1])
    var_iid = (2 - 2 * rho + 0.5 * (sa**2 + sb**2 - 2 * sa * sb * rho**2)) / t
    p_iid = 2 * _normal_sf(abs(diff) / np.sqrt(var_iid))
    rng = np.random.default_rng(seed)
    n_blocks = -(-t // block)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        starts = rng.integers(0, t, size=n_blocks)
        rows = ((starts[:, None] + np.arange(block)[None, :]) % t).ravel()[:t]
        sample = sharpe(x[rows])
        diffs[i] = sample[0] - sample[1]
    low, high = np.percentile(diffs, [2.5, 97.5])
    return SharpeTest(float(sa * ann), float(sb * ann), float(diff * ann), float(se * ann), float(p_hac), float(p_iid),
                      float(low * ann), float(high * ann))


def var_backtest(daily_returns, forecast, *, level: float = 0.95) -> dict[str, float]:
    """Kupiec's proportion-of-failures test, Christoffersen's independence and conditional-coverage tests
    (LR_cc = LR_pof + LR_ind, χ² with 2 degrees of freedom) of a daily VaR forecast, and the realised mean loss
    on breach days against the forecast CVaR there (1 = the forecast shortfall was right)."""
    from scipy.stats import chi2  # noqa: PLC0415

    frame = np.column_stack([-np.asarray(daily_returns, dtype=np.float64), np.asarray(forecast, dtype=np.float64)])
    frame = frame[np.isfinite(frame).all(axis=1)]
    loss, var, es = frame[:, 0], frame[:, 1], frame[:, 2]
    hit = loss > var
    t, x = len(hit), int(hit.sum())
    p = 1 - level

    def loglik(q: float, k: int, n: int) -> float:
        return (n - k) * np.log(1 - q) + k * np.log(q) if 0 < q < 1 else 0.0

    lr_pof = -2 * (loglik(p, x, t) - loglik(x / t, x, t))
    prev, cur = hit[:-1], hit[1:]
    n00, n01 = int(np.sum(~prev & ~cur)), int(np.sum(~prev & cur))
    n10, n11 = int(np.sum(prev & ~cur)), int(np.sum(prev & cur))
    pi01 = n01 / max(n00 + n01, 1)
    pi11 = n11 / max(n10 + n11, 1)
    pi = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    lr_ind = -2 * ((loglik(pi, n01 + n11, n00 + n01 + n10 + n11))
                   - (loglik(pi01, n01, n00 + n01) + loglik(pi11, n11, n10 + n11)))
    return {"days": t, "breaches": x, "breach_rate": x / t, "expected_rate": p,
            "kupiec_p": float(chi2.sf(lr_pof, 1)), "christoffersen_p": float(chi2.sf(max(lr_ind, 0.0), 1)),
            "conditional_coverage_p": float(chi2.sf(max(lr_pof, 0.0) + max(lr_ind, 0.0), 2)),
            "shortfall_ratio": float(loss[hit].mean() / es[hit].mean()) if x else float("nan")}


def es_backtest(daily_returns, var, es, *, samples, which, level: float = 0.95, n_sim: int = 2000,
                seed: int = 0) -> dict[str, float]:
    """Acerbi & Szekely's (2014) second test of an expected-shortfall forecast, with its simulated p-value.

    ``Z₂ = 1 − Σₜ Lₜ·1{Lₜ > VaRₜ} / (T·(1 − level)·ESₜ)`` for losses ``Lₜ = −returnₜ``: 0 in expectation when the
    forecast distribution is right, negative when it understates the tail. Its distribution under that null is
    simulated by drawing each day's loss from the forecast distribution itself — ``samples[which[t]]``, the
    losses the forecast for day t was computed from (a historical forecast: its window) — ``n_sim`` times. The
    p-value is the share of simulated Z₂ at or below the realised one (one-sided: risk understated).

    Raises
    ------
    InputError
        The arrays disagree in length, or ``which`` points outside ``samples``.
    """
    returns = np.asarray(daily_returns, dtype=np.float64)
    var, es, which = (np.asarray(v, dtype=np.float64) for v in (var, es, which))
    if not (len(returns) == len(var) == len(es) == len(which)):
        raise InputError("daily_returns, var, es and which must hold one value per day.")
    keep = np.isfinite(returns) & np.isfinite(var) & np.isfinite(es) & np.isfinite(which)
    loss, var, es, which = -returns[keep], var[keep], es[keep], which[keep].astype(int)
    if len(loss) == 0 or which.min() < 0 or which.max() >= len(samples):
        raise InputError("No day has a forecast, or which points outside samples.")
    t, tail = len(loss), 1.0 - level

    observed = float(1.0 - np.sum(loss * (loss > var) / es) / (t * tail))
    rng = np.random.default_rng(seed)
    simulated = np.zeros(n_sim)
    for g in np.unique(which):  # one draw of n_sim × (days of this forecast) per forecast distribution
        days = np.flatnonzero(which == g)
        pool = np.asarray(samples[g], dtype=np.float64)
        draw = pool[rng.integers(0, len(pool), size=(n_sim, len(days)))]
        simulated += (draw * (draw > var[days]) / es[days]).sum(axis=1)
    simulated = 1.0 - simulated / (t * tail)
    return {"z2": observed, "p_value": float((1 + np.sum(simulated <= observed)) / (n_sim + 1)), "days": t,
            "simulated_mean": float(simulated.mean())}
