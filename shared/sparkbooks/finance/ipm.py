"""The Mean-CVaR programme solved by a primal–dual interior-point method built for its structure.

A general LP solver factorises the whole system. Here each Newton step eliminates the ``S``
scenario variables in closed form (they enter one row each), leaving one dense system in the
``m + 1`` other variables whose scenario part ``R̃ᵀ D R̃`` comes from a single symmetric BLAS
product ``rᵀ D r`` over the *original* ``n`` columns (the long/short split and cash only
permute and sign it) — ``O(S n²)`` per iteration. Mehrotra's predictor–corrector reuses it
for both steps. The answer is certified (:func:`.solvers.finish`) before it is reported.
"""

from __future__ import annotations

import time

import numpy as np

from ..exceptions import InfeasibleError, InputError, SolverError
from .problem import Columns, CVaRProblem, CVaRSolution, columns
from .solvers import finish

__all__ = ["solve"]


def _start(problem: CVaRProblem, cols: Columns) -> np.ndarray:
    """An interior starting point: budget-sized equal weights kept 5% inside every bound, cash mid-box."""
    lo, hi = problem.lower, problem.upper
    cash_mid = 0.5 * sum(problem.cash) if problem.cash is not None else 0.0
    w = np.clip(np.full(problem.n_assets, (problem.budget - cash_mid) / problem.n_assets), lo + 0.05 * (hi - lo),
                hi - 0.05 * (hi - lo))
    margin = 0.05 * (cols.hi - cols.lo)
    trade = w - cols.base  # with previous holdings the columns are trades
    part = np.where(cols.sign > 0, np.maximum(trade[cols.asset], 0), np.maximum(-trade[cols.asset], 0))
    x = np.where(cols.sign == 0, cash_mid, part + margin * 0.1)
    return np.clip(x, cols.lo + margin, cols.hi - margin)


