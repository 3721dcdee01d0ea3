"""Single-cell RNA-seq: the scanpy / rapids-singlecell workflow, annotation that earns its names, simulation with a
known answer, and the integration metrics of the field.

* :mod:`~sparkbooks.singlecell.inputs` — the bundled sample or your own ``.h5ad``, as raw counts with gene symbols;
* :mod:`~sparkbooks.singlecell.workflow` — QC (fixed or MAD), doublets, normalise, HVG, PCA, Harmony,
  neighbours, UMAP, Leiden, markers — timed per step with the library that ran it;
* :mod:`~sparkbooks.singlecell.annotation` — marker-based names with an enforced expression check, reference
  label transfer, a Leiden resolution sweep;
* :mod:`~sparkbooks.singlecell.simulation` — negative-binomial cells with global or cell-type-specific batch effects
  and related subtypes (:mod:`~sparkbooks.singlecell.sampling` draws them at a cost that follows the non-zeros);
* :mod:`~sparkbooks.singlecell.integration` — iLISI / cLISI, batch and cell-type ASW, per-batch centring;
* :mod:`~sparkbooks.singlecell.official` — NVIDIA's notebook step list on scanpy, timed beside their GPU seconds
  (:mod:`~sparkbooks.singlecell.inplace`: its regress-out and PCA without whole-matrix copies);
  :mod:`~sparkbooks.singlecell.measured` reads its 216,382-cell run from the benchmark's committed JSON;
* :mod:`~sparkbooks.singlecell.de` — donor pseudobulk differential expression with PyDESeq2 against per-cell
  Wilcoxon and a log-CPM t-test, scored on simulated donors whose truth is known, with mock null comparisons;
  :mod:`~sparkbooks.singlecell.moderated` — limma-voom on the same donor sums, ported.
"""

from __future__ import annotations

from .annotation import (
    KNOWN_CONFUSIONS,
    LINEAGE,
    MARKERS,
    annotate,
    best_guess,
    earned,
    marker_panel,
    naming_sensitivity,
    reference_agreement,
    reference_check,
    reference_labels,
    reference_table,
    resolution_sweep,
    subcluster,
)
from . import de, measured, moderated, official
from .integration import (
    bras,
    centre_batches,
    compare,
    graph_connectivity,
    isolated_labels,
    lisi,
    silhouette_batch,
    silhouette_label,
    subtype_purity,
)
from .simulation import simulate
from .workflow import (
    Analysis,
    QCThresholds,
    analyse,
    backend,
    load_h5ad,
    load_sample,
    plot_qc,
    plot_scaling,
    qc_thresholds,
    scaling,
    warm_up,
)

__all__ = [
    "Analysis", "KNOWN_CONFUSIONS", "LINEAGE", "MARKERS", "QCThresholds", "analyse", "annotate", "backend",
    "best_guess", "bras", "centre_batches", "compare", "earned", "graph_connectivity", "isolated_labels", "lisi",
    "load_h5ad", "load_sample", "marker_panel", "naming_sensitivity", "plot_qc", "plot_scaling", "qc_thresholds",
    "reference_agreement", "reference_check", "reference_labels", "reference_table", "resolution_sweep", "scaling",
    "silhouette_batch", "silhouette_label", "simulate", "subcluster", "subtype_purity", "warm_up",
]
