"""At most k assets in NVIDIA's programme: the local search against HiGHS's exact MILP, and bounds that hold."""

from __future__ import annotations

import numpy as np
import pytest

from sparkbooks.finance import cardinality
from sparkbooks.finance import cvar
from sparkbooks.exceptions import InputError


def _official(n: int = 24, S: int = 600, seed: int = 0, lam: float = 1.0) -> cvar.CVaRProblem:
    """NVIDIA's shape (cash, leverage 1.6, one floored asset, long/short bounds) on correlated heavy-tailed returns."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_t(4, size=(S, 3)) * 0.01
    r = factors @ rng.normal(0.6, 0.4, size=(3, n)) + rng.standard_t(4, size=(S, n)) * 0.012 + rng.normal(4e-4, 6e-4, n)
    w_min, w_max = np.full(n, -0.3), np.full(n, 0.4)
    w_min[0], w_max[0] = 0.1, 0.6
    return cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), return_weight=1 / lam)


@pytest.mark.parametrize(("seed", "k"), [(0, 3), (1, 5)])
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


def test_the_relaxation_drops_the_limit_only_where_leverage_already_implies_it():
    problem = _official(seed=3)
    # k = 6 ≥ 1.6 / 0.3: Σy ≤ k cannot bind, the relaxation is the floorless programme; HiGHS's relaxation agrees
    fast = cardinality.relaxation(problem, 6)
    highs = cardinality.solve_milp(problem, 6, relax=True)
    assert fast.objective == pytest.approx(highs.objective, rel=1e-6)
    # k = 2 < 5.3: the limit binds in the relaxation too, which then needs its y variables (HiGHS)
    tight = cardinality.relaxation(problem, 2)
    assert tight.objective > fast.objective + 1e-9 and tight.objective <= cardinality.solve_milp(problem, 2).objective + 1e-10


def test_a_time_limit_stops_the_search_with_a_gap_still_certified():
    problem = _official(n=40, S=800, seed=4)
    quick = cardinality.solve(problem, 4, time_limit=0.0)
    assert quick.status == "time limit" and quick.supports == 1 and quick.gap > 0
    assert quick.bound <= cardinality.solve(problem, 4, time_limit=60).objective


@pytest.mark.parametrize("k", [0, 25])
def test_k_outside_the_universe_is_refused(k):
    with pytest.raises(InputError, match="k must lie between 1 and the number of assets"):
        cardinality.solve(_official(), k)


def test_a_gap_target_stops_as_soon_as_it_is_certified():
    problem = _official(seed=1)
    full = cardinality.solve(problem, 5, time_limit=60)
    loose = cardinality.solve(problem, 5, time_limit=60, gap_target=10.0)  # any portfolio is within 1,000 %
    assert loose.status == "gap target met" and loose.supports == 1 and loose.gap <= 10.0
    assert full.supports > loose.supports and full.objective <= loose.objective + 1e-12
