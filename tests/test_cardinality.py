"""At most k assets in NVIDIA's programme: the local search against HiGHS's exact MILP, and bounds that hold."""

from __future__ import annotations

import numpy as np
import pytest

from sparkbooks.finance import cardinality
from sparkbooks.finance import cvar
from sparkbooks.finance import nvidia
from sparkbooks.exceptions import InputError


def _nvidia_milp(R, mu, w_min, w_max, k, *, lam=1.0, beta=0.95, cash=(0.0, 0.2), leverage=1.6):
    """NVIDIA's cardinality programme written straight from ``cvar_optimizer.py``, solved by HiGHS (scipy ``milp``).

    Variables ``[w (n), t, u (S), c, z (n), y (n)]``: ``cp.Variable(n, bounds=[w_min, w_max])`` *and*
    ``w_min·y ≤ w ≤ w_max·y``, ``Σy ≤ k``, ``u + t + R w ≥ 0``, ``u ≥ 0``, ``Σw + c = 1``, ``c ∈ cash``,
    ``‖w‖₁ ≤ leverage`` (``z ≥ ±w``); minimise ``λ·(t + Σuₛ/((1−β)S)) − μᵀw``. Nothing from the package.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    import scipy.sparse as sp

    S, n = R.shape
    nv = n + 1 + S + 1 + n + n
    W, T, U, C, Z, Y = 0, n, n + 1, n + 1 + S, n + 2 + S, 2 * n + 2 + S
    eye = sp.identity(n, format="csr")

    def block(parts, rows):  # a row block from {offset: matrix}
        out = sp.lil_matrix((rows, nv))
        for off, mat in parts.items():
            mat = sp.csr_matrix(mat)
            out[:, off:off + mat.shape[1]] = mat
        return out.tocsr()

    cons = [
        LinearConstraint(block({W: R, T: np.ones((S, 1)), U: sp.identity(S)}, S), 0, np.inf),  # u + t + R w ≥ 0
        LinearConstraint(block({W: np.ones((1, n)), C: np.ones((1, 1))}, 1), 1, 1),  # Σw + c = 1
        LinearConstraint(block({Z: np.ones((1, n))}, 1), -np.inf, leverage),  # Σz ≤ leverage
        LinearConstraint(block({Z: eye, W: -eye}, n), 0, np.inf),  # z ≥ w
        LinearConstraint(block({Z: eye, W: eye}, n), 0, np.inf),  # z ≥ −w
        LinearConstraint(block({W: eye, Y: -sp.diags(w_max)}, n), -np.inf, 0),  # w ≤ w_max·y
        LinearConstraint(block({W: eye, Y: -sp.diags(w_min)}, n), 0, np.inf),  # w ≥ w_min·y
        LinearConstraint(block({Y: np.ones((1, n))}, 1), -np.inf, k),  # Σy ≤ k
    ]
    lo = np.concatenate([w_min, [-np.inf], np.zeros(S), [cash[0]], np.zeros(n), np.zeros(n)])
    hi = np.concatenate([w_max, [np.inf], np.full(S, np.inf), [cash[1]], np.full(n, np.inf), np.ones(n)])
    cost = np.zeros(nv)
    cost[W:W + n], cost[T], cost[U:U + S] = -mu, lam, lam / ((1 - beta) * S)
    integrality = np.zeros(nv)
    integrality[Y:] = 1
    res = milp(cost, constraints=cons, bounds=Bounds(lo, hi), integrality=integrality,
               options={"mip_rel_gap": 1e-9, "time_limit": 60})
    assert res.status == 0, f"the reference MILP did not finish: {res.message}"
    return res.x[W:W + n], float(res.x[C]), float(res.fun)


def _nvidia_shaped(seed: int, n: int, S: int, floor: str) -> tuple[cvar.CVaRProblem, int]:
    """NVIDIA's bounds (others −0.3…0.4, one asset 0.1…0.6), cash 0…0.2, leverage 1.6, λ from their scaling rule."""
    rng = np.random.default_rng(1000 + seed)
    factors = rng.standard_t(4, size=(S, 3)) * 0.01
    r = factors @ rng.normal(0.6, 0.4, size=(3, n)) + rng.standard_t(4, size=(S, n)) * 0.012 + rng.normal(4e-4, 8e-4, n)
    mu = r.mean(axis=0)
    j = int(np.argmax(mu)) if floor == "argmax" else 0
    w_min, w_max = np.full(n, -0.3), np.full(n, 0.4)
    w_min[j], w_max[j] = 0.1, 0.6
    lam = max(nvidia.risk_aversion_scale(r, mu, w_max), 1e-3)
    problem = cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), expected=mu,
                               return_weight=1 / lam)
    return problem, j


