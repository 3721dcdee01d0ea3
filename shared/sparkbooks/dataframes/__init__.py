"""Dataframes: the start-here workloads — pandas and scikit-learn, the same code under cudf.pandas and cuml.accel (:mod:`.workloads`)."""

from __future__ import annotations

from ..lazy import attach
from .workloads import (
    CHILD_ACCEL_VARIABLES,
    Comparison,
    REQUIRED_ACCELERATORS,
    TOLERANCES,
    Tolerance,
    WORKLOADS,
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

SUBMODULES = ('workloads',)
__all__ = sorted([*SUBMODULES, *(n for n in dir() if not n.startswith('_') and n not in ('annotations', 'attach'))])
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
