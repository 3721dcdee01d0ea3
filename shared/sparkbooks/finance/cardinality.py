"""At most ``k`` assets in a Mean-CVaR programme, with a certified optimality gap inside a time budget.

The model is NVIDIA's (``cvar_optimizer.py``, "cvar with cardinality"): a binary ``yᵢ`` per asset,
``w_minᵢ·yᵢ ≤ wᵢ ≤ w_maxᵢ·yᵢ`` and ``Σy ≤ k``, the rest of the programme unchanged. For a fixed set
of held assets it is an LP: the programme restricted to those columns. So

* **upper bound** — any ``k``-asset support's restricted LP (this package's interior-point method on
  ``k`` columns: fast at 10,000 scenarios); a local search swaps assets in and out while time lasts,
  starting from the ``k`` largest positions of the relaxation;
* **lower bound** — the LP relaxation (``0 ≤ y ≤ 1``). Where ``Σ|wᵢ|/boundᵢ ≤ k`` already follows from
  the leverage limit (NVIDIA's 1.6 gross with bounds of 0.3/0.4: at most 5.3 < 10), ``Σy ≤ k`` can never
  bind and the relaxation is the programme without the cardinality row and with positive floors
  lowered to 0 (``y = w/w_max`` meets ``w ≥ w_min·y``). Otherwise HiGHS solves the relaxation with its ``y``.

``gap = (upper − lower) / |upper|`` — HiGHS's own definition of the relative MIP gap. :func:`solve_milp`
is the exact reference (HiGHS branch-and-cut through scipy) for sizes where it finishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from . import cvar as cv
from ..exceptions import InputError, SolverError

__all__ = ["CardinalityResult", "relaxation", "restricted", "solve", "solve_milp", "violation"]


@dataclass
class CardinalityResult:
    """The best portfolio found with at most ``k`` assets, a proven lower bound and their gap.

    ``objective`` and ``bound`` are in the problem's units (CVaR − γ·μᵀw); ``history`` rows are
    (seconds, best objective so far) at each improvement; ``supports`` counts the restricted LPs solved.
    """

    weights: np.ndarray
    cash: float
    objective: float
    bound: float
    seconds: float
    supports: int
    status: str
    history: list[tuple[float, float]] = field(default_factory=list)

    @property
    def gap(self) -> float:
        return (self.objective - self.bound) / max(abs(self.objective), 1e-12)

    @property
    def held(self) -> np.ndarray:
        return np.flatnonzero(np.abs(self.weights) > 1e-9)


def _bound_sizes(problem: cv.CVaRProblem) -> np.ndarray:
    """Per asset, the smallest |w| that fills its y: the positive upper bound, or |lower| for a short-able asset."""
    long_room = np.where(problem.upper > 0, problem.upper, np.inf)
    short_room = np.where(problem.lower < 0, -problem.lower, np.inf)
    return np.minimum(long_room, short_room)


def _cardinality_never_binds(problem: cv.CVaRProblem, k: int) -> bool:
    if problem.leverage is None:
        return False
    return problem.leverage / float(_bound_sizes(problem).min()) <= k


def violation(problem: cv.CVaRProblem, weights: np.ndarray, cash: float, *, k: int) -> float:
    """The largest breach of the cardinality model: its constraints with unheld assets at 0 (below any floor),
    the held assets' floors, and ``inf`` for more than ``k`` held."""
    held = np.abs(weights) > 1e-9
    if np.count_nonzero(held) > k:
        return float("inf")
    floorless = replace(problem, lower=np.minimum(problem.lower, 0.0))
    below = np.maximum(problem.lower[held] - weights[held], 0.0)
    return max(cv._certify(floorless, weights, cash), float(below.max(initial=0.0)))


def relaxation(problem: cv.CVaRProblem, k: int) -> cv.CVaRSolution:
    """The LP relaxation's optimum: a lower bound on every portfolio with at most ``k`` assets."""
    if _cardinality_never_binds(problem, k):
        relaxed = replace(problem, lower=np.minimum(problem.lower, 0.0))
        return cv.solve(relaxed)
    return solve_milp(problem, k, relax=True)


