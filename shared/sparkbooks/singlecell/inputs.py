"""Where the cells come from: the bundled celltypist sample, or your own ``.h5ad``, as raw counts with gene symbols.

Both return a sparse AnnData of whole-number UMI counts (what QC, normalisation and the marker lists
expect); a file with only normalised values, or with Ensembl IDs and no symbol column, is refused with
what to do.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import SourceError, require
from ..sources import Source, WheelMember, fetch, registry

__all__ = ["load_h5ad", "load_sample"]

registry.register(Source(
    name="celltypist-sample-counts",
    filename="sample_cell_by_gene.csv",
    origin=WheelMember("celltypist", "1.7.1", "celltypist/data/samples/sample_cell_by_gene.csv"),
    sha256="0d729bd7a9e4d8f5a8ccc167f222530f4ece8d334b939d21b796bd77daf967f2",
    size=53_473_636,
    description="559 cells × 32,786 genes, raw UMI counts (celltypist sample data)",
    license="MIT",
))


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


def _is_counts(matrix, *, sample: int = 200_000) -> bool:
    """Whole, non-negative numbers (checked on up to ``sample`` stored values, spread over the matrix)."""
    values = matrix.data if hasattr(matrix, "data") and hasattr(matrix, "indptr") else np.asarray(matrix).ravel()
    if values.size > sample:
        values = values[:: values.size // sample]
    return bool(values.size == 0 or (values.min() >= 0 and np.all(np.abs(values - np.rint(values)) < 1e-3)))


def load_h5ad(path: str):
    """Raw counts from an ``.h5ad``: ``X`` when it holds whole numbers, else ``layers["counts"]`` /
    ``layers["raw_counts"]`` or ``raw.X`` (CELLxGENE files keep normalised values in ``X``).

    Raises
    ------
    SourceError
        No raw counts anywhere: the message lists where it looked.
    """
    require("anndata", extra="singlecell")
    import anndata as ad  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    adata = ad.read_h5ad(path)
    where = ["X"]
    if not _is_counts(adata.X):
        found = None
        for layer in ("counts", "raw_counts"):
            where.append(f"layers[{layer!r}]")
            if layer in adata.layers and _is_counts(adata.layers[layer]):
                found = adata.layers[layer]
                break
        if found is None and adata.raw is not None:
            where.append("raw.X")
            if adata.raw.n_vars == adata.n_vars and _is_counts(adata.raw.X):
                found = adata.raw.X
        if found is None:
            raise SourceError(f"{path} holds no raw counts (looked in {', '.join(where)}: not whole non-negative "
                              "numbers — normalised or log values). Pass the raw UMI counts, e.g. in layers['counts'].")
        adata = ad.AnnData(found, obs=adata.obs, var=adata.var)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    _gene_symbols(adata, path)
    adata.var_names_make_unique()
    return adata


def _gene_symbols(adata, path: str) -> None:
    """Ensembl IDs as ``var_names`` (CELLxGENE) → the symbols in ``var["feature_name"]`` (what NVIDIA's notebook
    does), else a ``SourceError``: with IDs the ``MT-`` filter matches nothing and no marker is ever found."""
    if np.mean(adata.var_names.str.upper().str.startswith("ENS")) < 0.5:
        return
    for column in ("feature_name", "gene_symbols", "gene_name", "gene_symbol"):
        if column in adata.var:
            adata.var["gene_id"] = adata.var_names.to_numpy()
            adata.var_names = adata.var[column].astype(str).to_numpy()
            return
    raise SourceError(f"{path} names its genes by Ensembl ID and has no symbol column (feature_name, gene_symbols, "
                      "gene_name): the mitochondrial filter and the marker lists need symbols. Set adata.var_names "
                      "to the symbols and save again.")
