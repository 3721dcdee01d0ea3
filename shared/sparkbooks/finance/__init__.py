"""Finance: Mean-CVaR portfolios (the portfolio-cvar playbook).

- :mod:`.cvar` — the Mean-CVaR programme and its solvers, one import: :mod:`.problem` (data, variables, LP form),
  :mod:`.ipm` (the structure-exploiting interior-point method), :mod:`.solvers` (HiGHS, cuOpt, the certificate);
- :mod:`.portfolio` — prices, scenarios (KDE, filtered historical), tail checks, frontier;
- :mod:`.backtest` — walk-forward backtest net of costs, Sharpe tests over a risk-free rate, VaR and ES backtests;
- :mod:`.nvidia` — NVIDIA's portfolio-optimization problem exactly as its playbook sets it up;
- :mod:`.cardinality` — at most k assets in that problem (NVIDIA's MILP, floors kept): branch-and-bound with a proven gap.
"""

from ..lazy import attach

SUBMODULES = ("backtest", "cardinality", "cvar", "ipm", "nvidia", "portfolio", "problem", "solvers")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
