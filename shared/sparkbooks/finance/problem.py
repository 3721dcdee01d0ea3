"""The Mean-CVaR programme: its data and constraints, its decision variables, and its LP form.

:class:`CVaRProblem` holds the scenarios and the portfolio constraints (see :mod:`.cvar` for the programme);
:func:`columns` turns it into the variables every solver works on — each a signed part of an asset's weight,
or cash — and :func:`linear_program` writes the whole programme as one sparse LP for the general solvers
(HiGHS, cuOpt, the cardinality MILP). :func:`cvar` is the exact VaR/CVaR of a loss sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..exceptions import InputError

__all__ = ["CVaRProblem", "CVaRSolution", "Columns", "TailRisk", "columns", "cvar", "linear_program"]


@dataclass
class CVaRProblem:
    """Scenario returns (``S × n``, one row per scenario) and the portfolio constraints.

    ``return_weight`` γ trades expected return against CVaR (minimise CVaR − γ·μᵀw); ``expected``
    sets μ when it should not be the scenarios' own mean (e.g. the historical mean, as NVIDIA's
    playbook uses); ``cash`` adds a zero-return position ``c`` with those bounds to the budget
    (``Σw + c = budget``) and keeps it out of the leverage limit.
    """

    returns: np.ndarray
    beta: float = 0.95
    budget: float = 1.0
    lower: float | np.ndarray = 0.0
    upper: float | np.ndarray = 1.0
    target_return: float | None = None
    return_weight: float = 0.0
    leverage: float | None = None
    cash: tuple[float, float] | None = None
    expected: np.ndarray | None = None
    previous: np.ndarray | None = None
    turnover_cost: float = 0.0

    def __post_init__(self) -> None:
        self.returns = np.ascontiguousarray(self.returns, dtype=np.float64)
        if self.returns.ndim != 2 or min(self.returns.shape) < 1:
            raise InputError(f"returns must be a scenarios × assets matrix; got shape {self.returns.shape}.")
        if not np.isfinite(self.returns).all():
            raise InputError("returns contain NaN or infinite values: drop or fill them before building scenarios.")
        if not 0 < self.beta < 1:
            raise InputError(f"beta (the CVaR confidence level) must lie in (0, 1); got {self.beta}.")
        n = self.n_assets
        self.lower = np.broadcast_to(np.asarray(self.lower, dtype=np.float64), (n,)).copy()
        self.upper = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), (n,)).copy()
        if self.expected is not None:
            self.expected = np.asarray(self.expected, dtype=np.float64).reshape(-1)
            if self.expected.shape != (n,) or not np.isfinite(self.expected).all():
                raise InputError(f"expected must hold {n} finite expected returns, one per asset.")
        if (self.lower > self.upper).any():
            raise InputError("Some lower bounds exceed their upper bounds.")
        fixed = np.flatnonzero((self.lower == self.upper) & (self.lower != 0))
        if fixed.size:
            raise InputError(f"Assets {fixed.tolist()} have a fixed non-zero weight: take them out of the universe "
                             "and subtract their weight from the budget.")
        c_lo, c_hi = self.cash if self.cash is not None else (0.0, 0.0)
        if c_lo > c_hi:
            raise InputError(f"The cash bounds {self.cash} are reversed.")
        if self.lower.sum() + c_lo > self.budget + 1e-12 or self.upper.sum() + c_hi < self.budget - 1e-12:
            raise InputError(f"No weights within the bounds sum to the budget {self.budget}: bounds allow "
                             f"{self.lower.sum() + c_lo:.4g} … {self.upper.sum() + c_hi:.4g}.")
        if (self.lower < 0).any() and self.leverage is None:
            raise InputError("Short positions (lower < 0) need a leverage limit (Σ|w| ≤ leverage).")
        if self.turnover_cost < 0:
            raise InputError(f"turnover_cost must be ≥ 0; got {self.turnover_cost}.")
        if self.previous is not None:
            self.previous = np.asarray(self.previous, dtype=np.float64).reshape(-1)
            if self.previous.shape != (n,) or not np.isfinite(self.previous).all():
                raise InputError(f"previous must hold {n} finite weights, one per asset.")
            if (self.lower < 0).any():
                raise InputError("Trading costs (previous holdings) are supported for long-only portfolios.")
        elif self.turnover_cost:
            raise InputError("turnover_cost needs the previous holdings (previous=…) to measure trades against.")
        if self.leverage is not None:
            least = float(np.maximum(self.lower, 0).sum() + np.maximum(-self.upper, 0).sum())
            if self.leverage < least - 1e-12:
                raise InputError(f"The bounds alone need gross exposure {least:.4g}, above the leverage limit "
                                 f"{self.leverage}.")

    @property
    def n_assets(self) -> int:
        return self.returns.shape[1]

    @property
    def n_scenarios(self) -> int:
        return self.returns.shape[0]

    @property
    def mean(self) -> np.ndarray:
        """μ: ``expected`` when given, else the scenarios' mean."""
        return self.expected if self.expected is not None else self.returns.mean(axis=0)


