"""The start-here workloads — pandas and scikit-learn, the same code under cudf.pandas and cuml.accel — in one import.

Split by job: :mod:`.data` (the retail data set), :mod:`.etl` (the pandas stages), :mod:`.estimators` (the
scikit-learn suite), :mod:`.measure` (cold and warm timings, GPU and CPU call counts), :mod:`.tolerances` (how far
the GPU's checks may differ), :mod:`.child` (a fresh process per run: ``python -m sparkbooks.dataframes``),
:mod:`.comparison` (CPU against GPU on the same data, and the figure).
"""

from __future__ import annotations

from .child import CHILD_ACCEL_VARIABLES, REQUIRED_ACCELERATORS, WORKLOADS, main, run_isolated
from .comparison import Comparison, compare, compare_tables, plot_comparisons
from .data import make_sales, write_sales
from .estimators import sklearn_estimators, sklearn_suite
from .etl import SUMMARY_AGGREGATIONS, pandas_etl
from .measure import accelerated_here
from .tolerances import TOLERANCES, Tolerance

__all__ = [
    "CHILD_ACCEL_VARIABLES",
    "Comparison",
    "REQUIRED_ACCELERATORS",
    "SUMMARY_AGGREGATIONS",
    "TOLERANCES",
    "Tolerance",
    "WORKLOADS",
    "accelerated_here",
    "compare",
    "compare_tables",
    "main",
    "make_sales",
    "pandas_etl",
    "plot_comparisons",
    "run_isolated",
    "sklearn_estimators",
    "sklearn_suite",
    "write_sales",
]
