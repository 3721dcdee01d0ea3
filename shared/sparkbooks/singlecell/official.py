"""NVIDIA's single-cell step list, on the CPU, timed step by step — to set beside their GPU figures.

The DGX Spark playbook's notebook (``nvidia/single-cell/assets/scRNA_analysis_preprocessing.ipynb``)
runs rapids-singlecell on 216,382 cells × 28,133 genes: QC metrics (MT and RIBO families), cells
with < 5,000 genes and < 20 % mitochondrial counts, genes in ≥ 3 cells, normalise to 10⁴ + log1p,
5,000 highly variable genes (``cell_ranger``), ``raw`` kept, regress-out of total counts and
mitochondrial share, scaling clipped at 10, PCA with 100 components, neighbours (15, on 40 PCs),
UMAP, Louvain and Leiden at 0.6, Harmony on the batch, neighbours/UMAP/Louvain/Leiden again on
Harmony's PCs, t-SNE (perplexity 30, early exaggeration 12, learning rate 200, on 40 of Harmony's
PCs), logistic-regression marker genes per cell type on the scaled HVGs, and a diffusion map.

:func:`run` does that list with scanpy's CPU functions, the same parameters, one timed step per
notebook cell. Where scanpy has no CPU twin the nearest standard tool runs, named in
``result.backends``: Louvain through igraph's multilevel (:func:`louvain`: scanpy's
``flavor="igraph"`` ignores the resolution, and the ``louvain`` package is not installed), t-SNE through openTSNE (FFT-accelerated, 250 exaggerated + 750 plain
iterations — cuML's 1,000) — scikit-learn's Barnes–Hut takes tens of minutes at this size.
Regress-out and PCA run scanpy's arithmetic through :func:`regress_out` and :func:`pca`, which skip
two whole-matrix copies scanpy makes (16.1 GiB peak at NVIDIA's size with scanpy's calls).
``fast=True`` shortens only the two steps that draw pictures (:data:`FAST`): clusters, markers and the
diffusion map do not depend on them (the benchmark reports the clusters' ARI both ways); never the
playbook's default.

NVIDIA's own per-cell wall times (their notebook's recorded outputs, their GPU) are
:data:`NVIDIA_SECONDS`; their README's total is :data:`NVIDIA_TOTAL_S`.
"""

from __future__ import annotations

import gc
import random
import resource
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import InputError, require
from ..timing import Stopwatch
from .inplace import pca, regress_out
from .workflow import harmony

__all__ = ["EMBEDDINGS", "FAST", "HARMONY_CELL", "LEIDEN_MAX_ITERATIONS", "LEIDEN_TOL", "NVIDIA_CELLS", "NVIDIA_GENES", "NVIDIA_SECONDS", "NVIDIA_TOTAL_S",
           "OfficialRun", "SHAPE_BOUND", "leiden_converged", "like_nvidia", "louvain", "passing_qc", "pca", "regress_out", "run"]

#: Wall times printed by NVIDIA's notebook on its GPU (rapids-singlecell, 216,382 cells), per step of :func:`run`.
#: Their second neighbours/UMAP/Louvain/Leiden cell (7.84 s) is one timing for four steps: it sits on ``neighbors_harmony``.
NVIDIA_SECONDS: dict[str, float] = {
    "qc_metrics": 0.556, "filter_cells": 0.539, "filter_genes": 2.88, "normalize_log1p": 0.0311, "hvg": 0.350,
    "raw_and_hvg_subset": 0.925, "regress_out": 1.6, "scale": 1.71, "pca": 4.19, "neighbors": 3.14, "umap": 1.95,
    "louvain": 2.81, "leiden": 2.16, "harmony": 8.85, "neighbors_harmony": 7.84, "tsne": 11.5, "logreg_markers": 49.3,
    "diffmap": 3.35,
}
#: The four steps of NVIDIA's one timed cell on Harmony's PCs (7.84 s, filed under ``neighbors_harmony``).
HARMONY_CELL = ("neighbors_harmony", "umap_harmony", "louvain_harmony", "leiden_harmony")


