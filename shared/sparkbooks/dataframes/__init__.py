"""Dataframes: the start-here workloads — pandas and scikit-learn, the same code under cudf.pandas and cuml.accel.

:mod:`.data` the retail data set · :mod:`.etl` the pandas stages · :mod:`.estimators` the scikit-learn suite ·
:mod:`.measure` timings and GPU/CPU call counts · :mod:`.tolerances` how far GPU checks may differ ·
:mod:`.child` a fresh process per run · :mod:`.comparison` CPU against GPU, and the figure · :mod:`.workloads` all
of it in one import · :mod:`.bandwidth` the machine measured (STREAM triad, a one-operation hello GPU).
"""

from __future__ import annotations

from ..lazy import attach
from .workloads import (
    CHILD_ACCEL_VARIABLES,
    REQUIRED_ACCELERATORS,
    SUMMARY_AGGREGATIONS,
    TOLERANCES,
    WORKLOADS,
    Comparison,
    Tolerance,
    accelerated_here,
    compare,
    compare_tables,
    make_sales,
    pandas_etl,
    plot_comparisons,
    run_isolated,
    sklearn_estimators,
    sklearn_suite,
    write_sales,
)

SUBMODULES = ("bandwidth", "child", "comparison", "data", "estimators", "etl", "measure", "tolerances", "workloads")
__all__ = sorted({*SUBMODULES,
                  *(n for n in dir() if not n.startswith("_") and n not in ("annotations", "attach", "SUBMODULES"))})
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
