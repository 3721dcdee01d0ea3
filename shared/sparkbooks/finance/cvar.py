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

One import for the programme and its solvers: :mod:`.problem` (the data, the variables, the LP form),
:mod:`.ipm` (the interior-point method), :mod:`.solvers` (HiGHS, cuOpt, and the certificate).
"""

from __future__ import annotations

from .ipm import solve
from .problem import CVaRProblem, CVaRSolution, TailRisk, cvar
from .solvers import CUOPT_EXACT, solve_cuopt, solve_highs

__all__ = ["CUOPT_EXACT", "CVaRProblem", "CVaRSolution", "TailRisk", "cvar", "solve", "solve_cuopt", "solve_highs"]
