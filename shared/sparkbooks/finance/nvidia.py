"""NVIDIA's portfolio-optimization problem exactly as its playbook sets it up, for like-for-like comparisons.

Read from ``nvidia/portfolio-optimization/assets`` (``cvar_basic.ipynb``, ``setup/src/cvar_optimizer.py``,
``cvar_utils.py``) of NVIDIA's DGX Spark playbooks:

* data: daily **log** returns of 392 S&P 500 stocks, 2021-01-01 … 2024-01-01; μ = their historical mean;
* scenarios: 10,000 draws from scikit-learn's Gaussian ``KernelDensity`` with ``bandwidth=0.01``
  fitted on the raw log returns (no whitening), equally likely;
* variables: weights ``w`` with ``w_min = {"NVDA": 0.1, others: −0.3}``, ``w_max = {"NVDA": 0.6,
  others: 0.4}``, cash ``c ∈ [0, 0.2]``;
* constraints: ``u + t + Rᵀw ≥ 0``, ``u ≥ 0``, ``Σw + c = 1``, ``‖w‖₁ ≤ 1.6``;
* objective: minimise ``λ·(t + Σ pₛuₛ / (1 − 0.95)) − μᵀw`` with ``λ = 1 × maxᵢ returnᵢ / CVaRᵢ``
  over single-asset portfolios holding asset i at its ``w_max`` (their CVaR: the mean of the
  scenario returns at or below the 5th percentile, in absolute value);
* timed: CLARABEL with ``tol_gap_abs = tol_gap_rel = tol_feas = 1e-4``, its own ``solve_time``
  (16.47 s on a DGX Spark's 20-core Grace CPU); cuOpt PDLP at optimality 1e-4 (2.01 s on its GPU);
* at most 10 assets: the bounds kept on ``w`` *and* ``w_min·y ≤ w ≤ w_max·y``, ``Σy ≤ 10`` (so NVDA, floored at
  0.1, is always held); cuOpt's MILP took 45.3 s and their output printed cvxpy's "Solution may be inaccurate" —
  with cvxpy 1.7.3 an INACCURATE status, which cuOpt returns when it stops above its 1e-4 relative gap: the gap
  of that answer is unknown.

The 392 stocks' prices are not in any registry package, so :func:`problem` takes any log-return
matrix: the benchmark simulates 392 from the 20 real stocks (a factor model, for timing only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cvar import CVaRProblem
from ..exceptions import InputError

__all__ = ["NvidiaProblem", "OFFICIAL", "official_card_gap", "official_cvar", "problem", "risk_aversion_scale"]

#: The official settings (cvar_basic.ipynb) and the figures their run reported.
OFFICIAL = {"n_assets": 392, "n_scenarios": 10_000, "bandwidth": 0.01, "beta": 0.95, "floor_asset_bounds": (0.1, 0.6),
            "other_bounds": (-0.3, 0.4), "cash": (0.0, 0.2), "leverage": 1.6, "risk_aversion": 1.0,
            "clarabel_tol": 1e-4, "clarabel_s": 16.47, "cuopt_s": 2.01, "cuopt_card_s": 45.3, "cardinality": 10,
            "cuopt_card_status": "inaccurate (cvxpy: 'Solution may be inaccurate'; gap not certified)",
            # objectives λ·CVaR − μᵀw their notebook printed: the LP (CLARABEL, cuOpt PDLP, both at 1e-4) and the
            # 10-asset MILP (cuOpt) — the LP bounds the MILP, so together they size their answer's gap roughly
            "clarabel_objective": -0.001443, "cuopt_objective": -0.001445, "cuopt_card_objective": -0.001431,
            "positions": 13}


@dataclass(frozen=True)
class NvidiaProblem:
    """The official programme as a :class:`~sparkbooks.finance.cvar.CVaRProblem` (``return_weight = 1/λ``) and its λ.

    Their objective value is ``lam × (ours)``: ``λ·CVaR − μᵀw = λ·(CVaR − μᵀw/λ)``.
    """

    problem: CVaRProblem
    lam: float
    scenarios_s: float


def official_card_gap() -> float:
    """Their 10-asset answer's relative distance above their own LP relaxation (CLARABEL's): a rough gap, not a proof.

    Both objectives were printed at 1e-4 tolerances, so the figure is an estimate of the gap cuOpt stopped at.
    """
    best, bound = OFFICIAL["cuopt_card_objective"], OFFICIAL["clarabel_objective"]
    return (best - bound) / abs(best)


def official_cvar(scenario_returns: np.ndarray, beta: float = 0.95) -> float:
    """CVaR as NVIDIA's ``cvar_utils.compute_CVaR`` computes it: |mean of returns ≤ the (1−β) percentile|."""
    returns = np.asarray(scenario_returns, dtype=np.float64)
    var = np.percentile(returns, (1 - beta) * 100)
    return float(abs(returns[returns <= var].mean()))


def risk_aversion_scale(scenarios: np.ndarray, mean: np.ndarray, upper: np.ndarray, *, beta: float = 0.95) -> float:
    """``maxᵢ returnᵢ / CVaRᵢ`` of single-asset portfolios at ``upper`` (cvar_optimizer ``_scale_risk_aversion``)."""
    ratios = [upper[i] * mean[i] / official_cvar(scenarios[:, i] * upper[i], beta) for i in range(scenarios.shape[1])]
    return float(np.max(ratios))


def problem(log_returns, *, n_scenarios: int = OFFICIAL["n_scenarios"], floor_asset: int = 0, seed: int = 0,
            bandwidth: float = OFFICIAL["bandwidth"]) -> NvidiaProblem:
    """The official programme on ``log_returns`` (days × assets): KDE scenarios, bounds, cash, leverage, λ.

    ``floor_asset`` is the column that gets NVDA's bounds (``w ∈ [0.1, 0.6]``).

    Raises
    ------
    InputError
        ``log_returns`` is not a finite days × assets matrix with more than one asset.
    """
    import time  # noqa: PLC0415

    from .portfolio import kde_estimator  # noqa: PLC0415

    data = np.asarray(log_returns, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2 or not np.isfinite(data).all():
        raise InputError(f"log_returns must be a finite days × assets matrix; got shape {data.shape}.")
    n = data.shape[1]
    mean = data.mean(axis=0)
    start = time.perf_counter()
    scen = kde_estimator(bandwidth).fit(data).sample(n_scenarios, random_state=seed)
    scenarios_s = time.perf_counter() - start
    lo, hi = np.full(n, OFFICIAL["other_bounds"][0]), np.full(n, OFFICIAL["other_bounds"][1])
    lo[floor_asset], hi[floor_asset] = OFFICIAL["floor_asset_bounds"]
    lam = OFFICIAL["risk_aversion"] * risk_aversion_scale(scen, mean, hi, beta=OFFICIAL["beta"])
    if lam <= 0:
        raise InputError("No asset has a positive expected return: NVIDIA's λ scaling (max return/CVaR) is undefined.")
    cvar_problem = CVaRProblem(scen, beta=OFFICIAL["beta"], lower=lo, upper=hi, leverage=OFFICIAL["leverage"],
                               cash=OFFICIAL["cash"], expected=mean, return_weight=1.0 / lam)
    return NvidiaProblem(cvar_problem, lam, scenarios_s)