def _official(n: int = 24, S: int = 600, seed: int = 0, lam: float = 1.0) -> cvar.CVaRProblem:
    """NVIDIA's shape (cash, leverage 1.6, one floored asset, long/short bounds) on correlated heavy-tailed returns."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_t(4, size=(S, 3)) * 0.01
    r = factors @ rng.normal(0.6, 0.4, size=(3, n)) + rng.standard_t(4, size=(S, n)) * 0.012 + rng.normal(4e-4, 6e-4, n)
    w_min, w_max = np.full(n, -0.3), np.full(n, 0.4)
    w_min[0], w_max[0] = 0.1, 0.6
    return cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), return_weight=1 / lam)


@pytest.mark.parametrize(("seed", "k"), [(0, 3)])
def test_local_search_reaches_highs_optimum_and_the_bound_holds(seed, k):
    problem = _official(seed=seed)
    free = cvar.solve(problem)
    assert np.count_nonzero(np.abs(free.weights) > 1e-6) > k  # the limit binds: a real selection problem
    exact = cardinality.solve_milp(problem, k, time_limit=120)
    assert exact.status == "optimal" and np.count_nonzero(np.abs(exact.weights) > 1e-9) <= k
    ours = cardinality.solve(problem, k, time_limit=60)
    assert len(ours.held) <= k and ours.bound <= exact.objective + 1e-10 <= ours.objective + 2e-10
    assert ours.objective == pytest.approx(exact.objective, rel=1e-6)  # the swaps found HiGHS's optimum here
    assert ours.gap >= -1e-9 and ours.history[-1][1] == ours.objective
    held = ours.weights[ours.held]
    assert (held >= problem.lower[ours.held] - 1e-9).all() and (held <= problem.upper[ours.held] + 1e-9).all()
    assert np.abs(ours.weights).sum() <= 1.6 + 1e-8 and ours.weights.sum() + ours.cash == pytest.approx(1, abs=1e-9)
    assert cardinality.violation(problem, ours.weights, ours.cash, k=k) <= 1e-9
    assert cardinality.violation(problem, ours.weights, ours.cash, k=len(ours.held) - 1) == float("inf")


def test_the_relaxation_is_the_official_lp_where_leverage_already_implies_the_limit():
    problem = _official(seed=3)
    # k = 7 ≥ 1 (the floored asset, always held) + 1.6 / 0.3: Σy ≤ k cannot bind, the relaxation is the programme itself
    fast = cardinality.relaxation(problem, 7)
    official = cvar.solve(problem)
    assert fast.objective == pytest.approx(official.objective, rel=1e-7) and fast.weights[0] >= 0.1 - 1e-9
    assert cardinality.solve_milp(problem, 7, relax=True).objective == pytest.approx(official.objective, rel=1e-6)
    # k = 2 < 1 + 5.3: the knapsack row binds; with the floored asset's y fixed at 1 it is at least HiGHS's relaxation
    tight = cardinality.relaxation(problem, 2)
    assert tight.objective > fast.objective + 1e-9
    assert cardinality.solve_milp(problem, 2, relax=True).objective - 1e-9 <= tight.objective
    assert tight.objective <= cardinality.solve_milp(problem, 2).objective + 1e-10


def test_a_time_limit_stops_the_search_with_a_gap_still_certified():
    problem = _official(n=40, S=800, seed=4)
    quick = cardinality.solve(problem, 4, time_limit=0.0)
    assert quick.status == "time limit" and quick.supports == 2 and quick.gap > 0  # the root LP and the first support
    assert quick.bound <= cardinality.solve(problem, 4, max_supports=40).objective <= quick.objective


@pytest.mark.parametrize("k", [0, 25])
def test_k_outside_the_universe_is_refused(k):
    with pytest.raises(InputError, match="k must lie between 1 and the number of assets"):
        cardinality.solve(_official(), k)


def test_a_gap_target_stops_as_soon_as_it_is_certified():
    problem, _ = _nvidia_shaped(5, 14, 240, "first")
    full = cardinality.solve(problem, 4, time_limit=60)
    loose = cardinality.solve(problem, 4, time_limit=60, gap_target=10.0)  # any portfolio is within 1,000 %
    assert loose.status == "gap target met" and loose.supports == 2 and loose.gap <= 10.0  # the root LP and one support
    assert full.status == "optimal" and full.supports > loose.supports and full.objective <= loose.objective + 1e-12


def test_a_support_cap_stops_the_search_at_the_same_point_on_any_machine():
    problem = _official(n=40, S=800, seed=4)
    capped = [cardinality.solve(problem, 4, time_limit=600, max_supports=6) for _ in range(2)]
    assert all(c.status == "support limit" and c.supports == 6 and c.gap > 0 for c in capped)
    assert capped[0].objective == capped[1].objective and np.array_equal(capped[0].weights, capped[1].weights)
    assert [h[1] for h in capped[0].history] == [h[1] for h in capped[1].history]
    first = cardinality.solve(problem, 4, time_limit=600, max_supports=2)
    assert first.supports == 2 and first.objective >= capped[0].objective
    with pytest.raises(InputError, match="max_supports"):
        cardinality.solve(problem, 4, max_supports=1)


@pytest.mark.parametrize("seed", range(20))
def test_the_floor_is_kept_and_the_answer_is_nvidias_milp_optimum(seed):
    """NVIDIA keeps w ≥ w_min as a variable bound, so the floored asset is in every support (y = 1)."""
    n, S, k = (12, 200, 3) if seed % 2 else (14, 240, 4)
    problem, j = _nvidia_shaped(seed, n, S, "argmax" if seed % 3 else "first")
    lam = 1 / problem.return_weight
    w_ref, c_ref, f_ref = _nvidia_milp(problem.returns, problem.mean, problem.lower, problem.upper, k, lam=lam)
    assert w_ref[j] >= 0.1 - 1e-9 and np.count_nonzero(np.abs(w_ref) > 1e-9) <= k
    ours = cardinality.solve(problem, k, time_limit=600)
    assert ours.status == "optimal" and ours.gap <= 1e-6, (ours.status, ours.gap)
    assert ours.weights[j] >= 0.1 - 1e-9 and j in ours.held and len(ours.held) <= k
    assert lam * ours.objective == pytest.approx(f_ref, rel=1e-6, abs=1e-12)
    assert lam * ours.bound <= f_ref + 1e-6 * abs(f_ref)
    assert cardinality.violation(problem, ours.weights, ours.cash, k=k) <= 1e-9
    if seed % 4 == 0:  # the package's own HiGHS model agrees once its floors are kept
        assert lam * cardinality.solve_milp(problem, k).objective == pytest.approx(f_ref, rel=1e-6, abs=1e-12)


def test_an_unheld_floored_asset_breaks_the_model():
    problem, j = _nvidia_shaped(0, 12, 240, "argmax")
    ours = cardinality.solve(problem, 3)
    dropped = ours.weights.copy()
    dropped[np.argmax(np.where(np.arange(12) == j, -np.inf, np.abs(dropped)))] += dropped[j]
    dropped[j] = 0.0
    assert cardinality.violation(problem, dropped, ours.cash, k=3) >= 0.1 - 1e-9


def test_the_issues_size_matches_the_reference():
    """40 assets × 2,000 scenarios, k = 5, the floor on column 0: a larger search, the same optimum."""
    problem, j = _nvidia_shaped(101, 40, 2000, "first")
    lam = 1 / problem.return_weight
    _, _, f_ref = _nvidia_milp(problem.returns, problem.mean, problem.lower, problem.upper, 5, lam=lam)
    ours = cardinality.solve(problem, 5, time_limit=600)
    assert ours.status == "optimal" and ours.weights[j] >= 0.1 - 1e-9
    assert lam * ours.objective == pytest.approx(f_ref, rel=1e-6, abs=1e-12)


def test_a_support_cap_counts_lps_and_still_proves_a_gap():
    problem, j = _nvidia_shaped(7, 16, 300, "argmax")
    capped = cardinality.solve(problem, 4, max_supports=3)
    assert capped.status == "support limit" and capped.supports == 3 and capped.weights[j] >= 0.1 - 1e-9
    lam = 1 / problem.return_weight
    _, _, f_ref = _nvidia_milp(problem.returns, problem.mean, problem.lower, problem.upper, 4, lam=lam)
    assert lam * capped.bound <= f_ref + 1e-9 <= lam * capped.objective + 2e-9  # the gap brackets the true optimum


def test_a_negative_ceiling_is_a_short_held_in_every_support():
    problem, _ = _nvidia_shaped(3, 12, 240, "argmax")
    lower, upper = problem.lower.copy(), problem.upper.copy()
    lower[5], upper[5] = -0.3, -0.05  # must be short at least 5 %
    short = cvar.CVaRProblem(problem.returns, lower=lower, upper=upper, leverage=1.6, cash=(0.0, 0.2),
                             expected=problem.mean, return_weight=problem.return_weight)
    lam = 1 / short.return_weight
    w_ref, _, f_ref = _nvidia_milp(short.returns, short.mean, lower, upper, 4, lam=lam)
    ours = cardinality.solve(short, 4)
    assert ours.weights[5] <= -0.05 + 1e-9 and lam * ours.objective == pytest.approx(f_ref, rel=1e-6, abs=1e-12)
    with pytest.raises(InputError, match="held in every portfolio"):
        cardinality.solve(short, 1)  # the floor asset and the forced short: two holdings at least


def test_the_official_lp_is_reused_as_the_root_where_it_is_the_relaxation():
    problem, j = _nvidia_shaped(11, 14, 240, "first")
    official = cvar.solve(problem)
    fresh = cardinality.solve(problem, 7, max_supports=6)  # 1 floored + 1.6/0.3 ≤ 7: the root is the official LP
    reused = cardinality.solve(problem, 7, max_supports=6, root=official)
    assert reused.supports == 6 and reused.nodes == fresh.nodes - 1 and reused.weights[j] >= 0.1 - 1e-9
    assert reused.bound == pytest.approx(fresh.bound, rel=1e-7) and reused.bound <= official.objective