@dataclass
class CVaRSolution:
    """Optimal weights with the risk figures and the solver's certificate."""

    weights: np.ndarray
    var: float
    cvar: float
    expected_return: float
    objective: float
    iterations: int
    seconds: float
    status: str
    certificate: dict[str, float] = field(default_factory=dict)
    cash: float = 0.0


@dataclass(frozen=True)
class TailRisk:
    """Value at risk and conditional value at risk (expected shortfall) of a loss distribution."""

    var: float
    cvar: float


def cvar(losses: np.ndarray, beta: float = 0.95) -> TailRisk:
    """VaR and CVaR of equally likely ``losses`` at level ``beta``, by the Rockafellar–Uryasev minimum.

    CVaR = min over α of α + E[(L − α)⁺] / (1 − β); the minimum is attained at a ``beta``
    quantile of the losses, so it is found exactly by trying the sorted losses near it.
    """
    losses = np.sort(np.asarray(losses, dtype=np.float64))
    k = int(np.floor(beta * len(losses)))
    candidates = losses[max(k - 1, 0):k + 2]
    values = [a + np.maximum(losses - a, 0).mean() / (1 - beta) for a in candidates]
    best = int(np.argmin(values))
    return TailRisk(float(candidates[best]), float(values[best]))


@dataclass
class Columns:
    """The decision variables besides α and u: each a (signed) asset weight part, or cash.

    ``asset[j]`` is the asset column j trades (−1 for cash), ``sign[j]`` +1 (long part), −1
    (short part) or 0 (cash); ``w = Σ_j sign[j]·x[j]`` per asset.
    """

    asset: np.ndarray
    sign: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    eq: tuple[np.ndarray, np.ndarray]
    ineq: tuple[np.ndarray, np.ndarray]
    cash: int | None  # column of the cash variable
    base: np.ndarray  # weights when every column is zero: 0, or the previous holdings (columns are then trades)
    cost: np.ndarray  # objective cost per unit of each column (trading costs)

    @property
    def m(self) -> int:
        return len(self.asset)

    def weights(self, x: np.ndarray, n: int) -> np.ndarray:
        held = self.sign != 0
        return self.base + np.bincount(self.asset[held], self.sign[held] * x[held], minlength=n)