def restricted(problem: cv.CVaRProblem, support) -> cv.CVaRSolution:
    """The programme with only the assets in ``support`` allowed to be held (every ``yᵢ`` fixed): an LP.

    The weights come back over all assets (zero outside ``support``).
    """
    idx = np.asarray(sorted(support), dtype=int)
    sub = replace(problem, returns=problem.returns[:, idx], lower=problem.lower[idx], upper=problem.upper[idx],
                  expected=None if problem.expected is None else problem.expected[idx],
                  previous=None if problem.previous is None else problem.previous[idx])
    sol = cv.solve(sub)
    weights = np.zeros(problem.n_assets)
    weights[idx] = sol.weights
    return replace(sol, weights=weights)


def solve(problem: cv.CVaRProblem, k: int, *, time_limit: float = 45.3, pool: int = 30,
          gap_target: float = 0.0) -> CardinalityResult:
    """The best portfolio with at most ``k`` assets found within ``time_limit`` seconds, with a certified gap.

    Swaps try the ``pool`` assets the relaxation holds most heavily (its support first), taking out the
    held asset with the smallest position first; the first improving swap is kept (a first-improvement
    local search). It stops at a local optimum (no improving swap in the pool), at ``time_limit``, or
    as soon as the certified gap is at most ``gap_target`` (a MIP solver's relative gap tolerance).
    ``time_limit`` counts from the call, the relaxation's solve included (as a solver's limit does);
    the first support is always solved, so a portfolio and its gap come back even past the limit.
    """
    if not 1 <= k <= problem.n_assets:
        raise InputError(f"k must lie between 1 and the number of assets ({problem.n_assets}); got {k}.")
    start = time.perf_counter()
    relaxed = relaxation(problem, k)
    # the IPM's objective is primal (≥ the LP optimum by up to its duality gap, measured in units of the mean |return|)
    scale = float(np.abs(problem.returns).mean())
    bound = relaxed.objective - relaxed.certificate.get("gap", 0.0) * (scale + abs(relaxed.objective))
    rank = [int(i) for i in np.argsort(-np.abs(relaxed.weights), kind="stable")]
    support = set(rank[:k])
    best, supports, history, tried = None, 0, [], set()

    def evaluate(candidate: set[int]):
        nonlocal supports
        key = frozenset(candidate)
        if key in tried:
            return None
        tried.add(key)
        supports += 1
        try:
            return restricted(problem, candidate)
        except (SolverError, InputError):  # an infeasible support (e.g. bounds that cannot reach the budget)
            return None

    best = evaluate(support)
    if best is None:
        raise SolverError(f"The {k} largest positions of the relaxation admit no portfolio: no starting point.")
    history.append((time.perf_counter() - start, best.objective))
    status = "local optimum"

    def gap() -> float:
        return (best.objective - bound) / max(abs(best.objective), 1e-12)

    improved = gap() > max(gap_target, 1e-9)  # else the first support already meets the target (or the relaxation fits)
    while improved:
        improved = False
        held = sorted(support, key=lambda i: abs(best.weights[i]))  # weakest first
        for out in held:
            for into in rank[:pool]:
                if into in support:
                    continue
                if time.perf_counter() - start > time_limit:
                    status = "time limit"
                    break
                sol = evaluate(support - {out} | {into})
                if sol is not None and sol.objective < best.objective - 1e-12 * max(1.0, abs(best.objective)):
                    best, support, improved = sol, support - {out} | {into}, True
                    history.append((time.perf_counter() - start, best.objective))
                    if gap() <= gap_target:
                        improved = False
                    break
            if improved or status == "time limit":
                break
        if status == "time limit":
            break
    if gap() <= 1e-9:
        status = "optimal"
    elif gap() <= gap_target:
        status = "gap target met"
    return CardinalityResult(weights=best.weights, cash=best.cash, objective=best.objective, bound=bound,
                             seconds=time.perf_counter() - start, supports=supports, status=status, history=history)


