"""How well an embedding mixes batches and keeps cell types apart: the integration metrics of the field.

Definitions follow scib (Luecken et al. 2022, *Nat. Methods*) so figures read like published ones:

* **LISI** (Korsunsky et al. 2019): per cell, the inverse Simpson index of the labels among its
  neighbours, weighted by a Gaussian kernel whose width gives perplexity 30 (90 neighbours).
  iLISI over batch labels — higher is better mixed, at most the number of batches; cLISI over
  cell types — 1 is perfectly separated. Reported as medians and scib's 0–1 scaling.
* **batch ASW**: within each cell type, 1 − |silhouette| of the batch labels, averaged per type
  then over types (1 = batches indistinguishable inside a type).
* **cell-type ASW**: (silhouette of cell-type labels + 1) / 2.

:func:`compare` scores several corrections of one PCA side by side with ARI/NMI of their Leiden
clusters against known groups; :func:`centre_batches` is the trivial baseline any correction
has to beat; :func:`benchmark` runs the three — no correction, centring, Harmony — on one
analysed data set and scores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import InputError
from .workflow import backend, harmony, leiden

__all__ = ["IntegrationBenchmark", "benchmark", "centre_batches", "compare", "lisi", "silhouette_batch", "silhouette_label"]


def _neighbours(embedding: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    k = min(k, len(embedding) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    return distances[:, 1:], indices[:, 1:]  # drop the cell itself


def lisi(embedding: np.ndarray, labels: Sequence, *, perplexity: float = 30.0) -> np.ndarray:
    """Per-cell LISI of ``labels`` in ``embedding`` (cells × dims), Gaussian-weighted to ``perplexity``."""
    embedding = np.asarray(embedding, dtype=np.float64)
    codes, index = np.unique(np.asarray(labels), return_inverse=True)
    if len(index) != len(embedding):
        raise InputError(f"{len(index)} labels for {len(embedding)} cells: one label per cell.")
    distances, neighbours = _neighbours(embedding, int(3 * perplexity))
    d2 = distances**2
    target = np.log(perplexity)
    beta = np.ones(len(d2))
    lo, hi = np.zeros(len(d2)), np.full(len(d2), np.inf)
    for _ in range(60):  # bisection on each cell's kernel precision until the entropy is log(perplexity)
        p = np.exp(-(d2 - d2[:, :1]) * beta[:, None])
        total = p.sum(axis=1, keepdims=True)
        p /= total
        entropy = -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=1)
        too_flat = entropy > target  # spread too wide: sharpen
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isinf(hi), beta * 2, (lo + hi) / 2)
    by_label = np.zeros((len(d2), len(codes)))
    rows = np.repeat(np.arange(len(d2)), neighbours.shape[1])
    np.add.at(by_label, (rows, index[neighbours].ravel()), p.ravel())
    return 1.0 / np.sum(by_label**2, axis=1)


def silhouette_label(embedding: np.ndarray, labels: Sequence) -> float:
    """Cell-type ASW, scaled to 0–1: (mean silhouette + 1) / 2."""
    from sklearn.metrics import silhouette_score  # noqa: PLC0415

    return float((silhouette_score(embedding, np.asarray(labels)) + 1) / 2)


def silhouette_batch(embedding: np.ndarray, batches: Sequence, labels: Sequence) -> float:
    """Batch ASW as scib computes it: within each cell type, mean of 1 − |silhouette of batch|; then the mean over types."""
    from sklearn.metrics import silhouette_samples  # noqa: PLC0415

    batches, labels = np.asarray(batches), np.asarray(labels)
    scores = []
    for label in np.unique(labels):
        inside = labels == label
        if len(np.unique(batches[inside])) < 2 or inside.sum() < 3:
            continue  # a type seen in one batch says nothing about mixing
        scores.append(float(np.mean(1 - np.abs(silhouette_samples(embedding[inside], batches[inside])))))
    return float(np.mean(scores)) if scores else float("nan")


def centre_batches(embedding: np.ndarray, batches: Sequence) -> np.ndarray:
    """The trivial correction: subtract each batch's mean (a global shift per batch)."""
    embedding = np.asarray(embedding, dtype=np.float64).copy()
    batches = np.asarray(batches)
    for batch in np.unique(batches):
        embedding[batches == batch] -= embedding[batches == batch].mean(axis=0)
    return embedding


