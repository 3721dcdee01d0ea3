"""The single-cell workflow, written once against the scanpy API; rapids-singlecell runs it on a GPU.

:func:`backend` picks ``rapids_singlecell`` when it is installed and the GPU probe passes, scanpy
otherwise. :func:`analyse` runs QC → filtering (fixed or MAD thresholds, optional doublet removal)
→ normalisation → HVG (batch-aware) → optional regress-out → scaling → PCA → (Harmony) →
neighbours → UMAP → Leiden → marker genes, timing every step with the library that ran it.
:func:`warm_up` runs it once on a few hundred cells so numba's one-off compilation is timed
apart from the analysis.

Defaults follow current best practice (the single-cell best-practices book, today's scanpy
tutorial): **no regress-out** — it mixes cell types whose depth differs (here myeloid cells carry
5–10× the UMIs of lymphocytes), and NVIDIA's own notebook warns it "may overcorrect".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import devices
from ..exceptions import InputError, require
from ..timing import Stopwatch
from .inputs import load_h5ad, load_sample
from .simulation import simulate

__all__ = ["Analysis", "LEIDEN_ITERATIONS", "QCThresholds", "analyse", "backend", "harmony", "leiden", "leiden_options",
           "load_h5ad", "load_sample", "plot_qc", "plot_scaling", "qc_thresholds", "scaling", "warm_up"]



#: Leiden's iterations on the CPU. The resolution sweep, the clustering, sub-clustering and the integration
#: benchmark all call :func:`leiden`, so the sweep that picks the resolution describes the clustering that uses it.
LEIDEN_ITERATIONS = 2


def leiden_options(use_backend: str) -> dict:
    """The iteration setting :func:`leiden` passes to ``use_backend``'s Leiden, in that library's own meaning.

    igraph's ``n_iterations`` repeats the whole algorithm (move, refine, aggregate until no change) that many
    times. rapids-singlecell 0.18 hands its ``n_iterations`` to cuGraph's ``leiden(max_iter=…)``, which cuGraph
    defines as the maximum number of *levels* of the hierarchy: passing 2 there would cut one run short after two
    aggregations, a different algorithm. So the GPU gets no setting: rapids-singlecell's default (100 levels) lets
    cuGraph finish the hierarchy, which is what one igraph iteration does.
    """
    if use_backend == "rapids_singlecell":
        return {}
    return {"n_iterations": LEIDEN_ITERATIONS}


def leiden(adata, *, resolution: float, seed: int = 0, key_added: str = "leiden", restrict_to=None,
           neighbors_key: str | None = None, use_backend: str | None = None) -> str:
    """Leiden clustering into ``obs[key_added]`` on ``use_backend`` (default :func:`backend`); returns who ran it.

    rapids-singlecell runs cuGraph's Leiden on the GPU (its full hierarchy), scanpy igraph's on the CPU
    (:data:`LEIDEN_ITERATIONS` iterations), both with ``seed``: :func:`leiden_options` maps the setting.
    """
    name = use_backend or backend()
    if name == "rapids_singlecell":
        import rapids_singlecell as rsc  # noqa: PLC0415

        rsc.tl.leiden(adata, resolution=resolution, rng=seed, key_added=key_added, restrict_to=restrict_to,
                      neighbors_key=neighbors_key, **leiden_options(name))
        return "cuGraph Leiden (GPU)"
    import scanpy as sc  # noqa: PLC0415

    sc.tl.leiden(adata, resolution=resolution, flavor="igraph", random_state=seed, key_added=key_added,
                 restrict_to=restrict_to, neighbors_key=neighbors_key, **leiden_options(name))
    return "leidenalg/igraph (CPU)"


def backend() -> str:
    """``"rapids_singlecell"`` when the device policy runs it (installed, cuDF works, not ``SPARKBOOKS_ACCELERATOR=cpu``), else ``"scanpy"``."""
    return "rapids_singlecell" if devices.use_gpu("rapids_singlecell") else "scanpy"


@dataclass(frozen=True)
class QCThresholds:
    """Which cells pass QC: gene-count range and the mitochondrial share, with how they were set."""

    min_genes: float
    max_genes: float
    max_pct_mt: float
    method: str

    def passes(self, obs) -> np.ndarray:
        """Which cells of ``obs`` (scanpy QC metrics) pass: genes in [min, max] and mitochondrial share below the limit."""
        genes, mt = obs["n_genes_by_counts"].to_numpy(), obs["pct_counts_mt"].to_numpy()
        return (genes >= self.min_genes) & (genes <= self.max_genes) & (mt < self.max_pct_mt)


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def qc_thresholds(adata, *, method: str = "fixed", min_genes: int = 200, max_genes: int | None = None,
                  max_pct_mt: float = 20.0, n_mads: float = 5.0, mt_mads: float = 3.0) -> QCThresholds:
    """QC limits: ``fixed`` (the given numbers), or ``mad`` — cells whose log gene count lies more than ``n_mads``
    median absolute deviations from the median, or whose mitochondrial share exceeds the median + ``mt_mads`` MADs,
    fail (the single-cell best-practices book's rule). ``adata`` is an AnnData or its ``obs``, with scanpy's QC
    metrics (:func:`analyse` keeps them for every cell in ``result.before_qc``).
    """
    obs = getattr(adata, "obs", adata)
    if method == "fixed":
        return QCThresholds(min_genes, max_genes if max_genes is not None else np.inf, max_pct_mt, "fixed")
    if method != "mad":
        raise InputError(f"QC method must be 'fixed' or 'mad'. Got {method!r} instead.")
    genes = np.log1p(obs["n_genes_by_counts"].to_numpy())
    mt = obs["pct_counts_mt"].to_numpy()
    centre, spread = np.median(genes), _mad(genes)
    return QCThresholds(float(np.expm1(centre - n_mads * spread)), float(np.expm1(centre + n_mads * spread)),
                        float(np.median(mt) + mt_mads * _mad(mt)), f"mad ({n_mads:g} MADs, mito {mt_mads:g})")


def harmony(adata, batch_key: str, *, seed: int = 0, use_backend: str | None = None) -> np.ndarray:
    """Harmony on ``obsm["X_pca"]`` (rapids-singlecell on a GPU, harmonypy otherwise), into ``obsm["X_pca_harmony"]``."""
    if (use_backend or backend()) == "rapids_singlecell":
        import rapids_singlecell as rsc  # noqa: PLC0415

        # float32 as NVIDIA's notebook passes it (dtype=cp.float32): rapids-singlecell's default is float64, slow on a
        # GB10, whose FP64 rate is a small fraction of its FP32 one (review 43)
        rsc.pp.harmony_integrate(adata, batch_key, rng=seed, dtype=np.float32)
    else:
        import harmonypy  # noqa: PLC0415

        out = harmonypy.run_harmony(adata.obsm["X_pca"], adata.obs, [batch_key], random_state=seed, verbose=False)
        corrected = np.asarray(out.Z_corr)  # its orientation changed across versions: cells must come first
        adata.obsm["X_pca_harmony"] = corrected if corrected.shape[0] == adata.n_obs else corrected.T
    return np.asarray(adata.obsm["X_pca_harmony"])


@dataclass
class Analysis:
    """The analysed data, how long each step took, on what, and what QC removed."""

    adata: Any
    backend: str
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    thresholds: QCThresholds | None = None
    before_qc: Any = None  # obs of every cell with its QC metrics, and whether it passed

    def timings(self):
        """Seconds per step, the library that ran it, and a total row."""
        import pandas as pd  # noqa: PLC0415

        table = pd.DataFrame({"seconds": self.seconds, "backend": pd.Series(self.backends, dtype=object)}).rename_axis("step")
        table.loc["total", "seconds"] = table["seconds"].sum()
        return table.round({"seconds": 3})


def analyse(adata, *, qc: str = "fixed", min_genes: int = 200, max_genes: int | None = None, min_cells: int = 3,
            max_pct_mt: float = 20.0, doublets: bool = False, n_top_genes: int = 2000, n_pcs: int = 30,
            n_neighbors: int = 15, resolution: float = 0.8, batch_key: str | None = None, regress_out: bool = False,
            seed: int = 0, use_backend: str | None = None) -> Analysis:
    """Run the workflow on raw counts in ``adata`` (modified and returned in the result).

    ``qc`` picks fixed or MAD-based thresholds (:func:`qc_thresholds`); ``doublets`` runs Scrublet
    (per batch when ``batch_key`` is given) and drops predicted doublets; ``batch_key`` also makes
    highly-variable-gene selection batch-aware and corrects the PCA with Harmony; ``regress_out``
    (off by default, see the module note) regresses total counts and mitochondrial share out.

    Steps land in ``result.seconds`` and the library that ran each in ``result.backends``. On the
    GPU path every call goes to rapids-singlecell directly (the GPU contract tests bind each one to
    its real signature) and the clock is read only after the device has finished the step.
    """
    require("scanpy", extra="singlecell")
    import scanpy as sc  # noqa: PLC0415

    name = use_backend or backend()
    gpu = name == "rapids_singlecell"
    sync = None
    if gpu:
        import cupy as cp  # noqa: PLC0415
        import rapids_singlecell as rsc  # noqa: PLC0415

        sync = cp.cuda.runtime.deviceSynchronize
    result = Analysis(adata, name)
    watch = Stopwatch(sync=sync)
    result.seconds, result.backends = watch.seconds, watch.backends
    here = "rapids-singlecell (GPU)" if gpu else "scanpy (CPU)"
    batch = batch_key if batch_key is not None and adata.obs[batch_key].nunique() > 1 else None

    adata.var["mt"] = adata.var_names.str.upper().str.startswith("MT-")
    with watch.step("qc_metrics", backend="scanpy (CPU)"):  # on the host: cheap, and filtering needs it there
        sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
    limits = result.thresholds = qc_thresholds(adata, method=qc, min_genes=min_genes, max_genes=max_genes,
                                               max_pct_mt=max_pct_mt)
    adata.obs["qc_pass"] = limits.passes(adata.obs)
    result.before_qc = adata.obs.copy()
    with watch.step("filter", backend="scanpy (CPU)"):
        adata = result.adata = adata[adata.obs["qc_pass"].to_numpy()].copy()
        sc.pp.filter_genes(adata, min_cells=min_cells)
    if doublets:
        with watch.step("doublets", backend=here):
            if gpu:
                rsc.get.anndata_to_GPU(adata)
                rsc.pp.scrublet(adata, batch_key=batch, rng=seed)
                rsc.get.anndata_to_CPU(adata)
            else:
                sc.pp.scrublet(adata, batch_key=batch, random_state=seed)
            called = adata.obs["predicted_doublet"].to_numpy().astype(bool)
            adata = result.adata = adata[~called].copy()
    result.counts = {"cells_after_qc": adata.n_obs, "genes_after_qc": adata.n_vars,
                     "doublets": int(called.sum()) if doublets else 0}
    adata.layers["counts"] = adata.X.copy()
    if gpu:
        with watch.step("to_gpu", backend=here):
            rsc.get.anndata_to_GPU(adata)
    with watch.step("normalize_log1p", backend=here):
        if gpu:
            rsc.pp.normalize_total(adata, target_sum=1e4)
            rsc.pp.log1p(adata)
        else:
            sc.pp.normalize_total(adata, target_sum=1e4)
            sc.pp.log1p(adata)
    # the full log-normalised matrix, on the host, for markers and plots
    full = adata.copy()
    if gpu:
        rsc.get.anndata_to_CPU(full)
    adata.raw = full
    with watch.step("hvg", backend=here):
        if gpu:
            rsc.pp.highly_variable_genes(adata, n_top_genes=min(n_top_genes, adata.n_vars), flavor="seurat",
                                         batch_key=batch)
        else:
            sc.pp.highly_variable_genes(adata, n_top_genes=min(n_top_genes, adata.n_vars), flavor="seurat",
                                        batch_key=batch)
    adata = result.adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    if regress_out:
        with watch.step("regress_out", backend=here):
            if gpu:
                rsc.pp.regress_out(adata, ["total_counts", "pct_counts_mt"])
            else:
                sc.pp.regress_out(adata, ["total_counts", "pct_counts_mt"])
    if not gpu and hasattr(adata.X, "toarray"):
        adata.X = adata.X.toarray()  # scaling zero-centres, which densifies the HVG matrix anyway: say so
    n_pcs = min(n_pcs, adata.n_vars - 1, adata.n_obs - 1)
    with watch.step("scale", backend=here):
        if gpu:
            rsc.pp.scale(adata, max_value=10)
        else:
            sc.pp.scale(adata, max_value=10)
    with watch.step("pca", backend=here):
        if gpu:
            rsc.pp.pca(adata, n_comps=n_pcs, rng=seed)
        else:
            sc.pp.pca(adata, n_comps=n_pcs, random_state=seed)
    rep = "X_pca"
    if batch is not None:
        with watch.step("harmony", backend=here if gpu else "harmonypy (CPU)"):
            harmony(adata, batch, seed=seed, use_backend=name)
        rep = "X_pca_harmony"
    with watch.step("neighbors", backend=here):
        if gpu:
            rsc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep=rep, rng=seed)
        else:
            sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep=rep, random_state=seed)
    with watch.step("umap", backend=here):
        if gpu:
            rsc.tl.umap(adata, rng=seed)
        else:
            sc.tl.umap(adata, random_state=seed)
    with watch.step("leiden", backend="cuGraph Leiden (GPU)" if gpu else "leidenalg/igraph (CPU)"):
        leiden(adata, resolution=resolution, seed=seed, use_backend=name)
    # markers: the same Wilcoxon test on both paths, on the log-normalised raw matrix (all genes)
    if gpu:
        with watch.step("markers", backend="rapids-singlecell Wilcoxon (GPU)"):
            rsc.tl.rank_genes_groups(adata, "leiden", method="wilcoxon", use_raw=True)
        with watch.step("to_cpu", backend=here):
            rsc.get.anndata_to_CPU(adata)
    else:
        with watch.step("markers", backend="scanpy Wilcoxon (CPU)"):
            sc.tl.rank_genes_groups(adata, "leiden", method="wilcoxon", use_raw=True)
    return result


def warm_up(adata, *, cells: int = 300, seed: int = 0, **options: Any) -> float:
    """Run :func:`analyse` once on a ``cells``-cell subsample; returns its seconds — mostly numba's one-off
    compilation (neighbours, UMAP), which the timed analysis after it no longer pays."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(adata.n_obs, size=min(cells, adata.n_obs), replace=False))
    start = time.perf_counter()
    analyse(adata[keep].copy(), seed=seed, **options)
    return time.perf_counter() - start


def scaling(reference, groups: Sequence[Any], sizes: Sequence[int], *, n_batches: int = 2, seed: int = 0,
            blas_threads: int | None = 1):
    """Per-step seconds of :func:`analyse` on simulated data sets of each size (one row per size).

    The BLAS pools are pinned to ``blas_threads`` (``table.attrs``) for every size — None keeps the libraries'
    defaults — because OpenBLAS and OpenMP each start a pool per core: on a shared 2-core machine the unpinned PCA
    measured the pools contending (4,000 cells: 13 s unpinned, 3 s pinned to one thread), not the work.
    """
    import pandas as pd  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    rows = {}
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        for n in sizes:
            sim = simulate(reference, groups, n_cells=n, n_batches=n_batches, seed=seed)
            rows[n] = analyse(sim, batch_key="batch" if n_batches > 1 else None, seed=seed).seconds
    table = pd.DataFrame(rows).T.rename_axis("cells")
    table["total"] = table.sum(axis=1)
    table = table.round(3)
    table.attrs["blas_threads"] = blas_threads
    return table


def plot_scaling(table):
    """Seconds per step against the number of cells (log–log)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for step in table.columns:
        ax.plot(table.index, table[step], marker="o", lw=2.5 if step == "total" else 1, label=step)
    ax.set(xscale="log", yscale="log", xlabel="cells", ylabel="seconds", title="Where the time goes as data grows")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_qc(obs, thresholds: QCThresholds):
    """Genes per cell against UMIs per cell, coloured by mitochondrial share, with the QC limits; cells that
    fail are crossed out. ``obs`` holds scanpy's QC metrics and ``qc_pass`` (every cell, before filtering)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    ok = obs["qc_pass"].to_numpy()
    points = left.scatter(obs["total_counts"][ok], obs["n_genes_by_counts"][ok], c=obs["pct_counts_mt"][ok], s=8,
                          cmap="viridis", vmin=0, vmax=max(thresholds.max_pct_mt * 1.5, 1))
    left.scatter(obs["total_counts"][~ok], obs["n_genes_by_counts"][~ok], marker="x", c="#d62728", s=20, label="fails QC")
    for limit in (thresholds.min_genes, thresholds.max_genes):
        if np.isfinite(limit):
            left.axhline(limit, ls="--", c="#5b5b5b", lw=1)
    left.set(xscale="log", yscale="log", xlabel="UMIs per cell", ylabel="genes per cell",
             title=f"QC ({thresholds.method}): {ok.sum()} of {len(ok)} cells pass")
    left.legend(loc="lower right")
    fig.colorbar(points, ax=left, label="% mitochondrial")
    right.hist(obs["pct_counts_mt"], bins=40, color="#5b5b5b")
    right.axvline(thresholds.max_pct_mt, c="#d62728", ls="--", label=f"limit {thresholds.max_pct_mt:.1f}%")
    right.set(xlabel="% mitochondrial UMIs", ylabel="cells")
    right.legend()
    fig.tight_layout()
    return fig
