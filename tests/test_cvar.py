"""The Mean-CVaR interior-point method: CVaR by hand, agreement with HiGHS, constraints, certificates, bad input."""

import numpy as np
import pytest

from sparkbooks.finance import cvar
from sparkbooks.finance import problem as problem_lib
from sparkbooks.exceptions import InfeasibleError, InputError, SolverError


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



# --- NVIDIA's portfolio-optimization problem, against an independent reference -------------------------------

def _official_reference(r, mu, w_min, w_max, *, lam, leverage=1.6, cash=(0.0, 0.2), beta=0.95):
    """cvxpy + CLARABEL written straight from NVIDIA's cvar_optimizer.py constraints (not through our LP builder)."""
    cp = pytest.importorskip("cvxpy")
    S, n = r.shape
    R, p = r.T, np.full(S, 1.0 / S)
    w, c = cp.Variable(n), cp.Variable(1)
    u, t = cp.Variable(S, nonneg=True), cp.Variable(1)
    cvar_risk = t + 1 / (1 - beta) * p @ u
    constraints = [u + t + R.T @ w >= 0, cp.sum(w) + c == 1, cp.norm1(w) <= leverage,
                   w >= w_min, w <= w_max, c >= cash[0], c <= cash[1]]
    problem = cp.Problem(cp.Minimize(lam * cvar_risk - mu @ w), constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == "optimal", problem.status
    return float(problem.value), np.asarray(w.value), float(c.value[0])


def _official_case(seed=0, n=12, S=400):
    r = _returns(S=S, n=n, seed=seed)
    mu = r.mean(axis=0) + np.random.default_rng(seed + 100).normal(0, 3e-4, n)  # μ need not be the scenario mean
    w_min, w_max = np.full(n, -0.3), np.full(n, 0.4)
    w_min[0], w_max[0] = 0.1, 0.6  # the one asset NVIDIA floors at 10% ("NVDA")
    return r, mu, w_min, w_max


@pytest.mark.parametrize("lam", [0.01, 0.3, 1.0, 3.0, 27.0, 100.0])
def test_official_formulation_matches_an_independent_cvxpy_reference(lam):
    r, mu, w_min, w_max = _official_case(seed=int(lam * 10) % 7)
    reference, ref_w, ref_c = _official_reference(r, mu, w_min, w_max, lam=lam)
    problem = cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), expected=mu,
                               return_weight=1 / lam)
    ours = cvar.solve(problem)
    assert ours.status == "optimal"
    assert lam * ours.objective == pytest.approx(reference, rel=1e-6, abs=1e-9)
    w = ours.weights
    assert (w >= w_min - 1e-9).all() and (w <= w_max + 1e-9).all() and w[0] >= 0.1 - 1e-9
    assert 0 - 1e-9 <= ours.cash <= 0.2 + 1e-9 and w.sum() + ours.cash == pytest.approx(1, abs=1e-9)
    assert np.abs(w).sum() <= 1.6 + 1e-8 and ours.certificate["violation"] <= 1e-9


def test_positive_floor_with_shorting_is_kept():
    # the old long/short split set both halves' lower bounds to 0: NVDA's 10% floor was silently dropped
    r, mu, w_min, w_max = _official_case(seed=5)
    mu = mu.copy()
    mu[0] = -0.01  # make the floored asset unattractive, so only its floor keeps it held
    ours = cvar.solve(cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), expected=mu,
                                       return_weight=1.0))
    ref = cvar.solve_highs(cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), expected=mu,
                                            return_weight=1.0))
    assert ours.weights[0] == pytest.approx(0.1, abs=1e-7) and ref.weights[0] == pytest.approx(0.1, abs=1e-7)
    assert ours.objective == pytest.approx(ref.objective, rel=1e-7)


def test_binding_cash_and_leverage_are_reached_and_not_crossed():
    r, mu, w_min, w_max = _official_case(seed=2)
    lam = 1.0 / 30  # return-hungry: shorts and longs up to the leverage limit, cash at its cap
    _, ref_w, ref_c = _official_reference(r, mu, w_min, w_max, lam=lam)
    ours = cvar.solve(cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), expected=mu,
                                       return_weight=30.0))
    assert np.abs(ours.weights).sum() == pytest.approx(1.6, abs=1e-6) and np.abs(ref_w).sum() == pytest.approx(1.6, abs=1e-6)
    assert ours.cash == pytest.approx(ref_c, abs=1e-6)
    assert np.abs(ours.weights).sum() <= 1.6 + 1e-8


def test_cash_stays_out_of_the_leverage_row():
    # modelling cash as an extra asset counted it in Σ|w| (a run ended with cash 0 and gross 1.8)
    r, mu, w_min, w_max = _official_case(seed=3)
    mu = mu - 2e-3  # most assets lose money on average: cash is worth holding, and shorts are attractive
    lam = 1.0 / 30
    reference, ref_w, ref_c = _official_reference(r, mu, w_min, w_max, lam=lam)
    sol = cvar.solve(cvar.CVaRProblem(r, lower=w_min, upper=w_max, leverage=1.6, cash=(0.0, 0.2), expected=mu,
                                      return_weight=30.0))
    assert ref_c == pytest.approx(0.2, abs=1e-6) and np.abs(ref_w).sum() == pytest.approx(1.6, abs=1e-6)
    assert sol.cash == pytest.approx(0.2, abs=1e-7) and np.abs(sol.weights).sum() == pytest.approx(1.6, abs=1e-7)
    assert lam * sol.objective == pytest.approx(reference, rel=1e-6)