def like_nvidia(seconds: dict[str, float]) -> dict[str, float]:
    """Seconds per step as NVIDIA timed them: ``neighbors_harmony`` carries the sum of :data:`HARMONY_CELL`, so its
    ratio compares four steps with their four (one step against their four read 3.6×, not ≈ 27×: review 43, round 3)."""
    return {**seconds, **({HARMONY_CELL[0]: float(sum(seconds.get(s, 0.0) for s in HARMONY_CELL))}
                          if HARMONY_CELL[0] in seconds else {})}


#: Their README: "~130 seconds recorded in demo" for the whole notebook (loading and plots included).
NVIDIA_TOTAL_S = 130.0
#: Their data set after QC: the shape every step after filtering works on.
NVIDIA_CELLS, NVIDIA_GENES = 216_382, 28_133
#: Steps whose cost is set by the matrix shape (comparable on simulated cells of the same shape) versus steps whose
#: cost depends on the data's structure (iterations to converge, cluster and type counts: not comparable).
SHAPE_BOUND = {"qc_metrics", "filter_cells", "filter_genes", "normalize_log1p", "hvg", "raw_and_hvg_subset",
               "regress_out", "scale", "pca", "neighbors", "neighbors_harmony", "umap", "umap_harmony", "tsne"}
#: Steps that only draw a picture (nothing downstream reads them): the issue's budget is for every other step.
EMBEDDINGS = {"umap", "umap_harmony", "tsne"}
#: Leiden's cap when run to convergence (rapids-singlecell's default n_iterations).
LEIDEN_MAX_ITERATIONS = 100
#: Converged: an iteration's gain below this share of the partition's quality.
LEIDEN_TOL = 1e-4
#: What ``fast=True`` changes: pictures only — nothing downstream reads an embedding.
FAST: dict[str, str] = {
    "umap": "100 optimisation epochs instead of 200 for both UMAPs (a less settled picture)",
    "tsne": "250 + 250 openTSNE iterations instead of 250 + 750 (a less settled picture)",
}
_HARMONY_PCS = 40  # the notebook's n_pcs for neighbours and t-SNE


@dataclass
class OfficialRun:
    """The analysed cells, seconds and the library behind every step, and peak memory (MB) after each step."""

    adata: Any
    seconds: dict[str, float] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    iterations: dict[str, Any] = field(default_factory=dict)
    fast: bool = False

    @property
    def total_s(self) -> float:
        """All timed steps together."""
        return float(sum(self.seconds.values()))

    @property
    def non_embedding_s(self) -> float:
        """Every step but the pictures (:data:`EMBEDDINGS`: the UMAPs and t-SNE)."""
        return float(sum(v for k, v in self.seconds.items() if k not in EMBEDDINGS))

    def table(self):
        """Per step: seconds here, NVIDIA's GPU seconds (theirs), the ratio — only when this run had their
        216,382 cells after QC, else blank —, whether the step is shape-bound (comparable) or depends on the
        data's structure, iterations where the step iterates, the library, and the step's own peak memory (MB)."""
        import pandas as pd  # noqa: PLC0415

        table = pd.DataFrame({"seconds": self.seconds, "nvidia_gpu_s": pd.Series(NVIDIA_SECONDS),
                              "backend": pd.Series(self.backends, dtype=object), "peak_mb": pd.Series(self.peak_mb),
                              "iterations": pd.Series(self.iterations, dtype=object)})
        table = table.loc[list(self.seconds)]
        same_size = self.adata is not None and self.adata.n_obs == NVIDIA_CELLS
        table["ratio"] = pd.Series(like_nvidia(self.seconds)) / table["nvidia_gpu_s"] if same_size else np.nan
        table["comparable"] = ["shape-bound" if s in SHAPE_BOUND else "data-dependent" for s in table.index]
        table.loc["total", ["seconds", "nvidia_gpu_s"]] = [self.total_s, sum(NVIDIA_SECONDS.values())]
        return table.round({"seconds": 2, "ratio": 1, "peak_mb": 0}).rename_axis("step")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0: ``5`` in ``/proc/self/clear_refs``) so each step's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: the peak stays cumulative (ru_maxrss)


