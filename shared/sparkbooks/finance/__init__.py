"""Finance: Mean-CVaR portfolios (the portfolio-cvar playbook).

- :mod:`.cvar` — the Mean-CVaR programme and its solvers, one import: :mod:`.problem` (data, variables, LP form),
  :mod:`.ipm` (the structure-exploiting interior-point method), :mod:`.solvers` (HiGHS, cuOpt, the certificate);
- :mod:`.market_data` — prices and the S&P 500, Fama-French's market and T-bill rate, a simulated universe;
- :mod:`.portfolio` — scenarios (KDE, filtered historical), tail checks, frontier, the solver choice;
- :mod:`.backtest` — walk-forward backtest net of costs and its performance table;
- :mod:`.significance` — Sharpe-difference tests over a risk-free rate, VaR and ES backtests;
- :mod:`.nvidia` — NVIDIA's portfolio-optimization problem exactly as its playbook sets it up;
- :mod:`.cardinality` — at most k assets in that problem (NVIDIA's MILP, floors kept): branch-and-bound with a proven gap.
"""

from ..lazy import attach

SUBMODULES = ("backtest", "cardinality", "cvar", "ipm", "market_data", "nvidia", "portfolio", "problem", "significance",
              "solvers")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