def columns(problem: CVaRProblem) -> Columns:
    """The decision variables of ``problem`` besides α and u, their boxes, and the budget, leverage and return rows."""
    lo, hi, mu = problem.lower, problem.upper, problem.mean
    n = problem.n_assets
    base = np.zeros(n) if problem.previous is None else problem.previous
    if problem.previous is None:  # weights split into long and short parts
        up, down = np.flatnonzero(hi > 0), np.flatnonzero(lo < 0)
        x_lo = np.concatenate([np.maximum(lo[up], 0), np.maximum(-hi[down], 0)])
        x_hi = np.concatenate([hi[up], -lo[down]])
    else:  # trades from the previous holdings: buys and sells (long-only, so |w| = w)
        # holdings within 1e-9 of a bound sit on it (an interior-point answer is never exactly 0): a box narrower
        # than that would be a variable the method cannot move inside
        base = np.where(base - lo < 1e-9, lo, np.where(hi - base < 1e-9, hi, base))
        up, down = np.flatnonzero(hi - base > 1e-9), np.flatnonzero(base - lo > 1e-9)
        x_lo = np.concatenate([np.maximum(lo[up] - base[up], 0), np.maximum(base[down] - hi[down], 0)])
        x_hi = np.concatenate([hi[up] - base[up], base[down] - lo[down]])
    asset = np.concatenate([up, down]).astype(int)
    sign = np.concatenate([np.ones(len(up)), -np.ones(len(down))])
    cost = np.full(len(asset), problem.turnover_cost if problem.previous is not None else 0.0)
    cash = None
    if problem.cash is not None:
        cash = len(asset)
        asset, sign, cost = np.append(asset, -1), np.append(sign, 0.0), np.append(cost, 0.0)
        x_lo, x_hi = np.append(x_lo, problem.cash[0]), np.append(x_hi, problem.cash[1])
    x_mean = np.where(sign != 0, sign * mu[np.maximum(asset, 0)], 0.0)
    budget_row = np.where(sign != 0, sign, 1.0)[None, :]
    rows, rhs = [], []
    if problem.leverage is not None:
        # Σ w⁺ + Σ w⁻ (cash excluded); with previous holdings, long-only: Σ(base + buys − sells)
        rows.append(np.abs(sign) if problem.previous is None else sign)
        rhs.append(problem.leverage - float(np.abs(base).sum()))
    if problem.target_return is not None:  # μᵀw ≥ target  ⇔  −μᵀx ≤ −(target − μᵀbase)
        rows.append(-x_mean)
        rhs.append(-(problem.target_return - float(mu @ base)))
    m = len(asset)
    ineq = (np.array(rows).reshape(len(rows), m), np.array(rhs, dtype=float))
    budget = np.array([problem.budget - float(base.sum())])
    return Columns(asset, sign, x_lo, x_hi, x_mean, (budget_row, budget), ineq, cash, base, cost)


def linear_program(problem: CVaRProblem) -> dict:
    """The programme as one sparse LP over (x, α, u): ``min cᵀv`` s.t. ``A_ub v ≤ b_ub``, ``A_eq v = b_eq``, bounds."""
    import scipy.sparse as sp  # noqa: PLC0415

    cols = columns(problem)
    S, m = problem.n_scenarios, cols.m
    # R x: the returns of the assets each column trades, signed; cash columns return nothing
    select = sp.csr_matrix((cols.sign[cols.sign != 0], (cols.asset[cols.sign != 0], np.flatnonzero(cols.sign != 0))),
                           shape=(problem.n_assets, m))
    rx = sp.csr_matrix(problem.returns) @ select
    c = np.concatenate([-problem.return_weight * cols.mean + cols.cost, [1.0], np.full(S, 1.0 / ((1 - problem.beta) * S))])
    rows, rhs = [sp.hstack([-rx, -np.ones((S, 1)), -sp.identity(S)])], [problem.returns @ cols.base]
    a_in, b_in = cols.ineq
    if len(b_in):
        rows.append(sp.hstack([sp.csr_matrix(a_in), sp.csr_matrix((len(b_in), 1 + S))]))
        rhs.append(b_in)
    a_eq, b_eq = cols.eq
    return {"c": c, "a_ub": sp.vstack(rows).tocsr(), "b_ub": np.concatenate(rhs),
            "a_eq": sp.hstack([sp.csr_matrix(a_eq), sp.csr_matrix((1, 1 + S))]).tocsr(), "b_eq": b_eq,
            "lower": np.concatenate([cols.lo, [-np.inf], np.zeros(S)]),
            "upper": np.concatenate([cols.hi, [np.inf], np.full(S, np.inf)]), "m": m, "cols": cols}

