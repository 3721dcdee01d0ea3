"""The Mean-CVaR interior-point method: CVaR by hand, agreement with HiGHS, constraints, certificates, bad input."""

import numpy as np
import pytest

from sparkbooks import cvar
from sparkbooks.exceptions import InputError, SolverError


def test_cvar_of_equally_likely_losses_by_hand():
    risk = cvar.cvar(np.arange(1, 101), 0.95)  # worst 5 of 1…100: 96…100
    var_, cvar_ = risk.var, risk.cvar
    assert var_ == 95 and cvar_ == pytest.approx(98.0)
    assert cvar.cvar(np.full(10, 2.5), 0.9).var == 2.5 and cvar.cvar(np.full(10, 2.5), 0.9).cvar == pytest.approx(2.5)


def _returns(S=400, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0004, 0.012, size=(S, n)) + rng.standard_t(4, size=(S, 1)) * 0.008


CASES = [
    {},
    {"upper": 0.2},
    {"target_return": 0.0007, "upper": 0.3},
    {"return_weight": 3.0},
    {"beta": 0.99},
    {"lower": -0.2, "upper": 0.5, "leverage": 1.5},
    {"budget": 0.8, "upper": 0.25},
]


@pytest.mark.parametrize("options", CASES, ids=[",".join(c) or "plain" for c in CASES])
def test_matches_highs_and_keeps_every_constraint(options):
    problem = cvar.CVaRProblem(_returns(seed=len(options)), **options)
    ours, ref = cvar.solve(problem), cvar.solve_highs(problem)
    assert ours.status == "optimal"
    assert ours.objective == pytest.approx(ref.objective, rel=1e-7)
    w = ours.weights
    assert w.sum() == pytest.approx(problem.budget, abs=1e-9)
    assert (w >= problem.lower - 1e-9).all() and (w <= problem.upper + 1e-9).all()
    if problem.leverage is not None:
        assert np.abs(w).sum() <= problem.leverage + 1e-8
    if problem.target_return is not None:
        assert ours.expected_return >= problem.target_return - 1e-10


@pytest.mark.parametrize("options", CASES[:4], ids=[",".join(c) or "plain" for c in CASES[:4]])
def test_the_programmes_cvar_is_the_scenarios_cvar(options):
    """The LP's own objective (α + mean excess / (1−β), minus the return term) equals CVaR recomputed from the scenarios."""
    problem = cvar.CVaRProblem(_returns(seed=7), **options)
    sol = cvar.solve(problem)
    recomputed = cvar.cvar(-(problem.returns @ sol.weights), problem.beta).cvar
    assert sol.cvar == pytest.approx(recomputed)
    assert sol.certificate["lp_objective"] == pytest.approx(-problem.return_weight * sol.expected_return + recomputed, rel=1e-6)
    assert max(sol.certificate["primal_residual"], sol.certificate["dual_residual"], sol.certificate["gap"]) < 1e-7


def test_minimum_cvar_beats_every_single_asset_and_equal_weight():
    problem = cvar.CVaRProblem(_returns(seed=3))
    best = cvar.solve(problem).cvar
    r = problem.returns
    assert best <= min(cvar.cvar(-r[:, j], 0.95).cvar for j in range(r.shape[1])) + 1e-12
    assert best <= cvar.cvar(-r.mean(axis=1), 0.95).cvar + 1e-12


def test_unreachable_target_is_reported_as_infeasible():
    r = _returns(seed=1)
    with pytest.raises(SolverError, match="infeasible"):
        cvar.solve(cvar.CVaRProblem(r, upper=0.5, target_return=float(r.mean(axis=0).max()) * 2), max_iter=60)


@pytest.mark.parametrize("bad, message", [
    ({"returns": np.array([[0.01, np.nan]])}, "NaN"),
    ({"beta": 1.0}, "beta"),
    ({"upper": 0.05}, "sum to the budget"),
    ({"lower": -0.1}, "leverage"),
    ({"returns": np.zeros(5)}, "scenarios × assets"),
])
def test_bad_problems_are_refused_with_the_reason(bad, message):
    options = {"returns": _returns(S=50, n=4), **bad}
    with pytest.raises(InputError, match=message):
        cvar.CVaRProblem(**options)

