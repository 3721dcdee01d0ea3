"""Mean-CVaR linear programmes, solved by an interior-point method built for their structure.

The Rockafellar–Uryasev programme for ``S`` scenarios and ``n`` assets,

    minimise   −γ·μᵀw + α + 1/((1−β)S) · Σₛ uₛ
    subject to uₛ ≥ −rₛᵀw − α,  uₛ ≥ 0            (losses beyond the VaR level α)
               Σw = budget,  lo ≤ w ≤ hi,  μᵀw ≥ target (optional),  Σ|w| ≤ leverage (optional)

has ``n + 1 + S`` variables and ``2S`` dense rows. A general LP solver factorises that whole
system; here each Newton step eliminates the ``S`` scenario variables in closed form (they
enter one row each), leaving one dense ``(n+1) × (n+1)`` system ``R̃ᵀ D R̃`` — a single BLAS
matrix product over the scenarios, ``O(S n²)`` — per iteration. Mehrotra's predictor–corrector
reuses it for both steps; 15–35 iterations reach 1e-8 relative accuracy (primal and dual
residuals and duality gap). When rounding noise stops progress short of that, the best
iterate is returned — as ``optimal`` within 10× the tolerance, as ``optimal_inaccurate`` within
1e-5 — else an error is raised. The certificate is always returned with the weights.

:func:`solve` returns weights, VaR, CVaR and the solver's own optimality certificate (primal
and dual residuals and the duality gap), so a caller can check the answer rather than trust it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .exceptions import InfeasibleError, InputError, MissingDependencyError, SolverError

__all__ = ["CVaRProblem", "CVaRSolution", "TailRisk", "cvar", "solve", "solve_cuopt", "solve_highs"]


@dataclass
class CVaRProblem:
    """Scenario returns (``S × n``, one row per scenario) and the portfolio constraints."""

    returns: np.ndarray
    beta: float = 0.95
    budget: float = 1.0
    lower: float | np.ndarray = 0.0
    upper: float | np.ndarray = 1.0
    target_return: float | None = None
    return_weight: float = 0.0
    leverage: float | None = None

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
        if (self.lower > self.upper).any():
            raise InputError("Some lower bounds exceed their upper bounds.")
        if self.lower.sum() > self.budget + 1e-12 or self.upper.sum() < self.budget - 1e-12:
            raise InputError(f"No weights within the bounds sum to the budget {self.budget}: "
                             f"bounds allow {self.lower.sum():.4g} … {self.upper.sum():.4g}.")
        if (self.lower < 0).any() and self.leverage is None:
            raise InputError("Short positions (lower < 0) need a leverage limit (Σ|w| ≤ leverage).")

    @property
    def n_assets(self) -> int:
        return self.returns.shape[1]

    @property
    def n_scenarios(self) -> int:
        return self.returns.shape[0]

    @property
    def mean(self) -> np.ndarray:
        return self.returns.mean(axis=0)


@dataclass
class CVaRSolution:
    """Optimal weights with the risk figures and the interior-point certificate."""

    weights: np.ndarray
    var: float
    cvar: float
    expected_return: float
    objective: float
    iterations: int
    seconds: float
    status: str
    certificate: dict[str, float] = field(default_factory=dict)


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


def _lift(problem: CVaRProblem) -> tuple[np.ndarray, dict]:
    """Decision variables x: the weights, or (long, short) parts when shorting is allowed."""
    n = problem.n_assets
    r = problem.returns
    short = bool((problem.lower < 0).any())
    if not short:
        return r, {"short": False, "lo": problem.lower, "hi": problem.upper, "mean": problem.mean,
                   "eq": (np.ones((1, n)), np.array([problem.budget])),
                   "ineq": (np.empty((0, n)), np.empty(0))}
    lift = np.hstack([r, -r])
    rows, rhs = [np.ones(2 * n)], [problem.leverage]
    return lift, {"short": True, "lo": np.zeros(2 * n),
                  "hi": np.concatenate([np.maximum(problem.upper, 0), np.maximum(-problem.lower, 0)]),
                  "mean": np.concatenate([problem.mean, -problem.mean]),
                  "eq": (np.concatenate([np.ones(n), -np.ones(n)])[None, :], np.array([problem.budget])),
                  "ineq": (np.array(rows), np.array(rhs)), "n": n}


def solve(problem: CVaRProblem, *, tol: float = 1e-8, max_iter: int = 100, verbose: bool = False) -> CVaRSolution:
    """The optimal Mean-CVaR portfolio by a structure-exploiting primal–dual interior-point method.

    Raises
    ------
    SolverError
        The method stalls or the problem is infeasible (e.g. ``target_return`` above every asset's mean).
    """
    start = time.perf_counter()
    returns, lifted = _lift(problem)
    scale = float(np.abs(returns).mean()) or 1.0  # solve in units where a typical return is 1
    R = returns / scale
    S, m = R.shape
    c_u = 1.0 / ((1.0 - problem.beta) * S)
    mean = lifted["mean"] / scale
    a_in, b_in = lifted["ineq"]
    if problem.target_return is not None:  # μᵀw ≥ target  ⇔  −μᵀw ≤ −target
        a_in = np.vstack([a_in, -mean[None, :]]) if a_in.size else -mean[None, :]
        b_in = np.concatenate([b_in, [-problem.target_return / scale]])
    a_eq, b_eq = lifted["eq"]
    q = -problem.return_weight * mean  # return_weight trades return (per unit) against CVaR
    lo, hi = lifted["lo"], lifted["hi"]
    hi_idx, lo_idx = np.flatnonzero(np.isfinite(hi)), np.flatnonzero(np.isfinite(lo))
    R1 = np.hstack([R, np.ones((S, 1))])  # R̃ = [R, 1]: scenario rows act on (x, α)

    # Starting point: mid-box weights, α at the median loss, slacks and multipliers of order one.
    x = np.clip(np.full(m, problem.budget / max(problem.n_assets, 1)), lo, hi)
    alpha = float(np.median(-R @ x))
    u = np.maximum(-R @ x - alpha, 0) + 1.0
    y = np.zeros(len(b_eq))
    s = [np.maximum(R @ x + alpha + u, 1.0), np.maximum(u, 1.0), np.maximum(b_in - a_in @ x, 1.0) if len(b_in) else np.empty(0),
         np.maximum(hi[hi_idx] - x[hi_idx], 1.0), np.maximum(x[lo_idx] - lo[lo_idx], 1.0)]
    lam = [np.full(S, c_u / 2), np.full(S, c_u / 2), np.ones(len(b_in)), np.full(len(hi_idx), 0.1), np.full(len(lo_idx), 0.1)]
    n_rows = sum(len(v) for v in s)
    norm_h = 1.0 + float(np.linalg.norm(np.concatenate([b_in, hi[hi_idx], lo[lo_idx], b_eq])))
    norm_c = 1.0 + float(np.linalg.norm(np.concatenate([q, [1.0], [c_u * np.sqrt(S)]])))

    def gz(x, alpha, u):  # G z − h, block by block
        return [-(R @ x) - alpha - u, -u, a_in @ x - b_in if len(b_in) else np.empty(0), x[hi_idx] - hi[hi_idx], lo[lo_idx] - x[lo_idx]]

    def gt(v):  # Gᵀ v for block vectors v
        gx = -(R.T @ v[0]) + (a_in.T @ v[2] if len(b_in) else 0.0)
        gx = gx + np.bincount(hi_idx, v[3], minlength=m) - np.bincount(lo_idx, v[4], minlength=m)
        return gx, -float(v[0].sum()), -v[0] - v[1]

    status, it = "max_iter", 0
    certificate: dict[str, float] = {}
    best, best_error, stalled = None, np.inf, 0
    for it in range(1, max_iter + 1):
        rp = [g + si for g, si in zip(gz(x, alpha, u), s)]
        gx, ga, gu = gt(lam)
        rd = (q + gx + a_eq.T @ y, 1.0 + ga, c_u + gu)
        req = a_eq @ x - b_eq
        mu = sum(float(si @ li) for si, li in zip(s, lam)) / n_rows
        pobj = float(q @ x) + alpha + c_u * float(u.sum())
        dobj = -float(b_in @ lam[2]) - float(hi[hi_idx] @ lam[3]) + float(lo[lo_idx] @ lam[4]) - float(b_eq @ y)
        rel_p = float(np.sqrt(sum(float(v @ v) for v in rp) + float(req @ req))) / norm_h
        # dual residual relative to the largest term it balances (c, Gᵀλ or Aᵀy), as Clarabel and ECOS measure it
        scale_d = max(norm_c, 1.0 + float(np.linalg.norm(gx)), 1.0 + float(np.linalg.norm(a_eq.T @ y)))
        rel_d = float(np.sqrt(float(rd[0] @ rd[0]) + rd[1] ** 2 + float(rd[2] @ rd[2]))) / scale_d
        gap = abs(pobj - dobj) / (1.0 + abs(pobj))
        certificate = {"primal_residual": rel_p, "dual_residual": rel_d, "gap": gap}
        if verbose:
            print(f"{it:3d}  primal {rel_p:9.2e}  dual {rel_d:9.2e}  gap {gap:9.2e}  mu {mu:9.2e}")
        error = max(rel_p, rel_d, gap)
        if error < best_error:
            best, best_error, stalled = (x.copy(), alpha, u.copy(), pobj, dict(certificate)), error, 0
        else:
            stalled += 1
        if error < tol:
            status = "optimal"
            break
        if stalled >= 5 or mu < 1e-14:
            break  # rounding noise now exceeds the progress: keep the best iterate seen
        w = [li / si for li, si in zip(lam, s)]
        d_u = w[0] + w[1]
        d_eff = w[0] * w[1] / d_u  # scenario weight after eliminating u
        K = (R1 * d_eff[:, None]).T @ R1
        if len(b_in):
            K[:m, :m] += (a_in * w[2][:, None]).T @ a_in
        K[hi_idx, hi_idx] += w[3]
        K[lo_idx, lo_idx] += w[4]
        n_eq = len(b_eq)
        kkt = np.zeros((m + 1 + n_eq, m + 1 + n_eq))
        kkt[:m + 1, :m + 1] = K
        kkt[m + 1:, :m] = a_eq
        kkt[:m, m + 1:] = a_eq.T
        kkt[np.arange(m + 1), np.arange(m + 1)] += 1e-12 * (1.0 + np.abs(np.diag(K)))  # keeps a singular K solvable

        def direction(rc):
            g = [p - c / li for p, c, li in zip(rp, rc, lam)]
            wg = [wi * gi for wi, gi in zip(w, g)]
            bx, ba, bu = gt(wg)
            rhs_x, rhs_a, rhs_u = -rd[0] - bx, -rd[1] - ba, -rd[2] - bu
            frac = w[0] / d_u
            # eliminating du = (rhs_u − W₁R̃dz)/(W₁+W₂) moves R̃ᵀ(W₁/(W₁+W₂))·rhs_u to the right-hand side
            rhs = np.concatenate([rhs_x - R.T @ (frac * rhs_u), [rhs_a - float((frac * rhs_u).sum())], -req])
            sol = np.linalg.solve(kkt, rhs)
            dx, da, dy = sol[:m], float(sol[m]), sol[m + 1:]
            du = (rhs_u - w[0] * (R @ dx + da)) / d_u
            gdz = [-(R @ dx) - da - du, -du, a_in @ dx if len(b_in) else np.empty(0), dx[hi_idx], -dx[lo_idx]]
            dlam = [wi * (gd + gi) for wi, gd, gi in zip(w, gdz, g)]
            ds = [-(c + si * dl) / li for c, si, dl, li in zip(rc, s, dlam, lam)]
            return dx, da, du, dy, ds, dlam

        def step(v, dv):
            ratios = [np.min(-vi[dvi < 0] / dvi[dvi < 0]) for vi, dvi in zip(v, dv) if (dvi < 0).any()]
            return min([1.0] + ratios)

        # Predictor (affine scaling), then Mehrotra's centring-corrector with the same matrix.
        rc = [si * li for si, li in zip(s, lam)]
        aff = direction(rc)
        ap, ad = step(s, aff[4]), step(lam, aff[5])
        mu_aff = sum(float((si + ap * dsi) @ (li + ad * dli)) for si, dsi, li, dli in zip(s, aff[4], lam, aff[5])) / n_rows
        sigma = (mu_aff / mu) ** 3
        rc = [si * li + dsi * dli - sigma * mu for si, li, dsi, dli in zip(s, lam, aff[4], aff[5])]
        dx, da, du, dy, ds, dlam = direction(rc)
        ap, ad = 0.995 * step(s, ds), 0.995 * step(lam, dlam)
        x, alpha, u = x + ap * dx, alpha + ap * da, u + ap * du
        s = [si + ap * dsi for si, dsi in zip(s, ds)]
        y = y + ad * dy
        lam = [li + ad * dli for li, dli in zip(lam, dlam)]
    x, alpha, u, pobj, certificate = best
    certificate["lp_objective"] = pobj * scale  # the programme's own objective, in return units
    if status != "optimal":  # stopped by rounding noise: judge the best iterate by its certificate
        status = "optimal" if best_error < 10 * tol else "optimal_inaccurate" if best_error < 1e-5 else status
    if status not in ("optimal", "optimal_inaccurate"):
        raise SolverError(f"The interior-point method stopped after {it} iterations without converging "
                           f"(residuals {certificate}); the problem may be infeasible — e.g. a target return "
                           "above what any portfolio within the bounds reaches.")
    weights = x if not lifted["short"] else x[:lifted["n"]] - x[lifted["n"]:]
    risk = cvar(-(problem.returns @ weights), problem.beta)
    expected = float(problem.mean @ weights)
    objective = -problem.return_weight * expected + risk.cvar
    return CVaRSolution(weights=weights, var=risk.var, cvar=risk.cvar, expected_return=expected, objective=objective,
                        iterations=it, seconds=time.perf_counter() - start, status=status, certificate=certificate)


def _lp(problem: CVaRProblem) -> dict:
    """The programme as one sparse LP over (x, α, u): ``min cᵀv`` s.t. ``A_ub v ≤ b_ub``, ``A_eq v = b_eq``, bounds."""
    import scipy.sparse as sp  # noqa: PLC0415

    returns, lifted = _lift(problem)
    S, m = returns.shape
    c = np.concatenate([-problem.return_weight * lifted["mean"], [1.0], np.full(S, 1.0 / ((1 - problem.beta) * S))])
    rows, rhs = [sp.hstack([sp.csr_matrix(-returns), -np.ones((S, 1)), -sp.identity(S)])], [np.zeros(S)]
    a_in, b_in = lifted["ineq"]
    if len(b_in):
        rows.append(sp.hstack([sp.csr_matrix(a_in), sp.csr_matrix((len(b_in), 1 + S))]))
        rhs.append(b_in)
    if problem.target_return is not None:
        rows.append(sp.hstack([sp.csr_matrix(-lifted["mean"][None, :]), sp.csr_matrix((1, 1 + S))]))
        rhs.append(np.array([-problem.target_return]))
    a_eq, b_eq = lifted["eq"]
    return {"c": c, "a_ub": sp.vstack(rows).tocsr(), "b_ub": np.concatenate(rhs),
            "a_eq": sp.hstack([sp.csr_matrix(a_eq), sp.csr_matrix((1, 1 + S))]).tocsr(), "b_eq": b_eq,
            "lower": np.concatenate([lifted["lo"], [-np.inf], np.zeros(S)]),
            "upper": np.concatenate([lifted["hi"], [np.inf], np.full(S, np.inf)]), "m": m, "lifted": lifted}


def _finish(problem: CVaRProblem, lp: dict, values: np.ndarray, iterations: int, seconds: float) -> CVaRSolution:
    x, lifted = values[:lp["m"]], lp["lifted"]
    weights = x if not lifted["short"] else x[:lifted["n"]] - x[lifted["n"]:]
    risk = cvar(-(problem.returns @ weights), problem.beta)
    expected = float(problem.mean @ weights)
    return CVaRSolution(weights=weights, var=risk.var, cvar=risk.cvar, expected_return=expected,
                        objective=-problem.return_weight * expected + risk.cvar, iterations=iterations,
                        seconds=seconds, status="optimal")


def solve_highs(problem: CVaRProblem) -> CVaRSolution:
    """The same programme through HiGHS (scipy's ``linprog``): the reference the tests compare against."""
    from scipy.optimize import linprog  # noqa: PLC0415

    start = time.perf_counter()
    lp = _lp(problem)
    res = linprog(lp["c"], A_ub=lp["a_ub"], b_ub=lp["b_ub"], A_eq=lp["a_eq"], b_eq=lp["b_eq"],
                  bounds=np.column_stack([lp["lower"], lp["upper"]]), method="highs")
    if res.status != 0:
        raise (InfeasibleError if res.status == 2 else SolverError)(f"HiGHS: {res.message}")
    return _finish(problem, lp, res.x, int(res.nit), time.perf_counter() - start)


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
    lp = _lp(problem)
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
    done = _finish(problem, lp, values, int(stats.get("nb_iterations", 0)), time.perf_counter() - start)
    done.status = "optimal"
    done.certificate = {"primal_residual": float(stats.get("primal_residual", np.nan)),
                        "dual_residual": float(stats.get("dual_residual", np.nan)), "gap": float(stats.get("gap", np.nan)),
                        "solved_by": str(solution.get_solved_by()), "solver_seconds": float(solution.get_solve_time())}
    return done
