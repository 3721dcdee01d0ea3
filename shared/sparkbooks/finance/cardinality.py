"""At most ``k`` assets in NVIDIA's Mean-CVaR programme, solved by branch-and-bound with a proven gap.

The model is NVIDIA's (``cvar_optimizer.py``, "cvar with cardinality"): the weights keep their bounds
(``cp.Variable(n, bounds=[w_min, w_max])``) *and* get a binary ``yᵢ`` each, ``w_minᵢ·yᵢ ≤ wᵢ ≤ w_maxᵢ·yᵢ``,
``Σy ≤ k``. An asset whose floor is above 0 (NVDA's 0.1) or whose ceiling is below 0 cannot sit at 0, so
its ``y`` is 1 in every feasible point: it is **held in every support** and counts towards ``k``.

Every LP solved here is the programme restricted to a set of allowed assets (this package's interior-point
method; :func:`restricted`):

* **bound** — at a node of the search (assets fixed out, assets fixed in) the LP over the allowed assets with
  the knapsack row ``Σ xⱼ/hiⱼ ≤ k − #held-for-sure`` over the other assets' long and short parts (the LP
  relaxation ``y ≥ |w|/bound``). Where the leverage limit already implies that row (NVIDIA's 1.6 gross with
  bounds of 0.3/0.4 and one floored asset: at most 1 + 5.3 < 10 holdings) it is left out, so the root is
  simply the official LP. Each bound is the LP's objective less its certified duality gap.
* **portfolio** — a support of at most ``k`` assets (the floored ones included) is an LP over those columns:
  fast even at 10,000 scenarios. A swap search from the root's largest positions finds a good one first.

The search is best-first on the bounds, branching on the most-filled ``y`` (fixed in, or out). It stops when
no open node can beat the best portfolio (``"optimal"``), when the proven gap ``(best − bound)/|best|`` — HiGHS's
relative MIP gap — is at most ``gap_target``, after ``max_supports`` LPs (``"support limit"``: a count, so every
machine stops at the same point) or after ``time_limit`` seconds. :func:`solve_milp` is the same model as one
HiGHS MILP, for sizes where it finishes.

One algorithm — the search, its bounds and its portfolios share the node state — so it stays one module
above the package's ~350-line guide.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np

from . import cvar as cv
from .ipm import solve as ipm_solve
from .problem import columns, linear_program
from .solvers import certify, finish
from ..exceptions import InfeasibleError, InputError, SolverError

__all__ = ["CardinalityResult", "held_always", "relaxation", "restricted", "solve", "solve_milp", "violation"]

#: relative gap below which a node cannot beat the best portfolio (the LPs' own accuracy is ~1e-8)
_TOL = 1e-7


@dataclass
class CardinalityResult:
    """The best portfolio found with at most ``k`` assets, a proven lower bound and their gap.

    ``objective`` and ``bound`` are in the problem's units (CVaR − γ·μᵀw); ``history`` rows are
    (seconds, best objective so far) at each improvement; ``supports`` counts every LP solved (each the
    programme restricted to a set of assets: ``nodes`` of them bounds of the search, the rest portfolios).
    """

    weights: np.ndarray
    cash: float
    objective: float
    bound: float
    seconds: float
    supports: int
    status: str
    history: list[tuple[float, float]] = field(default_factory=list)
    nodes: int = 0
    open_nodes: int = 0

    @property
    def gap(self) -> float:
        return (self.objective - self.bound) / max(abs(self.objective), 1e-12)

    @property
    def held(self) -> np.ndarray:
        return np.flatnonzero(np.abs(self.weights) > 1e-9)


def held_always(problem: cv.CVaRProblem) -> np.ndarray:
    """Assets that cannot sit at 0 — a floor above 0 or a ceiling below 0 — so their ``y`` is 1 in every portfolio."""
    return np.flatnonzero((problem.lower > 0) | (problem.upper < 0))


def _sizes(problem: cv.CVaRProblem) -> np.ndarray:
    """Per asset, the smallest |w| that fills its y: the positive upper bound, or |lower| for a short position."""
    long_room = np.where(problem.upper > 0, problem.upper, np.inf)
    short_room = np.where(problem.lower < 0, -problem.lower, np.inf)
    return np.minimum(long_room, short_room)


def _check(problem: cv.CVaRProblem, k: int) -> np.ndarray:
    if not 1 <= k <= problem.n_assets:
        raise InputError(f"k must lie between 1 and the number of assets ({problem.n_assets}); got {k}.")
    if problem.previous is not None:
        raise InputError("The cardinality search works on weights, not on trades from previous holdings: "
                         "drop previous=… (and turnover_cost) for it.")
    forced = held_always(problem)
    if len(forced) > k:
        raise InputError(f"k = {k} is below the {len(forced)} assets held in every portfolio (assets {forced.tolist()}: "
                         "a floor above 0 or a ceiling below 0 keeps w away from 0, so NVIDIA's w_min·y ≤ w ≤ w_max·y "
                         "with the bounds kept makes their y = 1).")
    return forced


def _needs_row(problem: cv.CVaRProblem, free: np.ndarray, room: int) -> bool:
    """Whether ``Σ_{free} |wᵢ|/sizeᵢ ≤ room`` can cut off an LP optimum (else the leverage limit implies it)."""
    if len(free) <= room:
        return False
    if problem.leverage is None:
        return True
    return problem.leverage / float(_sizes(problem)[free].min()) > room


def violation(problem: cv.CVaRProblem, weights: np.ndarray, cash: float, *, k: int) -> float:
    """The largest breach of NVIDIA's cardinality model: every bound kept (a floored asset at 0 breaks its floor),
    budget, cash, leverage, and ``inf`` for more than ``k`` held."""
    if np.count_nonzero(np.abs(weights) > 1e-9) > k:
        return float("inf")
    return certify(problem, weights, cash)


def _sub(problem: cv.CVaRProblem, idx: np.ndarray) -> cv.CVaRProblem:
    return replace(problem, returns=problem.returns[:, idx], lower=problem.lower[idx], upper=problem.upper[idx],
                   expected=None if problem.expected is None else problem.expected[idx],
                   previous=None if problem.previous is None else problem.previous[idx])


def _lp(problem: cv.CVaRProblem, allowed, sure, k: int) -> tuple[cv.CVaRSolution, float]:
    """The LP of a node: assets outside ``allowed`` at 0, those in ``sure`` held; its solution and proven bound."""
    idx = np.asarray(sorted(allowed), dtype=int)
    sub = _sub(problem, idx)
    free = np.flatnonzero(~np.isin(idx, np.asarray(sorted(sure), dtype=int)))
    room = k - (len(idx) - len(free))
    rows = None
    if _needs_row(sub, free, room):
        cols = columns(sub)
        is_free = np.zeros(len(idx), dtype=bool)
        is_free[free] = True
        gated = (cols.sign != 0) & is_free[np.maximum(cols.asset, 0)]
        coef = np.zeros(cols.m)
        coef[gated] = 1.0 / cols.hi[gated]  # y ≥ x⁺/w_max and y ≥ x⁻/|w_min|
        rows = (coef[None, :], np.array([float(room)]))
    sol = ipm_solve(sub, rows=rows)
    weights = np.zeros(problem.n_assets)
    weights[idx] = sol.weights
    # the IPM's duality gap is relative in units of the mean |return|: the dual objective, in the programme's units
    scale = float(np.abs(sub.returns).mean()) or 1.0
    lp_obj = sol.certificate.get("lp_objective", sol.objective)
    bound = min(sol.objective, lp_obj) - sol.certificate.get("gap", 0.0) * (scale + abs(lp_obj))
    return replace(sol, weights=weights), bound


def relaxation(problem: cv.CVaRProblem, k: int) -> cv.CVaRSolution:
    """The LP relaxation's optimum (floors kept; ``y = 1`` for assets held in every portfolio): a lower bound on every
    portfolio with at most ``k`` assets. Where the leverage limit implies ``Σy ≤ k`` it is the programme itself."""
    forced = _check(problem, k)
    return _lp(problem, range(problem.n_assets), set(forced.tolist()), k)[0]


def restricted(problem: cv.CVaRProblem, support) -> cv.CVaRSolution:
    """The programme with only the assets in ``support`` allowed to be held (every ``yᵢ`` fixed): an LP.

    The weights come back over all assets (zero outside ``support``). Assets held in every portfolio
    (:func:`held_always`) must be in ``support``.
    """
    idx = np.asarray(sorted(support), dtype=int)
    missing = np.setdiff1d(held_always(problem), idx)
    if missing.size:
        raise InputError(f"Assets {missing.tolist()} have a floor above 0 or a ceiling below 0: every support holds them.")
    sol = ipm_solve(_sub(problem, idx))
    weights = np.zeros(problem.n_assets)
    weights[idx] = sol.weights
    return replace(sol, weights=weights)


def solve(problem: cv.CVaRProblem, k: int, *, time_limit: float = 45.3, pool: int = 30, gap_target: float = 0.0,
          max_supports: int | None = None, root: cv.CVaRSolution | None = None) -> CardinalityResult:
    """The best portfolio with at most ``k`` assets, by branch-and-bound over supports, with a proven gap.

    First the root LP (the bound) and a swap search over ``k``-asset supports: it starts from the root's
    largest positions (the assets held in every portfolio always in) and tries the ``pool`` assets the root
    holds most heavily, keeping the first improving swap, to a local optimum. Then best-first branch-and-bound
    (module docstring) until it proves optimality, the proven gap is at most ``gap_target``, ``max_supports``
    LPs are spent (``"support limit"``: the same answer on every machine) or ``time_limit`` seconds have passed
    (``"time limit"``). The root LP and the first support are always solved, so a portfolio and its gap come back.
    ``root``: the programme's own optimum from this package's interior-point method (with its duality gap), reused
    as the root where the root is the official LP (the leverage limit implies ``Σy ≤ k``); not counted as an LP.

    Raises
    ------
    InputError
        ``k`` outside 1 … n, below the number of assets held in every portfolio, ``max_supports`` below 2, or
        previous holdings (trades) in the problem.
    SolverError
        The first support admits no portfolio (no starting point).
    """
    forced_idx = _check(problem, k)
    if max_supports is not None and max_supports < 2:
        raise InputError(f"max_supports must be at least 2 (the root LP and the first support are always solved); "
                         f"got {max_supports}.")
    start = time.perf_counter()
    n, forced = problem.n_assets, frozenset(forced_idx.tolist())
    state = {"lps": 0, "nodes": 0, "best": None}
    history: list[tuple[float, float]] = []
    tried: dict[frozenset, object] = {}

    def spent() -> str | None:
        if max_supports is not None and state["lps"] >= max_supports:
            return "support limit"
        if time.perf_counter() - start > time_limit:
            return "time limit"
        return None

    def portfolio(support) -> tuple[object, float]:
        """The support's LP (once per support): its solution or "infeasible"/"stuck", and its proven bound."""
        key = frozenset(support) | forced
        if key not in tried:
            state["lps"] += 1
            try:
                sol, bound = _lp(problem, key, key, k)
                tried[key] = (sol, bound)
                best = state["best"]
                if best is None or sol.objective < best.objective - 1e-12 * max(1.0, abs(best.objective)):
                    state["best"] = sol
                    history.append((time.perf_counter() - start, sol.objective))
            except (InputError, InfeasibleError):  # bounds that cannot reach the budget: no portfolio
                tried[key] = ("infeasible", np.inf)
            except SolverError:  # no proof either way: the subtree stays open at its parent's bound
                tried[key] = ("stuck", -np.inf)
        return tried[key]

    def gap_to(lower: float) -> float:
        best = state["best"]
        return (best.objective - lower) / max(abs(best.objective), 1e-12)

    # the root: the official LP where the leverage limit implies the cardinality row
    plain = not _needs_row(problem, np.setdiff1d(np.arange(n), forced_idx), k - len(forced))
    if root is not None and plain and "gap" in root.certificate and root.weights.shape == (n,):
        scale = float(np.abs(problem.returns).mean()) or 1.0
        lp_obj = root.certificate.get("lp_objective", root.objective)
        root_bound = min(root.objective, lp_obj) - root.certificate["gap"] * (scale + abs(lp_obj))
    else:
        state["lps"] += 1
        state["nodes"] += 1
        root, root_bound = _lp(problem, range(n), forced, k)
    free_rank = [int(i) for i in np.argsort(-np.abs(root.weights) / _sizes(problem), kind="stable") if i not in forced]
    support = set(forced) | set(free_rank[:k - len(forced)])
    first, _ = portfolio(support)
    if not hasattr(first, "objective"):
        raise SolverError(f"The {k} largest positions of the relaxation admit no portfolio: no starting point.")
    status = None

    # swap search: a good portfolio first (cheap LPs over k columns)
    improved = gap_to(root_bound) > max(gap_target, _TOL)
    while improved and status is None:
        improved = False
        current = state["best"]
        held = sorted(support - forced, key=lambda i: abs(current.weights[i]))  # weakest first
        for out, into in itertools.product(held, free_rank[:pool]):
            if into in support:
                continue
            if (status := spent()) is not None:
                break
            sol, _ = portfolio(support - {out} | {into})
            if sol is state["best"] and sol is not current:
                support, improved = support - {out} | {into}, True
                break
        if gap_to(root_bound) <= max(gap_target, _TOL):
            break

    # best-first branch-and-bound; a node is (bound, order, out, sure, solution or None)
    order = itertools.count()
    heap: list = [(root_bound, next(order), frozenset(), frozenset(forced), root)]
    closed = np.inf  # the least bound of every subtree solved or pruned (none beats the best by more than that)
    while heap and status is None:
        lower = min(heap[0][0], closed)
        if gap_to(lower) <= max(gap_target, _TOL):
            break
        bound, _, out, sure, sol = heapq.heappop(heap)
        allowed = frozenset(range(n)) - out
        leaf = len(allowed) <= k or len(sure) == k
        if sol is None or leaf:
            if (status := spent()) is not None:
                heapq.heappush(heap, (bound, next(order), out, sure, sol))
                break
            if leaf:
                sol, own = portfolio(allowed if len(allowed) <= k else sure)
                if sol == "stuck":
                    closed = min(closed, bound)
                elif sol != "infeasible":
                    closed = min(closed, max(bound, own))
                continue
            state["lps"] += 1
            state["nodes"] += 1
            try:
                sol, own = _lp(problem, allowed, sure, k)
            except (InputError, InfeasibleError):
                continue  # no portfolio within these bounds (or the IPM's certificate of infeasibility): pruned
            except SolverError:
                closed = min(closed, bound)  # no proof: the subtree keeps its parent's bound
                continue
            bound = max(bound, own)
        if gap_to(bound) <= _TOL:
            closed = min(closed, bound)
            continue
        w = sol.weights
        held = set(np.flatnonzero(np.abs(w) > 1e-6).tolist()) | sure
        if len(held) <= k:  # the node's LP optimum is a k-asset portfolio: its subtree is solved by that support's LP
            if (status := spent()) is not None:
                heapq.heappush(heap, (bound, next(order), out, sure, sol))
                break
            portfolio(held)
            closed = min(closed, bound)
            continue
        fill = np.abs(w) / _sizes(problem)
        top = [int(i) for i in np.argsort(-fill, kind="stable") if i not in sure][:k - len(sure)]
        if frozenset(sure | set(top)) | forced not in tried:  # a rounding heuristic: the node's largest positions
            if (status := spent()) is not None:
                heapq.heappush(heap, (bound, next(order), out, sure, sol))
                break
            portfolio(sure | set(top))
        j = max((i for i in held - sure), key=lambda i: fill[i])  # the most-filled y: its 'out' child moves the bound most
        heapq.heappush(heap, (bound, next(order), out | {j}, sure, None))
        into = sure | {j}
        idx = np.asarray(sorted(allowed), dtype=int)
        child_free = np.flatnonzero(~np.isin(idx, np.asarray(sorted(into), dtype=int)))
        parent_free = np.flatnonzero(~np.isin(idx, np.asarray(sorted(sure), dtype=int)))
        same = not _needs_row(_sub(problem, idx), child_free, k - len(into)) and \
            not _needs_row(_sub(problem, idx), parent_free, k - len(sure))
        heapq.heappush(heap, (bound, next(order), out, into, sol if same else None))  # same LP: no new solve

    best = state["best"]
    lower = min([closed, best.objective] + [h[0] for h in heap])
    gap = gap_to(lower)
    if gap <= _TOL:
        status = "optimal"
    elif gap <= gap_target:
        status = "gap target met"
    elif status is None:  # every node closed, but an LP the IPM could not finish keeps its parent's bound
        status = "unresolved LP"
    return CardinalityResult(weights=best.weights, cash=best.cash, objective=best.objective, bound=lower,
                             seconds=time.perf_counter() - start, supports=state["lps"], status=status,
                             history=history, nodes=state["nodes"], open_nodes=len(heap))


