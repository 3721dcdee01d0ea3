"""The Mean-CVaR programme through general LP solvers — HiGHS on the CPU, NVIDIA cuOpt on the GPU — and the
certificate every solver's answer passes before it is reported: the weights checked against the **original**
bounds, budget, cash, leverage and return floor, with VaR and CVaR computed exactly from the scenarios.
"""

from __future__ import annotations

import time

import numpy as np

from ..exceptions import InfeasibleError, MissingDependencyError, SolverError
from .problem import Columns, CVaRProblem, CVaRSolution, cvar, linear_program

__all__ = ["CUOPT_EXACT", "certify", "finish", "solve_cuopt", "solve_highs"]


def certify(problem: CVaRProblem, weights: np.ndarray, cash: float) -> float:
    """The largest violation of the original constraints (bounds, cash, budget, leverage, return floor)."""
    worst = max(float(np.max(problem.lower - weights, initial=0.0)), float(np.max(weights - problem.upper, initial=0.0)))
    if problem.cash is not None:
        worst = max(worst, problem.cash[0] - cash, cash - problem.cash[1])
    worst = max(worst, abs(float(weights.sum()) + cash - problem.budget))
    if problem.leverage is not None:
        worst = max(worst, float(np.abs(weights).sum()) - problem.leverage)
    if problem.target_return is not None:
        worst = max(worst, problem.target_return - float(problem.mean @ weights))
    return max(worst, 0.0)


def finish(problem: CVaRProblem, cols: Columns, x: np.ndarray, *, iterations: int, seconds: float, status: str,
           certificate: dict[str, float]) -> CVaRSolution:
    """Weights from a solver's variables ``x``, checked against the original constraints, with exact VaR/CVaR.

    Raises
    ------
    SolverError
        The weights break a constraint of ``problem`` by more than 1e-7: not reported as optimal.
    """
    weights = cols.weights(x, problem.n_assets)
    cash = float(x[cols.cash]) if cols.cash is not None else 0.0
    violation = certify(problem, weights, cash)
    certificate = {**certificate, "violation": violation}
    if violation > 1e-7:
        raise SolverError(f"The solver's answer breaks a constraint of the problem by {violation:.2e}; it is not "
                          "reported as optimal. Tighten the tolerance or check the problem's scaling.")
    risk = cvar(-(problem.returns @ weights), problem.beta)
    expected = float(problem.mean @ weights)
    traded = float(np.abs(weights - cols.base).sum()) if problem.previous is not None else 0.0
    objective = -problem.return_weight * expected + risk.cvar + problem.turnover_cost * traded
    return CVaRSolution(weights=weights, var=risk.var, cvar=risk.cvar, expected_return=expected, objective=objective,
                        iterations=iterations, seconds=seconds, status=status, certificate={**certificate, "turnover": traded},
                        cash=cash)


def solve_highs(problem: CVaRProblem) -> CVaRSolution:
    """The same programme through HiGHS (scipy's ``linprog``): a reference the tests compare against."""
    from scipy.optimize import linprog  # noqa: PLC0415

    start = time.perf_counter()
    lp = linear_program(problem)
    res = linprog(lp["c"], A_ub=lp["a_ub"], b_ub=lp["b_ub"], A_eq=lp["a_eq"], b_eq=lp["b_eq"],
                  bounds=np.column_stack([lp["lower"], lp["upper"]]), method="highs")
    if res.status != 0:
        raise (InfeasibleError if res.status == 2 else SolverError)(f"HiGHS: {res.message}")
    return finish(problem, lp["cols"], res.x[:lp["m"]], iterations=int(res.nit), seconds=time.perf_counter() - start,
                  status="optimal", certificate={"lp_objective": float(res.fun)})


#: cuOpt settings for an exact answer: tight tolerances and crossover to a vertex, so a PDLP win in the
#: "concurrent" race (PDLP, barrier, dual simplex) cannot hand back a first-order solution off by ~1e-4.
CUOPT_EXACT = {"absolute_primal_tolerance": 1e-9, "relative_primal_tolerance": 1e-9, "absolute_dual_tolerance": 1e-9,
               "relative_dual_tolerance": 1e-9, "absolute_gap_tolerance": 1e-9, "relative_gap_tolerance": 1e-9,
               "crossover": True}


def solve_cuopt(problem: CVaRProblem, *, time_limit: float = 600.0, settings: dict | None = None) -> CVaRSolution:
    """The same programme on the GPU with NVIDIA cuOpt's LP solver (its ``DataModel`` API).

    ``settings`` (cuOpt parameter names → values) default to :data:`CUOPT_EXACT`. The solver's own
    termination status and iteration count are reported, and anything but ``Optimal`` is refused.

    Raises
    ------
    MissingDependencyError
        cuOpt is not installed.
    InfeasibleError, SolverError
        cuOpt reports infeasibility, or stops for another reason (time limit, numerical error).
    """
    import scipy.sparse as sp  # noqa: PLC0415

    try:
        from cuopt import linear_programming  # noqa: PLC0415
        from cuopt.linear_programming.data_model import DataModel  # noqa: PLC0415
        from cuopt.linear_programming.solver_settings import SolverSettings  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("cuOpt is not installed: on a DGX Spark create the conda environment "
                                     "(`conda env create -f environment.yml`) or `pip install -e '.[gpu]'`.") from None
    start = time.perf_counter()
    lp = linear_program(problem)
    matrix = sp.vstack([lp["a_ub"], lp["a_eq"]]).tocsr()
    model = DataModel()
    model.set_csr_constraint_matrix(matrix.data.astype(np.float64), matrix.indices.astype(np.int32),
                                    matrix.indptr.astype(np.int32))
    model.set_constraint_lower_bounds(np.concatenate([np.full(len(lp["b_ub"]), -np.inf), lp["b_eq"]]))
    model.set_constraint_upper_bounds(np.concatenate([lp["b_ub"], lp["b_eq"]]))
    model.set_objective_coefficients(lp["c"])
    model.set_variable_lower_bounds(lp["lower"])
    model.set_variable_upper_bounds(lp["upper"])
    config = SolverSettings()
    for name, value in {**CUOPT_EXACT, **(settings or {}), "time_limit": time_limit}.items():
        config.set_parameter(name, value)
    solution = linear_programming.Solve(model, config)
    reason = str(solution.get_termination_reason())
    if reason != "Optimal":
        error = InfeasibleError if "Infeasible" in reason else SolverError
        raise error(f"cuOpt stopped with status {reason} ({solution.get_error_message() or 'no message'}); "
                    "nothing is reported as optimal. Raise the time limit, or solve with the CPU method (solver='ipm').")
    values = np.asarray(solution.get_primal_solution(), dtype=np.float64)
    if values.size != len(lp["c"]) or not np.isfinite(values).all():
        raise SolverError(f"cuOpt reported {reason} but returned no usable solution vector.")
    stats = solution.get_lp_stats() or {}
    certificate = {"primal_residual": float(stats.get("primal_residual", np.nan)),
                   "dual_residual": float(stats.get("dual_residual", np.nan)), "gap": float(stats.get("gap", np.nan)),
                   "solved_by": str(solution.get_solved_by()), "solver_seconds": float(solution.get_solve_time())}
    return finish(problem, lp["cols"], values[:lp["m"]], iterations=int(stats.get("nb_iterations", 0)),
                  seconds=time.perf_counter() - start, status="optimal", certificate=certificate)