def _peak_mb() -> float:
    """Peak resident memory since the last :func:`_reset_peak` (VmHWM), in MB; the process peak elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


def passing_qc(adata, n_pass: int = NVIDIA_CELLS):
    """The first cells of ``adata`` (raw counts) up to and including the ``n_pass``-th that passes NVIDIA's QC
    (< 5,000 genes, < 20 % mitochondrial counts), so :func:`run` filters to exactly ``n_pass`` cells.

    Raises
    ------
    InputError
        Fewer than ``n_pass`` cells pass: simulate more.
    """
    import scipy.sparse as sp  # noqa: PLC0415

    X = sp.csr_matrix(adata.X)
    genes = np.diff(X.indptr)
    mt = np.asarray(X[:, np.flatnonzero(adata.var_names.str.upper().str.startswith("MT"))].sum(axis=1)).ravel()
    total = np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1)
    passes = np.flatnonzero((genes < 5000) & (100 * mt / total < 20))
    if len(passes) < n_pass:
        raise InputError(f"Only {len(passes):,} of {adata.n_obs:,} cells pass NVIDIA's QC; {n_pass:,} are needed: "
                         f"simulate about {int(np.ceil(n_pass * adata.n_obs / max(len(passes), 1) * 1.02)):,} cells.")
    return adata[: passes[n_pass - 1] + 1].copy()


def leiden_converged(adata, graph: str, *, key_added: str, resolution: float, seed: int = 0,
                     max_iterations: int = LEIDEN_MAX_ITERATIONS, tol: float = LEIDEN_TOL) -> int:
    """Leiden (leidenalg, modularity with ``resolution``) iterated until an iteration improves the quality by less
    than ``tol`` of it (converged), at most ``max_iterations``; into ``obs[key_added]``. Returns the iterations run.
    ``tol=0`` waits for an iteration with no gain at all: at 216k cells leidenalg kept finding gains of a few parts
    per million for more than 15 minutes."""
    import igraph as ig  # noqa: PLC0415
    import leidenalg  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    upper = sp.triu(adata.obsp[adata.uns[graph]["connectivities_key"]], k=1).tocoo()
    g = ig.Graph(n=adata.n_obs, edges=np.column_stack([upper.row, upper.col]), directed=False)
    partition = leidenalg.RBConfigurationVertexPartition(g, weights=upper.data, resolution_parameter=resolution)
    optimiser = leidenalg.Optimiser()
    optimiser.set_rng_seed(seed)
    done = 0
    while done < max_iterations:
        done += 1
        if optimiser.optimise_partition(partition, n_iterations=1) <= tol * abs(partition.quality()):
            break
    adata.obs[key_added] = pd.Categorical(np.asarray(partition.membership).astype(str))
    return done


def run(adata, *, batch_key: str, label_key: str, fast: bool = False, seed: int = 0,
        on_step: Callable[[str, float, float], None] | None = None) -> OfficialRun:
    """NVIDIA's step list on raw counts in ``adata`` (modified; the filtered result is ``result.adata``).

    Memory: pass the only reference to ``adata`` (``run(read_h5ad(path), …)``) and the unfiltered counts are
    freed when filtering copies them. Regress-out and PCA are scanpy's arithmetic without its whole-matrix
    copies (:func:`regress_out`, :func:`pca`; each checked against scanpy in the tests): with scanpy's own
    calls the peak at 216k cells × 28k genes was 16.1 GiB (a float64 copy in regress-out, scikit-learn's
    copy in PCA).

    ``on_step(name, seconds, peak_mb)`` is called after each step (the benchmark prints progress with it).

    ``batch_key`` is what Harmony corrects (their ``assay``); ``label_key`` the cell types the
    logistic-regression markers rank genes for (their ``cell_type``).

    Raises
    ------
    InputError
        ``batch_key`` or ``label_key`` is not a column of ``adata.obs``, or fewer than 2 batches.
    """
    require("scanpy", extra="singlecell")
    require("openTSNE", extra="singlecell")
    import scanpy as sc  # noqa: PLC0415
    from openTSNE import TSNE  # noqa: PLC0415

    for key in (batch_key, label_key):
        if key not in adata.obs:
            raise InputError(f"{key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}).")
    if adata.obs[batch_key].nunique() < 2:
        raise InputError(f"Harmony needs at least 2 batches in {batch_key!r}; found {adata.obs[batch_key].nunique()}.")
    result = OfficialRun(None, fast=fast)  # holds the cells only at the end, so filtering can free the counts
    watch = Stopwatch()
    result.seconds, result.backends = watch.seconds, watch.backends
    scanpy = "scanpy (CPU)"

    def step(name: str, backend: str = scanpy):
        result.backends[name] = backend
        return watch.step(name)

    def done(name: str) -> None:
        result.peak_mb[name] = _peak_mb()
        _reset_peak()
        if on_step is not None:
            on_step(name, result.seconds[name], result.peak_mb[name])

    _reset_peak()

    with step("qc_metrics"):
        upper = adata.var_names.str.upper()
        adata.var["MT"], adata.var["RIBO"] = upper.str.startswith("MT"), upper.str.startswith("RPS")
        sc.pp.calculate_qc_metrics(adata, qc_vars=["MT", "RIBO"], percent_top=None, log1p=False, inplace=True)
    done("qc_metrics")
    with step("filter_cells"):
        keep = (adata.obs["n_genes_by_counts"].to_numpy() < 5000) & (adata.obs["pct_counts_MT"].to_numpy() < 20)
        if not keep.all():
            adata = adata[keep].copy()
            gc.collect()  # anndata's reference cycles would hold the unfiltered counts until the next collection
    done("filter_cells")
    with step("filter_genes"):
        sc.pp.filter_genes(adata, min_cells=3)
    done("filter_genes")
    with step("normalize_log1p"):
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    done("normalize_log1p")
    with step("hvg"):
        sc.pp.highly_variable_genes(adata, n_top_genes=5000, flavor="cell_ranger")
    done("hvg")
    with step("raw_and_hvg_subset"):
        adata.raw = adata
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
        gc.collect()
    done("raw_and_hvg_subset")
    with step("regress_out", "scanpy's least squares in float32 blocks (sparkbooks)"):
        regress_out(adata, ["total_counts", "pct_counts_MT"])  # dense from here on, as on the GPU
    done("regress_out")
    with step("scale"):
        sc.pp.scale(adata, max_value=10)
    done("scale")
    with step("pca", "scikit-learn randomized SVD, centred in place (sparkbooks)"):
        pca(adata, 100, seed=seed)
    done("pca")
    epochs = {"maxiter": 100} if fast else {}
    views = (("", "X_pca"), ("_harmony", "X_pca_harmony"))
    for suffix, rep in views:
        if suffix:
            with step("harmony", "harmonypy (CPU)"):
                harmony(adata, batch_key, seed=seed, use_backend="scanpy")  # the workflow's call: obsm[rep]
            done("harmony")
        key = suffix.lstrip("_") or None  # the first graph is scanpy's default "neighbors"
        graph = key or "neighbors"
        with step(f"neighbors{suffix}"):
            sc.pp.neighbors(adata, n_neighbors=15, n_pcs=_HARMONY_PCS, use_rep=rep, key_added=key, random_state=seed)
        done(f"neighbors{suffix}")
        with step(f"umap{suffix}"):
            sc.tl.umap(adata, neighbors_key=graph, key_added=f"X_umap{suffix}", random_state=seed, **epochs)
        done(f"umap{suffix}")
        with step(f"louvain{suffix}", "igraph multilevel (CPU)"):
            louvain(adata, graph, key_added=f"louvain{suffix}", resolution=0.6, seed=seed)
        done(f"louvain{suffix}")
        with step(f"leiden{suffix}", "leidenalg, to convergence (CPU)"):
            result.iterations[f"leiden{suffix}"] = leiden_converged(adata, graph, key_added=f"leiden{suffix}",
                                                                    resolution=0.6, seed=seed)
        done(f"leiden{suffix}")
    with step("tsne", "openTSNE FFT (CPU)"):
        tsne = TSNE(perplexity=30, early_exaggeration=12, learning_rate=200, n_iter=250 if fast else 750,
                    early_exaggeration_iter=250, negative_gradient_method="fft", n_jobs=-1, random_state=seed)
        adata.obsm["X_tsne"] = np.asarray(tsne.fit(np.ascontiguousarray(adata.obsm["X_pca_harmony"][:, :_HARMONY_PCS])))
    done("tsne")
    with step("logreg_markers", "scikit-learn logistic regression (CPU)"):
        import warnings  # noqa: PLC0415

        from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415

        with warnings.catch_warnings(record=True) as caught, _counting_logreg() as fits:  # cuML's max_iter
            warnings.simplefilter("always", ConvergenceWarning)
            sc.tl.rank_genes_groups(adata, label_key, method="logreg", use_raw=False, max_iter=1000)
        unconverged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        used = max((int(np.max(n)) for n in fits), default=0)
        result.iterations["logreg_markers"] = f"{used} of max 1,000: " + ("not converged" if unconverged else "converged")
    done("logreg_markers")
    with step("diffmap"):
        sc.tl.diffmap(adata, neighbors_key="harmony")
        adata.obsm["X_diffmap"] = adata.obsm["X_diffmap"][:, 1:]  # as the notebook: the first component is constant
    done("diffmap")
    result.adata = adata
    return result


@contextmanager
def _counting_logreg():
    """scanpy's logreg builds ``sklearn.linear_model.LogisticRegression`` inside the call: swap in a subclass that
    keeps each fit's ``n_iter_`` (the iterations lbfgs ran), so the table shows how far it went, not only the cap."""
    import sklearn.linear_model as linear  # noqa: PLC0415

    fits: list[np.ndarray] = []
    original = linear.LogisticRegression

    class Counting(original):
        def fit(self, *args, **kwargs):
            out = super().fit(*args, **kwargs)
            fits.append(np.atleast_1d(self.n_iter_))
            return out

    linear.LogisticRegression = Counting
    try:
        yield fits
    finally:
        linear.LogisticRegression = original


def louvain(adata, graph: str, *, key_added: str, resolution: float, seed: int = 0) -> None:
    """Louvain (igraph's ``community_multilevel``) at ``resolution`` on the connectivities of neighbours ``graph``,
    into ``obs[key_added]`` — what ``rsc.tl.louvain(resolution=…)`` does; scanpy's igraph flavour drops the resolution."""
    import igraph as ig  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    upper = sp.triu(adata.obsp[adata.uns[graph]["connectivities_key"]], k=1).tocoo()  # each undirected edge once
    g = ig.Graph(n=adata.n_obs, edges=np.column_stack([upper.row, upper.col]), directed=False)
    ig.set_random_number_generator(random.Random(seed))  # igraph draws its node order from this
    try:
        parts = g.community_multilevel(weights=upper.data, resolution=resolution).membership
    finally:
        ig.set_random_number_generator(random)  # igraph's default: the random module
    adata.obs[key_added] = pd.Categorical(np.asarray(parts).astype(str))