def compare(embeddings: Mapping[str, np.ndarray], *, batches: Sequence, truth: Sequence,
            clusters: Mapping[str, Sequence] | None = None):
    """One row per embedding: iLISI, cLISI (medians and scib-scaled), batch ASW, cell-type ASW, and —
    given each embedding's ``clusters`` — ARI and NMI against ``truth`` and ARI against the batches."""
    import pandas as pd  # noqa: PLC0415
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: PLC0415

    batches, truth = np.asarray(batches), np.asarray(truth)
    n_batches, n_types = len(np.unique(batches)), len(np.unique(truth))
    rows = {}
    for name, emb in embeddings.items():
        ilisi = float(np.median(lisi(emb, batches)))
        clisi = float(np.median(lisi(emb, truth)))
        row = {"iLISI": ilisi, "iLISI_scaled": (ilisi - 1) / max(n_batches - 1, 1), "cLISI": clisi,
               "cLISI_scaled": (n_types - clisi) / max(n_types - 1, 1),
               "batch_ASW": silhouette_batch(emb, batches, truth), "celltype_ASW": silhouette_label(emb, truth)}
        if clusters is not None and name in clusters:
            found = np.asarray(clusters[name])
            row |= {"ARI_truth": adjusted_rand_score(truth, found), "NMI_truth": normalized_mutual_info_score(truth, found),
                    "ARI_batch": adjusted_rand_score(batches, found), "clusters": len(np.unique(found))}
        rows[name] = row
    return pd.DataFrame(rows).T


def _host(array) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array)  # cupy → numpy


@dataclass(frozen=True)
class IntegrationBenchmark:
    """Scores per correction (:func:`compare`'s table), the embeddings, and each embedding's Leiden clusters."""

    table: Any
    embeddings: dict[str, np.ndarray]
    clusters: dict[str, np.ndarray]


def benchmark(adata, *, batch_key: str = "batch", truth_key: str = "sim_group", resolution: float = 0.8,
              n_neighbors: int = 15, seed: int = 0, use_backend: str | None = None) -> IntegrationBenchmark:
    """No correction, per-batch centring and Harmony on the same PCA of ``adata`` (analysed without a batch key),
    each clustered the same way (neighbours + Leiden), then scored by :func:`compare` against ``obs[truth_key]``.

    Writes ``obsm["X_<name>"]`` and ``obs["leiden_<name>"]`` for each of ``none``, ``centred``, ``harmony``.
    """
    import scanpy as sc  # noqa: PLC0415

    name = use_backend or backend()
    batches = adata.obs[batch_key].to_numpy()
    pca = _host(adata.obsm["X_pca"])
    adata.obsm["X_pca"] = pca
    embeddings = {"none": pca, "centred": centre_batches(pca, batches),
                  "harmony": _host(harmony(adata, batch_key, seed=seed, use_backend=name))}
    clusters = {}
    for label, embedding in embeddings.items():
        adata.obsm[f"X_{label}"] = embedding
        # the graph and Leiden on the host: a few thousand cells, and the same code for every embedding
        sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep=f"X_{label}", random_state=seed, key_added=label)
        leiden(adata, resolution=resolution, seed=seed, neighbors_key=label, key_added=f"leiden_{label}", use_backend=name)
        clusters[label] = adata.obs[f"leiden_{label}"].to_numpy()
    table = compare(embeddings, batches=batches, truth=adata.obs[truth_key].to_numpy(), clusters=clusters)
    return IntegrationBenchmark(table, embeddings, clusters)
