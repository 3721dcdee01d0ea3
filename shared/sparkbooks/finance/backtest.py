"""Walk-forward portfolio backtests, judged the way a quant would: costs, baselines, significance, risk forecasts.

At every rebalance date each strategy sees only the ``lookback`` days before it (a test poisons
every later day with NaN, which :class:`~sparkbooks.finance.cvar.CVaRProblem` refuses, so any peek fails).
Between rebalances holdings drift with prices; each rebalance pays ``cost_bp`` per unit traded.

Strategies: minimum CVaR on the historical window itself (no resampling noise), the same with
the trading cost inside the optimisation, long-only minimum variance, and equal weight — all
under the same weight cap and costs.

Judging: :func:`performance` (with a risk-free series when given), :func:`sharpe_test`
(Ledoit–Wolf-style HAC test of a Sharpe-ratio difference of excess returns, and a circular
block-bootstrap interval), :func:`var_backtest` (Kupiec's test and Christoffersen's independence and
conditional-coverage tests of the forecast VaR, and the realised shortfall against the forecast CVaR)
and :func:`es_backtest` (Acerbi & Szekely's Z₂ for the forecast expected shortfall, simulated p-value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import erf, sqrt
from typing import Any

import numpy as np

from . import cvar as cv
from ..exceptions import InputError

__all__ = ["Backtest", "STRATEGIES", "SharpeTest", "backtest", "es_backtest", "min_variance", "performance",
           "plot_backtest", "rebalance_weights", "sharpe_test", "var_backtest"]

TRADING_DAYS = 252
STRATEGIES = ("Min-CVaR", "Min-CVaR, cost-aware", "Min-variance", "Equal weight")


def min_variance(history: np.ndarray, *, upper: float = 1.0) -> np.ndarray:
    """Long-only minimum-variance weights (Σw = 1, 0 ≤ w ≤ upper) from the sample covariance of ``history``.

    A primal active-set method on the quadratic programme's optimality conditions: solve with the
    current bounds fixed, fix the worst violated bound, release a bound whose multiplier has the
    wrong sign, until both hold (a handful of steps for tens of assets).
    """
    data = np.asarray(history, dtype=np.float64)
    if not np.isfinite(data).all():
        raise InputError("The history holds NaN: the lookback window reached data that is not known yet.")
    cov = np.cov(data, rowvar=False)
    n = cov.shape[0]
    if upper * n < 1 - 1e-12:
        raise InputError(f"No long-only portfolio of {n} assets fits a cap of {upper}: need upper ≥ 1/n.")
    fixed: dict[int, float] = {}
    w = np.full(n, 1.0 / n)
    for _ in range(20 * n):
        free = np.array([i for i in range(n) if i not in fixed])
        w = np.zeros(n)
        for i, value in fixed.items():
            w[i] = value
        k = len(free)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = cov[np.ix_(free, free)]
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.concatenate([-cov[np.ix_(free, list(fixed))] @ w[list(fixed)] if fixed else np.zeros(k),
                              [1.0 - sum(fixed.values())]])
        solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        w[free], nu = solution[:k], solution[k]
        below, above = w[free] < -1e-12, w[free] > upper + 1e-12
        if below.any() or above.any():
            excess = np.where(below, -w[free], np.where(above, w[free] - upper, 0.0))
            worst = free[int(np.argmax(excess))]
            fixed[int(worst)] = 0.0 if w[worst] < 0 else upper
            continue
        gradient = cov @ w + nu  # KKT: Σw + ν1 = λ_lo − λ_hi with λ ≥ 0
        wrong = {i: (gradient[i] if value == 0.0 else -gradient[i]) for i, value in fixed.items()}
        release = min(wrong, key=wrong.get) if wrong else None
        if release is None or wrong[release] >= -1e-12:
            return np.clip(w, 0.0, upper)
        del fixed[release]
    return np.clip(w, 0.0, upper)


def rebalance_weights(returns: np.ndarray, t: int, strategy: str, *, lookback: int, upper: float, beta: float = 0.95,
                      previous: np.ndarray | None = None, cost: float = 0.0) -> cv.CVaRSolution | np.ndarray:
    """The weights ``strategy`` holds from day ``t`` on, from the ``lookback`` days strictly before ``t`` only."""
    history = np.asarray(returns[t - lookback:t], dtype=np.float64)
    n = history.shape[1]
    if strategy == "Equal weight":
        return np.full(n, 1.0 / n)
    if strategy == "Min-variance":
        if not np.isfinite(history).all():
            raise InputError("The history holds NaN: the lookback window reached data that is not known yet.")
        return min_variance(history, upper=upper)
    if strategy == "Min-CVaR":
        return cv.solve(cv.CVaRProblem(history, beta=beta, upper=upper))
    if strategy == "Min-CVaR, cost-aware":
        return cv.solve(cv.CVaRProblem(history, beta=beta, upper=upper, previous=previous, turnover_cost=cost))
    raise InputError(f"Unknown strategy {strategy!r}. Strategies: {', '.join(STRATEGIES)}.")


@dataclass(frozen=True)
class Backtest:
    """Daily net returns per strategy, weights chosen per rebalance, turnover and each min-CVaR forecast."""

    daily: Any
    weights: dict[str, Any]
    turnover: Any
    forecast: Any  # per day: the Min-CVaR strategy's forecast VaR and CVaR (from its last rebalance)
    cost_bp: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)


def backtest(returns, benchmark=None, *, strategies: Sequence[str] = STRATEGIES, lookback: int = 504,
             rebalance_every: int = 21, beta: float = 0.95, upper: float = 0.25, cost_bp: float = 0.0) -> Backtest:
    """Walk forward through ``returns`` (dates × assets, simple daily returns), rebalancing every ``rebalance_every`` days.

    Each rebalance charges ``cost_bp`` basis points per unit of Σ|w_new − w_drifted| on that day's
    return (the cost-aware strategy also sees that cost inside its optimisation). ``benchmark``
    (daily returns) is carried alongside unchanged.

    Raises
    ------
    InputError
        Too few days for the lookback, or an unknown strategy.
    """
    import pandas as pd  # noqa: PLC0415

    data = returns.to_numpy(dtype=np.float64)
    n_days, n = data.shape
    if n_days <= lookback + rebalance_every:
        raise InputError(f"{n_days} days of returns are too few for a {lookback}-day lookback and "
                         f"{rebalance_every}-day rebalancing: use a longer period or a shorter lookback.")
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise InputError(f"Unknown strategies {unknown}. Strategies: {', '.join(STRATEGIES)}.")
    cost = cost_bp / 1e4
    starts = list(range(lookback, n_days, rebalance_every))
    daily = {name: np.empty(n_days - lookback) for name in strategies}
    chosen = {name: [] for name in strategies}
    traded = {name: [] for name in strategies}
    forecast = np.full((n_days - lookback, 2), np.nan)
    held = {name: np.zeros(n) for name in strategies}  # drifted holdings before each rebalance (start: cash)
    for t in starts:
        for name in strategies:
            found = rebalance_weights(data, t, name, lookback=lookback, upper=upper, beta=beta,
                                      previous=held[name] if t > lookback else np.full(n, 1.0 / n), cost=cost)
            w = found.weights if isinstance(found, cv.CVaRSolution) else found
            if name == "Min-CVaR" and isinstance(found, cv.CVaRSolution):
                forecast[t - lookback:min(t + rebalance_every, n_days) - lookback] = (found.var, found.cvar)
            turnover = float(np.abs(w - held[name]).sum()) if t > lookback else 0.0
            chosen[name].append(w)
            traded[name].append(turnover)
            h = w.copy()
            for day in range(t, min(t + rebalance_every, n_days)):
                r = data[day]
                gross = float(h @ r)
                daily[name][day - lookback] = gross - (cost * turnover if day == t else 0.0)
                h = h * (1 + r) / (1 + gross)
            held[name] = h
    index = returns.index[lookback:]
    frame = pd.DataFrame(daily, index=index)
    if benchmark is not None:
        frame[benchmark.name or "benchmark"] = benchmark.reindex(index)
    dates = returns.index[starts]
    weights = {name: pd.DataFrame(chosen[name], index=dates, columns=returns.columns) for name in strategies}
    turnover = pd.DataFrame(traded, index=dates)
    return Backtest(frame, weights, turnover, pd.DataFrame(forecast, index=index, columns=["var", "cvar"]), cost_bp)


def performance(daily, *, turnover=None, risk_free=None):
    """Annualised return and volatility, Sharpe (excess over ``risk_free`` daily returns when given), max drawdown,
    realised daily VaR/CVaR95 and — given the backtest's turnover — mean turnover per rebalance."""
    import pandas as pd  # noqa: PLC0415

    rows = {}
    for name, series in daily.items():
        valid = series.dropna()
        r = valid.to_numpy()
        excess = r - (risk_free.reindex(valid.index).fillna(0.0).to_numpy() if risk_free is not None else 0.0)
        wealth = np.cumprod(1 + r)
        risk = cv.cvar(-r, 0.95)
        rows[name] = {"annual_return": wealth[-1] ** (TRADING_DAYS / len(r)) - 1,
                      "annual_volatility": r.std() * np.sqrt(TRADING_DAYS),
                      "sharpe": excess.mean() / r.std() * np.sqrt(TRADING_DAYS),
                      "max_drawdown": float(np.max(1 - wealth / np.maximum.accumulate(wealth))),
                      "daily_var95": risk.var, "daily_cvar95": risk.cvar}
        if turnover is not None and name in turnover:
            rows[name]["turnover_per_rebalance"] = float(turnover[name].iloc[1:].mean())
    return pd.DataFrame(rows).T


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


def plot_backtest(daily, *, labels: Mapping[str, str] | None = None):
    """Growth of 1 (log scale) and drawdown, per strategy."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    frame = daily.rename(columns=dict(labels or {}))
    wealth = (1 + frame.fillna(0)).cumprod()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    wealth.plot(ax=top, logy=True, title="Growth of 1, net of trading costs (log scale)")
    (wealth / wealth.cummax() - 1).plot(ax=bottom, legend=False, title="Drawdown")
    fig.tight_layout()
    return fig
