"""Mean-CVaR portfolios on real prices: scenarios, tail checks, frontier, cardinality limits, the solver choice.

The optimisation itself lives in :mod:`sparkbooks.finance.cvar`; this module prepares its inputs and
judges its outputs. Returns are simple daily returns; CVaR is of the daily loss ``−rᵀw`` at
level ``beta`` over equally likely scenarios. The prices, benchmark and risk-free rate are
:mod:`sparkbooks.finance.market_data` (its names are importable from here too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import cvar as cv
from .. import devices
from ..exceptions import InfeasibleError, InputError, SolverError
from .market_data import TRADING_DAYS, daily_risk_free, load_fama_french, load_prices, simulate_universe

__all__ = [
    "KDE_BANDWIDTHS", "SCENARIO_METHODS", "SOLVERS", "SolverChoice", "cardinality", "daily_risk_free",
    "efficient_frontier", "kde_estimator", "load_fama_french", "load_prices", "max_return", "pick_solver",
    "plot_frontier", "scenarios", "simulate_universe", "tail_checks"
]


SCENARIO_METHODS = ("historical", "kde", "fhs", "bootstrap")


def scenarios(returns, n: int, *, method: str = "kde", bandwidth: float | None = None, seed: int = 0,
              decay: float = 0.94) -> np.ndarray:
    """``n`` equally likely return scenarios (``n × assets``) from historical daily ``returns``.

    ``historical``: the days themselves (``n`` is ignored): no model, no sampling noise.
    ``kde``: scikit-learn's Gaussian ``KernelDensity`` (``cuml.accel`` takes it to the GPU) on
    *whitened* returns — the kernel has the shape of the returns' covariance, as in scipy's
    ``gaussian_kde`` — with the bandwidth ``h`` from 3-fold cross-validated likelihood unless given;
    samples are shrunk by 1/√(1+h²) so they keep the historical covariance, and shifted so their
    mean equals the historical mean exactly (a 2,000-draw mean is otherwise off by up to ~20%/yr).
    Smoothing thins the tails the more the larger ``h``: :func:`tail_checks` measures how much.
    ``fhs``: filtered historical simulation — each day's returns divided by that day's EWMA
    volatility (RiskMetrics, ``decay`` 0.94), standardised days drawn with replacement (keeping
    their cross-section and fat tails), rescaled by tomorrow's volatility forecast.
    ``bootstrap``: historical days drawn with replacement (adds resampling noise, nothing else).
    """
    from sklearn.model_selection import GridSearchCV  # noqa: PLC0415

    data = np.asarray(returns, dtype=np.float64)
    if method not in SCENARIO_METHODS:
        raise InputError(f"Scenario method must be one of {', '.join(SCENARIO_METHODS)}. Got {method!r} instead.")
    if not np.isfinite(data).all():
        raise InputError("The returns hold NaN or infinite values: drop or fill them first.")
    rng = np.random.default_rng(seed)
    mean = data.mean(axis=0)
    if method == "historical":
        return data.copy()
    if method == "bootstrap":
        return data[rng.integers(0, len(data), size=n)]
    if method == "fhs":
        centred = data - mean
        var = np.empty_like(centred)
        var[0] = centred.var(axis=0)
        for t in range(1, len(centred)):
            var[t] = decay * var[t - 1] + (1 - decay) * centred[t - 1] ** 2
        tomorrow = np.sqrt(decay * var[-1] + (1 - decay) * centred[-1] ** 2)
        z = centred / np.sqrt(var)
        return mean + z[rng.integers(0, len(z), size=n)] * tomorrow
    values, vectors = np.linalg.eigh(np.cov(data, rowvar=False))
    root = vectors * np.sqrt(np.maximum(values, values.max() * 1e-12))  # covariance = root @ root.T
    z = (data - mean) @ np.linalg.pinv(root).T
    if bandwidth is None:
        search = GridSearchCV(kde_estimator(1.0), {"bandwidth": list(KDE_BANDWIDTHS)}, cv=3)
        bandwidth = float(search.fit(z).best_params_["bandwidth"])
    kde = kde_estimator(bandwidth).fit(z)
    sample = kde.sample(n, random_state=seed) / np.sqrt(1.0 + bandwidth**2)
    sample -= sample.mean(axis=0)  # match the historical mean exactly
    return mean + sample @ root.T


#: The bandwidths (in whitened units) the KDE's cross-validation chooses from.
KDE_BANDWIDTHS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def tail_checks(history, candidates: dict[str, np.ndarray], *, beta: float = 0.95):
    """How well each scenario set keeps the history's tails: one row per set (history first).

    Columns: mean excess kurtosis over assets; mean pairwise correlation on the worst 5% of
    equal-weight days ("tail correlation" — crashes move stocks together); the equal-weight
    portfolio's CVaR95 and CVaR99; annualised volatility of equal weight. KDE smoothing lowers
    the first four; a set that matches history on them keeps the tails CVaR is about.
    """
    import pandas as pd  # noqa: PLC0415
    from scipy.stats import kurtosis  # noqa: PLC0415

    def row(data: np.ndarray) -> dict[str, float]:
        ew = data.mean(axis=1)
        worst = ew <= np.quantile(ew, 0.05)
        corr = np.corrcoef(data[worst].T)
        upper = corr[np.triu_indices_from(corr, k=1)]
        return {"excess_kurtosis": float(np.mean(kurtosis(data, axis=0))), "tail_correlation": float(np.nanmean(upper)),
                "ew_cvar95": cv.cvar(-ew, beta).cvar, "ew_cvar99": cv.cvar(-ew, 0.99).cvar,
                "ew_annual_vol": float(ew.std() * np.sqrt(TRADING_DAYS))}

    table = {"history": row(np.asarray(history, dtype=np.float64))}
    table |= {name: row(np.asarray(scen, dtype=np.float64)) for name, scen in candidates.items()}
    return pd.DataFrame(table).T


def kde_estimator(bandwidth: float):
    """scikit-learn's Gaussian ``KernelDensity`` (cuml.accel runs cuML's on a GPU path)."""
    from sklearn.neighbors import KernelDensity  # noqa: PLC0415

    return KernelDensity(kernel="gaussian", bandwidth=bandwidth)


def max_return(mean: np.ndarray, *, budget: float = 1.0, upper: float = 1.0) -> float:
    """The highest expected return a long-only portfolio within ``upper`` per asset can reach (greedy fill)."""
    left, best = budget, 0.0
    for value in np.sort(mean)[::-1]:
        take = min(upper, left)
        best, left = best + take * value, left - take
        if left <= 0:
            break
    return best


def efficient_frontier(scen: np.ndarray, *, n_points: int = 12, beta: float = 0.95, upper: float = 1.0,
                       expected: np.ndarray | None = None):
    """Minimum-CVaR portfolios for ``n_points`` return targets from the least-risk portfolio's return to the highest reachable.

    ``expected`` is μ (default: the scenarios' mean): pass the historical mean so Monte Carlo noise in
    the scenarios cannot pick the stocks at the top of the frontier. Returns a DataFrame: ``target``,
    ``expected_return``, ``cvar``, ``var``, ``seconds`` and one column per asset.
    """
    import pandas as pd  # noqa: PLC0415

    base = cv.CVaRProblem(scen, beta=beta, upper=upper, expected=expected)
    low = cv.solve(base)
    high = max_return(base.mean, upper=upper)
    rows = []
    for target in np.linspace(low.expected_return, high - 1e-6 * abs(high), n_points):
        sol = low if target <= low.expected_return else cv.solve(
            cv.CVaRProblem(scen, beta=beta, upper=upper, target_return=target, expected=expected))
        rows.append({"target": target, "expected_return": sol.expected_return, "cvar": sol.cvar, "var": sol.var,
                     "seconds": sol.seconds, **dict(enumerate(sol.weights))})
    return pd.DataFrame(rows)


def cardinality(scen: np.ndarray, k: int, *, beta: float = 0.95, upper: float = 1.0, min_weight: float = 0.0,
                target_return: float | None = None, time_limit: float = 60.0):
    """Minimum-CVaR portfolio holding at most ``k`` assets: a mixed-integer programme solved by HiGHS.

    Binary ``zᵢ`` marks a held asset: ``min_weight·zᵢ ≤ wᵢ ≤ upper·zᵢ`` and ``Σz ≤ k``. Returns a
    :class:`~sparkbooks.finance.cvar.CVaRSolution` (``status`` says whether optimality was proven within ``time_limit``).
    """
    import time  # noqa: PLC0415

    import scipy.sparse as sp  # noqa: PLC0415
    from scipy.optimize import Bounds, LinearConstraint, milp  # noqa: PLC0415

    start = time.perf_counter()
    S, n = scen.shape
    if not 1 <= k <= n:
        raise InputError(f"k must lie between 1 and the number of assets ({n}). Got {k}.")
    # variables: w (n) | α | u (S) | z (n)
    cost = np.concatenate([np.zeros(n), [1.0], np.full(S, 1.0 / ((1 - beta) * S)), np.zeros(n)])
    eye = sp.identity(n)
    rows = [
        (sp.hstack([sp.csr_matrix(scen), np.ones((S, 1)), sp.identity(S), sp.csr_matrix((S, n))]), 0, np.inf),  # u ≥ −rw − α
        (sp.hstack([np.ones((1, n)), sp.csr_matrix((1, 1 + S + n))]), 1, 1),  # budget
        (sp.hstack([eye, sp.csr_matrix((n, 1 + S)), -upper * eye]), -np.inf, 0),  # w ≤ upper·z
        (sp.hstack([eye, sp.csr_matrix((n, 1 + S)), -min_weight * eye]), 0, np.inf),  # w ≥ min_weight·z
        (sp.hstack([sp.csr_matrix((1, n + 1 + S)), np.ones((1, n))]), 0, k),  # Σz ≤ k
    ]
    if target_return is not None:
        rows.append((sp.hstack([scen.mean(axis=0)[None, :], sp.csr_matrix((1, 1 + S + n))]), target_return, np.inf))
    constraints = [LinearConstraint(a.tocsr(), lb, ub) for a, lb, ub in rows]
    lower = np.concatenate([np.zeros(n), [-np.inf], np.zeros(S), np.zeros(n)])
    upper_b = np.concatenate([np.full(n, upper), [np.inf], np.full(S, np.inf), np.ones(n)])
    integrality = np.concatenate([np.zeros(n + 1 + S), np.ones(n)])
    res = milp(cost, constraints=constraints, bounds=Bounds(lower, upper_b), integrality=integrality,
               options={"time_limit": time_limit})
    if res.x is None:
        error = InfeasibleError if res.status == 2 else SolverError
        raise error(f"HiGHS found no feasible portfolio with at most {k} assets: {res.message}")
    weights = np.where(res.x[n + 1 + S:] > 0.5, res.x[:n], 0.0)
    weights = weights / weights.sum()  # drop solver dust below its integrality tolerance
    risk = cv.cvar(-(scen @ weights), beta)
    return cv.CVaRSolution(weights=weights, var=risk.var, cvar=risk.cvar, expected_return=float(scen.mean(axis=0) @ weights),
                           objective=risk.cvar, iterations=int(getattr(res, "mip_node_count", 0) or 0),
                           seconds=time.perf_counter() - start, status="optimal" if res.status == 0 else "time_limit",
                           certificate={"mip_gap": float(getattr(res, "mip_gap", np.nan) or 0.0)})


def plot_frontier(frontier, assets: Sequence[str], *, annualise: bool = True):
    """Left: expected return against CVaR along the frontier. Right: the weights along it (stacked)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    scale = TRADING_DAYS if annualise else 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    left.plot(frontier["cvar"] * 100, frontier["expected_return"] * scale * 100, "o-")
    left.set(xlabel="daily CVaR 95% (% of capital)", ylabel=("annualised " if annualise else "daily ") + "expected return (%)",
             title="Efficient frontier")
    weights = frontier[list(range(len(assets)))].to_numpy()
    held = weights.max(axis=0) > 0.01
    right.stackplot(frontier["cvar"] * 100, weights[:, held].T, labels=[a for a, h in zip(assets, held) if h])
    right.set(xlabel="daily CVaR 95% (% of capital)", ylabel="weight", ylim=(0, 1), title="Weights along the frontier")
    right.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return fig


SOLVERS = {"ipm": cv.solve, "highs": cv.solve_highs, "cuopt": cv.solve_cuopt}


@dataclass(frozen=True)
class SolverChoice:
    """The solver a problem goes to, and why."""

    name: str
    reason: str


def pick_solver(requested: str = "auto") -> SolverChoice:
    """The solver to use and why: ``auto`` takes cuOpt where the device policy lets cuOpt run (installed, a CUDA
    device computes, not ``SPARKBOOKS_ACCELERATOR=cpu``), else the CPU interior-point method."""
    if requested not in ("auto", *SOLVERS):
        raise InputError(f"solver must be 'auto', {', '.join(map(repr, SOLVERS))}. Got {requested!r} instead.")
    if requested != "auto":
        return SolverChoice(requested, "requested")
    if devices.use_gpu("cuopt"):
        return SolverChoice("cuopt", devices.probe().reason("cuopt"))
    return SolverChoice("ipm", devices.probe().reason("cuopt"))