def solve(problem: CVaRProblem, *, tol: float = 1e-8, max_iter: int = 120, max_correctors: int = 3,
          verbose: bool = False, rows: tuple[np.ndarray, np.ndarray] | None = None) -> CVaRSolution:
    """The optimal Mean-CVaR portfolio by a structure-exploiting primal–dual interior-point method.

    ``tol`` bounds the relative primal and dual residuals and duality gap. The weights are checked
    against the original constraints before they are returned (``certificate["violation"]``).
    ``rows = (A, b)`` adds inequality rows ``A x ≤ b`` over the columns of :func:`.problem.columns` (weight
    units): the cardinality search's knapsack row ``Σ xⱼ/hiⱼ ≤ k′`` is one.

    Raises
    ------
    InfeasibleError
        The constraints admit no portfolio (e.g. ``target_return`` above every asset's mean); the
        primal residual stops falling while the dual one vanishes.
    SolverError
        The method stops short of ``1e-5`` without a sign of infeasibility.
    """
    from scipy.linalg import cho_factor, cho_solve  # noqa: PLC0415
    from scipy.linalg.blas import dsyrk  # noqa: PLC0415

    start = time.perf_counter()
    cols = columns(problem)
    r = problem.returns
    scale = float(np.abs(r).mean()) or 1.0  # solve in units where a typical return is 1
    r = r / scale
    S, m = r.shape[0], cols.m
    take, sign = np.maximum(cols.asset, 0), cols.sign
    c_u = 1.0 / ((1.0 - problem.beta) * S)
    mean = cols.mean / scale
    a_in, b_in = cols.ineq
    if problem.target_return is not None:  # the floor row was built in return units
        a_in = a_in.copy()
        a_in[-1] /= scale
        b_in = b_in.copy()
        b_in[-1] /= scale
    if rows is not None:
        extra = np.atleast_2d(np.asarray(rows[0], dtype=np.float64))
        if extra.shape[1] != cols.m:
            raise InputError(f"rows must have one coefficient per column ({cols.m}); got shape {extra.shape}.")
        a_in = np.vstack([a_in.reshape(-1, cols.m), extra])
        b_in = np.concatenate([b_in, np.asarray(rows[1], dtype=np.float64).reshape(-1)])
    a_eq, b_eq = cols.eq
    q = -problem.return_weight * mean + cols.cost / scale  # return_weight trades return against CVaR; costs on trades
    lo, hi = cols.lo, cols.hi
    hi_idx, lo_idx = np.flatnonzero(np.isfinite(hi)), np.flatnonzero(np.isfinite(lo))

    n_assets = r.shape[1]
    traded = sign != 0

    def rx(x: np.ndarray) -> np.ndarray:  # scenario returns R x
        return r @ np.bincount(take[traded], sign[traded] * x[traded], minlength=n_assets)

    def rt(v: np.ndarray) -> np.ndarray:  # Rᵀ v
        return sign * (r.T @ v)[take]

    scaled = np.empty_like(r)  # r·√d, rewritten in place every iteration
    offset = r @ cols.base  # scenario returns of the holdings the columns start from (0 without previous holdings)

    def rx_full(x: np.ndarray) -> np.ndarray:
        return rx(x) + offset

    # Starting point: equal weights pulled 5% inside each box (cash mid-box), split into long and short parts with a
    # small margin, α at the median loss; multipliers chosen so every complementarity product starts equal.
    x = _start(problem, cols)
    alpha = float(np.median(-rx_full(x)))
    u = np.maximum(-rx_full(x) - alpha, 0) + 1.0
    y = np.zeros(len(b_eq))
    s = [np.maximum(rx_full(x) + alpha + u, 1.0), np.maximum(u, 1.0), np.maximum(b_in - a_in @ x, 1e-2) if len(b_in) else np.empty(0),
         hi[hi_idx] - x[hi_idx], x[lo_idx] - lo[lo_idx]]
    mu0 = c_u / 2
    lam = [np.full(S, c_u / 2), np.full(S, c_u / 2), mu0 / s[2], mu0 / s[3], mu0 / s[4]]
    n_rows = sum(len(v) for v in s)
    norm_h = 1.0 + float(np.linalg.norm(np.concatenate([offset, b_in, hi[hi_idx], lo[lo_idx], b_eq])))
    norm_c = 1.0 + float(np.linalg.norm(np.concatenate([q, [1.0], [c_u * np.sqrt(S)]])))
    outer = np.outer(sign, sign)

    def gz(x, alpha, u):  # G z − h, block by block
        rxv = rx_full(x)
        return [-rxv - alpha - u, -u, a_in @ x - b_in if len(b_in) else np.empty(0), x[hi_idx] - hi[hi_idx], lo[lo_idx] - x[lo_idx]]

    def gt(v):  # Gᵀ v for block vectors v
        gx = -rt(v[0]) + (a_in.T @ v[2] if len(b_in) else 0.0)
        gx = gx + np.bincount(hi_idx, v[3], minlength=m) - np.bincount(lo_idx, v[4], minlength=m)
        return gx, -float(v[0].sum()), -v[0] - v[1]

    status, it = "max_iter", 0
    certificate: dict[str, float] = {}
    best, best_error, best_at, history = None, np.inf, 0, []
    for it in range(1, max_iter + 1):
        rp = [g + si for g, si in zip(gz(x, alpha, u), s)]
        gx, ga, gu = gt(lam)
        rd = (q + gx + a_eq.T @ y, 1.0 + ga, c_u + gu)
        req = a_eq @ x - b_eq
        mu = sum(float(si @ li) for si, li in zip(s, lam)) / n_rows
        pobj = float(q @ x) + alpha + c_u * float(u.sum())
        dobj = (-float(offset @ lam[0]) - float(b_in @ lam[2]) - float(hi[hi_idx] @ lam[3]) + float(lo[lo_idx] @ lam[4])
                - float(b_eq @ y))
        rel_p = float(np.sqrt(sum(float(v @ v) for v in rp) + float(req @ req))) / norm_h
        # dual residual relative to the largest term it balances (c, Gᵀλ or Aᵀy), as Clarabel and ECOS measure it
        scale_d = max(norm_c, 1.0 + float(np.linalg.norm(gx)), 1.0 + float(np.linalg.norm(a_eq.T @ y)))
        rel_d = float(np.sqrt(float(rd[0] @ rd[0]) + rd[1] ** 2 + float(rd[2] @ rd[2]))) / scale_d
        gap = abs(pobj - dobj) / (1.0 + abs(pobj))
        certificate = {"primal_residual": rel_p, "dual_residual": rel_d, "gap": gap}
        history.append(rel_p)
        if verbose:
            print(f"{it:3d}  primal {rel_p:9.2e}  dual {rel_d:9.2e}  gap {gap:9.2e}  mu {mu:9.2e}")
        error = max(rel_p, rel_d, gap)
        if error < 0.9 * best_error:
            best, best_error, best_at = (x.copy(), alpha, u.copy(), pobj, dict(certificate)), error, it
        if error < tol:
            status = "optimal"
            best = (x.copy(), alpha, u.copy(), pobj, dict(certificate))
            break
        # Give up only when nothing has improved for a while — not on an early rise of the gap, which a
        # large return weight produces while the iterates are still far from the central path.
        if (it - best_at >= 10 and it >= 25) or mu < 1e-16:
            break
        w = [li / si for li, si in zip(lam, s)]
        d_u = w[0] + w[1]
        d_eff = w[0] * w[1] / d_u  # scenario weight after eliminating u
        np.multiply(r, np.sqrt(d_eff)[:, None], out=scaled)
        gram = dsyrk(1.0, scaled.T, trans=0, lower=0)  # rᵀ D r (upper triangle): the one O(S n²) product per iteration
        gram = np.triu(gram) + np.triu(gram, 1).T
        rdx = r.T @ d_eff
        K = np.empty((m + 1, m + 1))
        K[:m, :m] = outer * gram[np.ix_(take, take)]
        K[:m, m] = K[m, :m] = sign * rdx[take]
        K[m, m] = d_eff.sum()
        if len(b_in):
            K[:m, :m] += (a_in * w[2][:, None]).T @ a_in
        K[hi_idx, hi_idx] += w[3]
        K[lo_idx, lo_idx] += w[4]
        K[np.arange(m + 1), np.arange(m + 1)] += 1e-12 * (1.0 + np.abs(np.diag(K)))  # keeps a singular K solvable
        # K is positive definite: Cholesky once per iteration; the budget row joins through its Schur complement.
        factor = cho_factor(K, lower=False, check_finite=False)
        a_full = np.hstack([a_eq, np.zeros((len(b_eq), 1))])
        k_inv_at = cho_solve(factor, a_full.T, check_finite=False)
        schur = a_full @ k_inv_at

        def kkt_solve(f: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z0 = cho_solve(factor, f, check_finite=False)
            dy_ = np.linalg.solve(schur, a_full @ z0 - g)
            return z0 - k_inv_at @ dy_, dy_

        def direction(rc):
            g = [p - c / li for p, c, li in zip(rp, rc, lam)]
            wg = [wi * gi for wi, gi in zip(w, g)]
            bx, ba, bu = gt(wg)
            rhs_x, rhs_a, rhs_u = -rd[0] - bx, -rd[1] - ba, -rd[2] - bu
            frac = w[0] / d_u
            # eliminating du = (rhs_u − W₁R̃dz)/(W₁+W₂) moves R̃ᵀ(W₁/(W₁+W₂))·rhs_u to the right-hand side
            f = np.concatenate([rhs_x - rt(frac * rhs_u), [rhs_a - float((frac * rhs_u).sum())]])
            sol, dy = kkt_solve(f, -req)
            dx, da = sol[:m], float(sol[m])
            rdx_ = rx(dx)
            du = (rhs_u - w[0] * (rdx_ + da)) / d_u
            gdz = [-rdx_ - da - du, -du, a_in @ dx if len(b_in) else np.empty(0), dx[hi_idx], -dx[lo_idx]]
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
        best_dir = direction(rc)
        ap, ad = step(s, best_dir[4]), step(lam, best_dir[5])
        # Gondzio's centrality correctors: push the complementarity products that would stray furthest from σμ back
        # into [0.1σμ, 10σμ] at a longer trial step; keep a corrected direction only if it lets both steps grow.
        target = sigma * mu
        for _ in range(max_correctors):
            if min(ap, ad) > 0.95:
                break
            tp, td = min(1.0, 1.5 * ap + 0.1), min(1.0, 1.5 * ad + 0.1)
            trial = [(si + tp * dsi) * (li + td * dli) for si, dsi, li, dli in zip(s, best_dir[4], lam, best_dir[5])]
            shift = [np.maximum(np.clip(v, 0.1 * target, 10 * target) - v, -10 * target) for v in trial]
            candidate = direction([c - t for c, t in zip(rc, shift)])
            cp_, cd_ = step(s, candidate[4]), step(lam, candidate[5])
            if cp_ + cd_ < 1.01 * (ap + ad):
                break
            best_dir, ap, ad, rc = candidate, cp_, cd_, [c - t for c, t in zip(rc, shift)]
        dx, da, du, dy, ds, dlam = best_dir
        ap, ad = 0.995 * ap, 0.995 * ad
        if verbose:
            print(f"     steps primal {ap:.3f} dual {ad:.3f} sigma {sigma:.2e}")
        x, alpha, u = x + ap * dx, alpha + ap * da, u + ap * du
        s = [si + ap * dsi for si, dsi in zip(s, ds)]
        y = y + ad * dy
        lam = [li + ad * dli for li, dli in zip(lam, dlam)]
    x, alpha, u, pobj, certificate = best
    certificate["lp_objective"] = pobj * scale  # the programme's own objective, in return units
    if status != "optimal":  # stopped by rounding noise: judge the best iterate by its certificate
        status = "optimal" if best_error < 10 * tol else "optimal_inaccurate" if best_error < 1e-5 else status
    if status not in ("optimal", "optimal_inaccurate"):
        late = history[len(history) // 2:]
        if certificate["primal_residual"] > 1e-4 and late and min(late) > 0.1 * history[0] * 1e-3:
            raise InfeasibleError(
                f"The interior-point method found no portfolio meeting every constraint after {it} iterations "
                f"(primal residual {certificate['primal_residual']:.2e} stopped falling): the problem looks infeasible — "
                "e.g. a target return above what any portfolio within the bounds reaches.")
        raise SolverError(f"The interior-point method stopped after {it} iterations without converging "
                          f"(residuals {certificate}); the problem may be infeasible or badly scaled.")
    return finish(problem, cols, x, iterations=it, seconds=time.perf_counter() - start, status=status,
                  certificate=certificate)