def solve_milp(problem: cv.CVaRProblem, k: int, *, time_limit: float = 600.0, relax: bool = False):
    """NVIDIA's cardinality model as one MILP solved by HiGHS (scipy ``milp``): the exact reference.

    Each weight column ``x_j`` of asset ``a`` is gated by ``y_a``: ``lo_j·y_a ≤ x_j ≤ hi_j·y_a``.
    Returns a :class:`~sparkbooks.finance.cvar.CVaRSolution` whose certificate holds HiGHS's ``mip_gap`` and
    ``dual_bound`` (the programme's units); ``relax=True`` drops integrality (the LP relaxation).
    """
    import scipy.sparse as sp  # noqa: PLC0415
    from scipy.optimize import Bounds, LinearConstraint, milp  # noqa: PLC0415

    start = time.perf_counter()
    lp = cv._lp(problem)
    cols, m, n = lp["cols"], lp["m"], problem.n_assets
    width = len(lp["c"])
    gated = np.flatnonzero(cols.sign != 0)
    gate = sp.csr_matrix((np.ones(len(gated)), (np.arange(len(gated)), gated)), shape=(len(gated), width))
    by_asset = sp.csr_matrix((np.ones(len(gated)), (np.arange(len(gated)), cols.asset[gated])), shape=(len(gated), n))
    rows = [
        LinearConstraint(sp.hstack([lp["a_ub"], sp.csr_matrix((lp["a_ub"].shape[0], n))]), -np.inf, lp["b_ub"]),
        LinearConstraint(sp.hstack([lp["a_eq"], sp.csr_matrix((lp["a_eq"].shape[0], n))]), lp["b_eq"], lp["b_eq"]),
        LinearConstraint(sp.hstack([gate, -by_asset.multiply(cols.hi[gated][:, None])]), -np.inf, 0.0),  # x ≤ hi·y
        LinearConstraint(sp.hstack([gate, -by_asset.multiply(cols.lo[gated][:, None])]), 0.0, np.inf),  # x ≥ lo·y
        LinearConstraint(sp.hstack([sp.csr_matrix((1, width)), np.ones((1, n))]), 0, k),  # Σy ≤ k
    ]
    lower = lp["lower"].copy()
    lower[gated] = 0.0  # the gate carries a positive floor: an unheld asset sits at 0
    bounds = Bounds(np.concatenate([lower, np.zeros(n)]), np.concatenate([lp["upper"], np.ones(n)]))
    integrality = np.concatenate([np.zeros(width), np.zeros(n) if relax else np.ones(n)])
    cost = np.concatenate([lp["c"], np.zeros(n)])
    res = milp(cost, constraints=rows, bounds=bounds, integrality=integrality, options={"time_limit": time_limit})
    if res.x is None:
        raise SolverError(f"HiGHS found no portfolio with at most {k} assets within {time_limit:g} s: {res.message}")
    # an unheld asset sits at 0 below its floor: certify against the floors lowered to 0, then the held ones' floors
    floorless = replace(problem, lower=np.minimum(problem.lower, 0.0))
    solution = cv._finish(floorless, cols, res.x[:m], int(getattr(res, "mip_node_count", 0) or 0),
                          time.perf_counter() - start, "optimal" if res.status == 0 else "time limit", {})
    if not relax and violation(problem, solution.weights, solution.cash, k=k) > 1e-7:
        raise SolverError("HiGHS's answer holds more than k assets or a held asset below its floor.")
    dual = getattr(res, "mip_dual_bound", None)
    solution.certificate.update({"mip_gap": float(getattr(res, "mip_gap", 0.0) or 0.0),
                                 "dual_bound": float(res.fun if relax or dual is None else dual)})
    return solution