def _fake_cuopt(tmp_path, monkeypatch, *, reason: str, solution=None):
    """A stand-in `cuopt` package with cuOpt 26.10's call surface (no GPU here to run the real one).

    The parameter names it accepts come from the snapshot of the real wheel; it records what it was given.
    """
    import json
    import sys
    import types
    from pathlib import Path

    known = set(json.loads((Path(__file__).with_name("gpu_api_snapshot.json")).read_text())["cuopt_parameters"])
    given = {}

    class DataModel:
        def __getattr__(self, name):
            return lambda *args: None

    class SolverSettings:
        def set_parameter(self, name, value):
            assert name in known, f"cuOpt has no parameter {name!r}"
            given[name] = value

    class Solution:
        def get_termination_reason(self):
            return reason

        def get_error_message(self):
            return ""

        def get_primal_solution(self):
            return solution

        def get_lp_stats(self):
            return {"nb_iterations": 7, "primal_residual": 0.0, "dual_residual": 0.0, "gap": 0.0}

        def get_solved_by(self):
            return 3

        def get_solve_time(self):
            return 0.01

    root = types.ModuleType("cuopt")
    lp = types.ModuleType("cuopt.linear_programming")
    lp.Solve = lambda model, settings: Solution()
    dm, ss = types.ModuleType("cuopt.linear_programming.data_model"), types.ModuleType("cuopt.linear_programming.solver_settings")
    dm.DataModel, ss.SolverSettings = DataModel, SolverSettings
    root.linear_programming = lp
    for name, module in {"cuopt": root, "cuopt.linear_programming": lp, "cuopt.linear_programming.data_model": dm,
                         "cuopt.linear_programming.solver_settings": ss}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return given


@pytest.mark.parametrize("reason, error", [("TimeLimit", SolverError), ("PrimalInfeasible", InfeasibleError)])
def test_cuopt_anything_but_optimal_is_refused(tmp_path, monkeypatch, reason, error):
    given = _fake_cuopt(tmp_path, monkeypatch, reason=reason)
    with pytest.raises(error, match=reason):
        cvar.solve_cuopt(cvar.CVaRProblem(_returns(S=60, n=4)))
    assert given["crossover"] is True and given["relative_gap_tolerance"] <= 1e-8  # exact, not PDLP's 1e-4 default


def test_cuopt_optimal_answer_is_certified_like_any_other(tmp_path, monkeypatch):
    problem = cvar.CVaRProblem(_returns(S=60, n=4))
    reference = problem_lib.linear_program(problem)
    exact = cvar.solve_highs(problem)
    values = np.zeros(len(reference["c"]))
    values[:4] = exact.weights
    _fake_cuopt(tmp_path, monkeypatch, reason="Optimal", solution=values)
    sol = cvar.solve_cuopt(problem)
    assert sol.status == "optimal" and sol.iterations == 7 and np.allclose(sol.weights, exact.weights)
    values[:4] = exact.weights * 1.001  # a first-order answer whose budget is off by 1e-3 is not optimal
    _fake_cuopt(tmp_path, monkeypatch, reason="Optimal", solution=values)
    with pytest.raises(SolverError, match="breaks a constraint"):
        cvar.solve_cuopt(problem)


@pytest.mark.parametrize("cost", [0.0, 0.0005, 0.002, 0.05])
def test_trading_costs_match_highs_and_shrink_turnover(cost):
    r = _returns(seed=11)
    previous = np.full(12, 1 / 12)
    problem = cvar.CVaRProblem(r, upper=0.3, previous=previous, turnover_cost=cost)
    ours, ref = cvar.solve(problem), cvar.solve_highs(problem)
    assert ours.objective == pytest.approx(ref.objective, rel=1e-7)
    assert ours.certificate["turnover"] == pytest.approx(np.abs(ours.weights - previous).sum())
    free = cvar.solve(cvar.CVaRProblem(r, upper=0.3))
    if cost == 0:
        assert ours.cvar == pytest.approx(free.cvar, rel=1e-7)
    else:
        assert ours.certificate["turnover"] <= np.abs(free.weights - previous).sum() + 1e-9
    if cost == 0.05:  # trading costs more than any risk it removes: keep the old portfolio
        assert ours.certificate["turnover"] < 1e-6


def test_trading_costs_need_previous_holdings_and_long_only():
    r = _returns(S=50, n=4)
    with pytest.raises(InputError, match="previous holdings"):
        cvar.CVaRProblem(r, turnover_cost=0.001)
    with pytest.raises(InputError, match="long-only"):
        cvar.CVaRProblem(r, lower=-0.1, leverage=1.5, previous=np.full(4, 0.25))
