"""Mean-CVaR linear programmes, solved by an interior-point method built for their structure.

The Rockafellar–Uryasev programme for ``S`` scenarios and ``n`` assets,

    minimise   −γ·μᵀw + α + 1/((1−β)S) · Σₛ uₛ
    subject to uₛ ≥ −rₛᵀw − α,  uₛ ≥ 0            (losses beyond the VaR level α)
               Σw + c = budget,  lo ≤ w ≤ hi,  c_lo ≤ c ≤ c_hi (optional cash),
               μᵀw ≥ target (optional),  Σ|w| ≤ leverage (optional, cash excluded)

has ``n + 1 + S`` variables and ``2S`` dense rows. NVIDIA's portfolio playbook minimises
``λ·CVaR − μᵀw``: the same programme with ``γ = 1/λ``, its objective ``λ`` times ours.

Shorting splits a weight into a long and a short part, ``w = w⁺ − w⁻``, with
``w⁺ ∈ [max(lo, 0), max(hi, 0)]`` and ``w⁻ ∈ [max(−hi, 0), max(−lo, 0)]`` — so a positive
lower bound stays binding on ``w⁺`` — and only assets that may go short get a ``w⁻``.

A general LP solver factorises the whole system. Here each Newton step eliminates the ``S``
scenario variables in closed form (they enter one row each), leaving one dense system in the
``m + 1`` other variables whose scenario part ``R̃ᵀ D R̃`` comes from a single symmetric BLAS
product ``rᵀ D r`` over the *original* ``n`` columns (the long/short split and cash only
permute and sign it) — ``O(S n²)`` per iteration. Mehrotra's predictor–corrector reuses it
for both steps. The answer is certified before it is reported: primal and dual residuals and
the duality gap, and the weights checked against the **original** bounds, budget, cash,
leverage and return floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import InfeasibleError, InputError, MissingDependencyError, SolverError

__all__ = ["CUOPT_EXACT", "CVaRProblem", "CVaRSolution", "TailRisk", "cvar", "solve", "solve_cuopt", "solve_highs"]


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
class _Columns:
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


def _columns(problem: CVaRProblem) -> _Columns:
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
    return _Columns(asset, sign, x_lo, x_hi, x_mean, (budget_row, budget), ineq, cash, base, cost)


def _start(problem: CVaRProblem, cols: _Columns) -> np.ndarray:
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


def _certify(problem: CVaRProblem, weights: np.ndarray, cash: float) -> float:
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


def solve(problem: CVaRProblem, *, tol: float = 1e-8, max_iter: int = 120, max_correctors: int = 3,
          verbose: bool = False) -> CVaRSolution:
    """The optimal Mean-CVaR portfolio by a structure-exploiting primal–dual interior-point method.

    ``tol`` bounds the relative primal and dual residuals and duality gap. The weights are checked
    against the original constraints before they are returned (``certificate["violation"]``).

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
    cols = _columns(problem)
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
    return _finish(problem, cols, x, it, time.perf_counter() - start, status, certificate)


def _finish(problem: CVaRProblem, cols: _Columns, x: np.ndarray, iterations: int, seconds: float, status: str,
            certificate: dict[str, float]) -> CVaRSolution:
    """Weights from the solver's variables, checked against the original constraints, with exact VaR/CVaR."""
    weights = cols.weights(x, problem.n_assets)
    cash = float(x[cols.cash]) if cols.cash is not None else 0.0
    violation = _certify(problem, weights, cash)
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


def _lp(problem: CVaRProblem) -> dict:
    """The programme as one sparse LP over (x, α, u): ``min cᵀv`` s.t. ``A_ub v ≤ b_ub``, ``A_eq v = b_eq``, bounds."""
    import scipy.sparse as sp  # noqa: PLC0415

    cols = _columns(problem)
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


def solve_highs(problem: CVaRProblem) -> CVaRSolution:
    """The same programme through HiGHS (scipy's ``linprog``): a reference the tests compare against."""
    from scipy.optimize import linprog  # noqa: PLC0415

    start = time.perf_counter()
    lp = _lp(problem)
    res = linprog(lp["c"], A_ub=lp["a_ub"], b_ub=lp["b_ub"], A_eq=lp["a_eq"], b_eq=lp["b_eq"],
                  bounds=np.column_stack([lp["lower"], lp["upper"]]), method="highs")
    if res.status != 0:
        raise (InfeasibleError if res.status == 2 else SolverError)(f"HiGHS: {res.message}")
    return _finish(problem, lp["cols"], res.x[:lp["m"]], int(res.nit), time.perf_counter() - start, "optimal",
                   {"lp_objective": float(res.fun)})


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
    certificate = {"primal_residual": float(stats.get("primal_residual", np.nan)),
                   "dual_residual": float(stats.get("dual_residual", np.nan)), "gap": float(stats.get("gap", np.nan)),
                   "solved_by": str(solution.get_solved_by()), "solver_seconds": float(solution.get_solve_time())}
    return _finish(problem, lp["cols"], values[:lp["m"]], int(stats.get("nb_iterations", 0)), time.perf_counter() - start,
                   "optimal", certificate)
