"""Finance: Mean-CVaR portfolios (the portfolio-cvar playbook).

- :mod:`.cvar` — the Mean-CVaR problem and its structure-exploiting interior-point method; HiGHS and cuOpt paths;
- :mod:`.portfolio` — prices, scenarios (KDE, filtered historical), tail checks, frontier;
- :mod:`.backtest` — walk-forward backtest net of costs, Sharpe and VaR tests;
- :mod:`.nvidia` — NVIDIA's portfolio-optimization problem exactly as its playbook sets it up;
- :mod:`.cardinality` — at most k assets in that problem (NVIDIA's MILP model), with a certified gap.
"""

from ..lazy import attach

SUBMODULES = ("backtest", "cardinality", "cvar", "nvidia", "portfolio")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