def solve_milp(problem: cv.CVaRProblem, k: int, *, time_limit: float = 600.0, relax: bool = False):
    """NVIDIA's cardinality model as one MILP solved by HiGHS (scipy ``milp``), through this package's LP builder.

    Each weight column ``x_j`` of asset ``a`` is gated by ``y_a``: ``lo_j·y_a ≤ x_j ≤ hi_j·y_a``.
    Returns a :class:`~sparkbooks.finance.cvar.CVaRSolution` whose certificate holds HiGHS's ``mip_gap`` and
    ``dual_bound`` (the programme's units); ``relax=True`` drops integrality (the LP relaxation).
    """
    import scipy.sparse as sp  # noqa: PLC0415
    from scipy.optimize import Bounds, LinearConstraint, milp  # noqa: PLC0415

    _check(problem, k)
    start = time.perf_counter()
    lp = linear_program(problem)
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
    # the bounds stay on the weights as NVIDIA keeps them (cp.Variable(n, bounds=[w_min, w_max])): a floored asset's
    # x ≥ w_min and x ≤ w_max·y force its y to 1
    bounds = Bounds(np.concatenate([lp["lower"], np.zeros(n)]), np.concatenate([lp["upper"], np.ones(n)]))
    integrality = np.concatenate([np.zeros(width), np.zeros(n) if relax else np.ones(n)])
    cost = np.concatenate([lp["c"], np.zeros(n)])
    res = milp(cost, constraints=rows, bounds=bounds, integrality=integrality, options={"time_limit": time_limit})
    if res.x is None:
        raise SolverError(f"HiGHS found no portfolio with at most {k} assets within {time_limit:g} s: {res.message}")
    solution = finish(problem, cols, res.x[:m], iterations=int(getattr(res, "mip_node_count", 0) or 0),
                      seconds=time.perf_counter() - start, status="optimal" if res.status == 0 else "time limit",
                      certificate={})
    if not relax and violation(problem, solution.weights, solution.cash, k=k) > 1e-7:
        raise SolverError("HiGHS's answer holds more than k assets or breaks a bound.")
    dual = getattr(res, "mip_dual_bound", None)
    solution.certificate.update({"mip_gap": float(getattr(res, "mip_gap", 0.0) or 0.0),
                                 "dual_bound": float(res.fun if relax or dual is None else dual)})
    return solution
