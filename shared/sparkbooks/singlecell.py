"""Single-cell RNA-seq, written once against the scanpy API; rapids-singlecell runs it on a GPU.

:func:`backend` picks ``rapids_singlecell`` when it is installed and the GPU probe passes,
scanpy otherwise. :func:`analyse` runs QC → filtering → normalisation → HVG → regress-out and
scaling → PCA → neighbours → UMAP → Leiden → (Harmony) → marker genes, timing every step.
:func:`simulate` makes more cells from a negative-binomial fit of real ones, for scaling runs
and for checking that clustering recovers known groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import util
from typing import Any

import numpy as np

from .accel import probe_gpu
from .exceptions import SourceError, require
from .sources import Source, WheelMember, fetch, registry
from .timing import Stopwatch

__all__ = [
    "Analysis",
    "MARKERS",
    "analyse",
    "annotate",
    "backend",
    "load_sample",
    "marker_panel",
    "plot_scaling",
    "scaling",
    "simulate",
]

registry.register(Source(
    name="celltypist-sample-counts",
    filename="sample_cell_by_gene.csv",
    origin=WheelMember("celltypist", "1.7.1", "celltypist/data/samples/sample_cell_by_gene.csv"),
    sha256="0d729bd7a9e4d8f5a8ccc167f222530f4ece8d334b939d21b796bd77daf967f2",
    size=53_473_636,
    description="559 cells × 32,786 genes, raw UMI counts (celltypist sample data)",
    license="MIT",
))

#: Canonical markers for the immune cells in the sample (PBMC-derived myeloid and lymphoid cells).
MARKERS: dict[str, list[str]] = {
    "T cells": ["CD3E", "CD3D", "IL7R", "CD2", "TRAC"],
    "NK cells": ["GNLY", "NKG7", "KLRD1", "CST7", "PRF1"],
    "B cells": ["MS4A1", "CD79A", "CD19", "BANK1", "CD22"],
    "Monocytes": ["CD14", "VCAN", "FCN1", "S100A8", "S100A9"],
    "Macrophages": ["APOE", "APOC1", "C1QA", "C1QB", "LPL"],
    "Mature dendritic cells": ["LAMP3", "CCR7", "IDO1", "CD83", "FSCN1"],
    "Platelets": ["PPBP", "PF4", "GP9"],
}


def backend() -> str:
    """``"rapids_singlecell"`` when installed and a GPU operation works, else ``"scanpy"``."""
    if util.find_spec("rapids_singlecell") is not None and probe_gpu().ok:
        return "rapids_singlecell"
    return "scanpy"


def load_sample():
    """The celltypist sample: 559 cells × 32,786 genes of raw UMI counts, as a sparse AnnData.

    The CSV stores counts as decimals; they are checked to be whole numbers (to 1e-3) and rounded.
    """
    require("anndata", extra="singlecell")
    import anndata as ad  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    table = pd.read_csv(fetch("celltypist-sample-counts"), index_col=0)
    values = table.to_numpy(dtype=np.float64)
    counts = np.rint(values)
    worst = float(np.max(np.abs(values - counts))) if values.size else 0.0
    if worst > 1e-3 or counts.min() < 0:
        raise SourceError(f"The sample is not raw counts (largest distance to an integer {worst}); check the source.")
    adata = ad.AnnData(sp.csr_matrix(counts.astype(np.float32)), obs=pd.DataFrame(index=table.index),
                       var=pd.DataFrame(index=table.columns))
    adata.var_names_make_unique()
    return adata


def simulate(reference, groups: Sequence[Any], *, n_cells: int, n_batches: int = 1, batch_strength: float = 0.5,
             seed: int = 0):
    """Simulated cells from a per-group negative-binomial fit of ``reference`` (raw counts).

    Each group's per-gene mean comes from its cells (depth-normalised); one dispersion per gene
    is fitted by moments across all cells and clipped to [0.01, 10]. A new cell draws its group
    by the real proportions and a library size from that group's real cells. With
    ``n_batches > 1`` every batch multiplies each gene by its own log-normal factor
    (σ = ``batch_strength``) — a batch effect Harmony should remove. Labels: ``obs["sim_group"]``,
    ``obs["batch"]``.
    """
    import anndata as ad  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    X = reference.X.toarray() if sp.issparse(reference.X) else np.asarray(reference.X)
    groups = np.asarray(groups)
    names, index = np.unique(groups, return_inverse=True)
    libsize = X.sum(axis=1)
    norm = X / libsize[:, None] * libsize.mean()
    means = np.vstack([norm[index == g].mean(axis=0) for g in range(len(names))])  # groups × genes
    mu, var = norm.mean(axis=0), norm.var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.clip(np.nan_to_num((var - mu) / mu**2, nan=0.1), 0.01, 10.0)
    proportions = np.bincount(index) / len(index)
    group_of = rng.choice(len(names), size=n_cells, p=proportions)
    batch_of = rng.integers(0, n_batches, size=n_cells)
    batch_factor = np.exp(rng.normal(0.0, batch_strength, size=(n_batches, X.shape[1]))) if n_batches > 1 else np.ones((1, X.shape[1]))
    rows = []
    for start in range(0, n_cells, 2000):  # chunks keep the dense draw small
        g, b = group_of[start:start + 2000], batch_of[start:start + 2000]
        lib = np.array([rng.choice(libsize[index == k]) for k in g])
        mean = means[g] * batch_factor[b] * (lib / libsize.mean())[:, None]
        shape = 1.0 / dispersion
        lam = rng.gamma(shape, mean / shape)  # gamma–Poisson = negative binomial
        rows.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    obs = pd.DataFrame({"sim_group": pd.Categorical(names[group_of].astype(str)),
                        "batch": pd.Categorical([f"batch{b}" for b in batch_of])},
                       index=[f"sim_{i}" for i in range(n_cells)])
    return ad.AnnData(sp.vstack(rows).tocsr(), obs=obs, var=reference.var[[]].copy())


def _harmony_cpu(adata, batch_key: str, *, seed: int) -> None:
    """harmonypy on the PCA; its output orientation changed across versions, so normalise it."""
    import harmonypy  # noqa: PLC0415

    out = harmonypy.run_harmony(adata.obsm["X_pca"], adata.obs, [batch_key], random_state=seed, verbose=False)
    corrected = np.asarray(out.Z_corr)
    adata.obsm["X_pca_harmony"] = corrected if corrected.shape[0] == adata.n_obs else corrected.T


@dataclass
class Analysis:
    """The analysed data and how long each step took."""

    adata: Any
    backend: str
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)

    def timings(self):
        """Seconds per step, the library that ran it, and a total row."""
        import pandas as pd  # noqa: PLC0415

        table = pd.DataFrame({"seconds": self.seconds, "backend": pd.Series(self.backends, dtype=object)}).rename_axis("step")
        table.loc["total", "seconds"] = table["seconds"].sum()
        return table.round({"seconds": 3})


def analyse(adata, *, min_genes: int = 200, min_cells: int = 3, max_pct_mt: float = 20.0, n_top_genes: int = 2000,
            n_pcs: int = 30, n_neighbors: int = 15, resolution: float = 0.8, batch_key: str | None = None,
            regress_out: bool = True, seed: int = 0, use_backend: str | None = None) -> Analysis:
    """Run the standard workflow on raw counts in ``adata`` (modified and returned in the result).

    Steps land in ``result.seconds`` (and the library that ran each in ``result.backends``);
    cells/genes after QC in ``result.counts``. With ``batch_key``, Harmony corrects the PCA
    before the neighbour graph. On the GPU path every call goes to rapids-singlecell directly
    (``tests/test_gpu_contract.py`` binds each one to rapids-singlecell's real signatures); the
    clock is read only after the device has finished the step's work.
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

    adata.var["mt"] = adata.var_names.str.upper().str.startswith("MT-")
    with watch.step("qc_metrics", backend="scanpy (CPU)"):  # on the host: cheap, and filtering needs it there
        sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
    with watch.step("filter", backend="scanpy (CPU)"):
        keep = (adata.obs["n_genes_by_counts"] >= min_genes) & (adata.obs["pct_counts_mt"] < max_pct_mt)
        adata = result.adata = adata[keep.to_numpy()].copy()
        sc.pp.filter_genes(adata, min_cells=min_cells)
    result.counts = {"cells_after_qc": adata.n_obs, "genes_after_qc": adata.n_vars}
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
            rsc.pp.highly_variable_genes(adata, n_top_genes=min(n_top_genes, adata.n_vars), flavor="seurat")
        else:
            sc.pp.highly_variable_genes(adata, n_top_genes=min(n_top_genes, adata.n_vars), flavor="seurat")
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
    if batch_key is not None and adata.obs[batch_key].nunique() > 1:
        with watch.step("harmony", backend=here if gpu else "harmonypy (CPU)"):
            if gpu:
                rsc.pp.harmony_integrate(adata, batch_key, rng=seed)
            else:
                _harmony_cpu(adata, batch_key, seed=seed)
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
    with watch.step("leiden", backend=here if gpu else "leidenalg/igraph (CPU)"):
        if gpu:
            rsc.tl.leiden(adata, resolution=resolution, rng=seed)
        else:
            sc.tl.leiden(adata, resolution=resolution, flavor="igraph", n_iterations=2, random_state=seed)
    if gpu:
        with watch.step("to_cpu", backend=here):
            rsc.get.anndata_to_CPU(adata)
    with watch.step("markers", backend="scanpy (CPU)"):  # Wilcoxon on the host's log-normalised raw matrix
        sc.tl.rank_genes_groups(adata, "leiden", method="wilcoxon", use_raw=True)
    return result


def annotate(adata, markers: Mapping[str, Sequence[str]] = MARKERS, *, groupby: str = "leiden", n_top: int = 50,
             min_score: float = 0.3):
    """Name each cluster by the marker set with the highest mean expression score.

    Scores are scanpy ``score_genes`` (marker mean minus a matched random background). A cluster
    whose best score is below ``min_score`` stays "unassigned". Writes ``obs["cell_type"]`` and
    returns one row per cluster: size, type, score, its top markers, and which canonical markers
    of that type are among them.
    """
    import pandas as pd  # noqa: PLC0415
    import scanpy as sc  # noqa: PLC0415

    present = {t: [g for g in genes if g in adata.raw.var_names] for t, genes in markers.items()}
    for cell_type, genes in present.items():
        if genes:
            sc.tl.score_genes(adata, genes, score_name=f"score_{cell_type}", use_raw=True, random_state=0)
    scored = [t for t, genes in present.items() if genes]
    means = adata.obs.groupby(groupby, observed=True)[[f"score_{t}" for t in scored]].mean()
    names = adata.uns["rank_genes_groups"]["names"]
    rows, labels = [], {}
    for cluster, row in means.iterrows():
        best = row.idxmax().removeprefix("score_")
        score = float(row.max())
        cell_type = best if score >= min_score else "unassigned"
        top = [names[i][cluster] for i in range(min(n_top, len(names)))]
        labels[cluster] = cell_type
        rows.append({"cluster": cluster, "cells": int((adata.obs[groupby] == cluster).sum()), "cell_type": cell_type,
                     "score": round(score, 3),
                     "canonical_in_top": ", ".join(g for g in present.get(cell_type, []) if g in top),
                     "top_markers": ", ".join(top[:8])})
    adata.obs["cell_type"] = adata.obs[groupby].map(labels).astype("category")
    return pd.DataFrame(rows).set_index("cluster")


def scaling(reference, groups: Sequence[Any], sizes: Sequence[int], *, n_batches: int = 2, seed: int = 0):
    """Per-step seconds of :func:`analyse` on simulated data sets of each size (one row per size)."""
    import pandas as pd  # noqa: PLC0415

    rows = {}
    for n in sizes:
        sim = simulate(reference, groups, n_cells=n, n_batches=n_batches, seed=seed)
        rows[n] = analyse(sim, batch_key="batch" if n_batches > 1 else None, seed=seed).seconds
    table = pd.DataFrame(rows).T.rename_axis("cells")
    table["total"] = table.sum(axis=1)
    return table.round(3)


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


def marker_panel(adata, markers: Mapping[str, Sequence[str]] = MARKERS) -> dict[str, list[str]]:
    """Markers of the cell types found in ``obs["cell_type"]``, limited to genes the data has (for dot plots)."""
    found = set(adata.obs["cell_type"])
    genes = set(adata.raw.var_names)
    return {t: [g for g in markers[t] if g in genes] for t in markers if t in found and any(g in genes for g in markers[t])}
