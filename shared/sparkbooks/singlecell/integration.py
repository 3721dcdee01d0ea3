"""How well an embedding mixes batches and keeps cell types apart: the integration metrics of the field.

Definitions follow scib-metrics (Luecken et al. 2022, *Nat. Methods*; the scverse package's code), each
checked against a direct port of its code in the tests:

* **LISI** (Korsunsky et al. 2019): per cell, the inverse Simpson index of the labels among its
  90 nearest neighbours, weighted by exp(−β·d) on the *distances* (scib-metrics and the original
  R code; not a Gaussian on d²), β tuned to perplexity 30. iLISI over batches — higher is better
  mixed, at most the number of batches; cLISI over cell types — 1 is perfectly separated.
  Reported as medians and scib's 0–1 scaling.
* **batch ASW**: within each cell type, 1 − |silhouette| of the batch labels, averaged per type
  then over types (1 = batches indistinguishable inside a type).
* **BRAS** (Rautenstrauch & Ohler 2025): the same with cosine distances and the mean distance to
  *all* other batches — scib-metrics' Benchmarker default since 0.5.6.
* **graph connectivity**: per type, the share of its cells in the largest connected piece of the
  kNN graph restricted to the type.
* **isolated labels**: the types seen in the fewest batches, scored by their cells' silhouette.
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

__all__ = ["IntegrationBenchmark", "benchmark", "bras", "centre_batches", "compare", "graph_connectivity",
           "isolated_labels", "knn_graph", "lisi", "silhouette_batch", "silhouette_label", "subtype_purity"]


def _neighbours(embedding: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    k = min(k, len(embedding) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    return distances[:, 1:], indices[:, 1:]  # drop the cell itself


def _neighbour_probabilities(distances: np.ndarray, perplexity: float, *, tol: float = 1e-5,
                             max_tries: int = 50) -> np.ndarray:
    """scib-metrics' per-cell kernel: P ∝ exp(−β·d) over the neighbour *distances* (not squared), β found by
    bisection from 1 until the entropy is within ``tol`` of log(perplexity) (at most ``max_tries`` halvings)."""
    n = len(distances)
    target = np.log(perplexity)

    def entropy_and_p(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # shift by the nearest distance for stability: P and H are unchanged by a constant in the exponent
        p = np.exp(-(distances - distances[:, :1]) * beta[:, None])
        total = p.sum(axis=1)
        h = np.log(total) + beta * np.sum((distances - distances[:, :1]) * p, axis=1) / total
        return h, p / total[:, None]

    beta = np.ones(n)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    h, p = entropy_and_p(beta)
    diff = h - target
    active = np.abs(diff) > tol
    for _ in range(max_tries):
        if not active.any():
            break
        up = diff > 0  # too flat: sharpen (β up)
        new_lo = np.where(up, beta, lo)
        new_hi = np.where(up, hi, beta)
        new_beta = np.where(up, np.where(np.isinf(hi), beta * 2, (beta + hi) / 2),
                            np.where(np.isinf(lo), beta / 2, (beta + lo) / 2))
        lo, hi = np.where(active, new_lo, lo), np.where(active, new_hi, hi)
        beta = np.where(active, new_beta, beta)
        h_new, p_new = entropy_and_p(beta)
        h, p = np.where(active, h_new, h), np.where(active[:, None], p_new, p)
        diff = h - target
        active &= np.abs(diff) > tol
    return p


def lisi(embedding: np.ndarray, labels: Sequence, *, perplexity: float = 30.0) -> np.ndarray:
    """Per-cell LISI of ``labels`` in ``embedding`` (cells × dims) as scib-metrics computes it: 3 × perplexity
    Euclidean neighbours, kernel exp(−β·d) tuned to ``perplexity``, inverse Simpson index of the labels."""
    embedding = np.asarray(embedding, dtype=np.float64)
    codes, index = np.unique(np.asarray(labels), return_inverse=True)
    if len(index) != len(embedding):
        raise InputError(f"{len(index)} labels for {len(embedding)} cells: one label per cell.")
    distances, neighbours = _neighbours(embedding, int(3 * perplexity))
    p = _neighbour_probabilities(distances, perplexity)
    by_label = np.zeros((len(p), len(codes)))
    rows = np.repeat(np.arange(len(p)), neighbours.shape[1])
    np.add.at(by_label, (rows, index[neighbours].ravel()), p.ravel())
    return 1.0 / np.sum(by_label**2, axis=1)


def _silhouette_samples(embedding: np.ndarray, labels: np.ndarray, *, metric: str = "euclidean",
                        between: str = "nearest") -> np.ndarray:
    """Silhouette per cell, with scib-metrics' ``between_cluster_distances``: ``nearest`` (the standard one) or
    ``mean_other`` (BRAS: the mean distance to every cell of the *other* labels)."""
    from sklearn.metrics import pairwise_distances  # noqa: PLC0415

    codes, index = np.unique(labels, return_inverse=True)
    freqs = np.bincount(index, minlength=len(codes)).astype(np.float64)
    intra, inter = np.empty(len(index)), np.empty(len(index))
    for start in range(0, len(index), 1024):  # chunks: memory O(chunk × cells), never cells²
        d = pairwise_distances(embedding[start:start + 1024], embedding, metric=metric)
        sums = np.stack([d[:, index == k].sum(axis=1) for k in range(len(codes))], axis=1)
        own = index[start:start + 1024]
        rows = np.arange(len(own))
        intra[start:start + len(own)] = sums[rows, own]
        if between == "mean_other":
            inter[start:start + len(own)] = (sums.sum(axis=1) - sums[rows, own]) / (freqs.sum() - freqs[own])
        else:
            means = sums / freqs
            means[rows, own] = np.inf
            inter[start:start + len(own)] = means.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra /= freqs[index] - 1
        s = (inter - intra) / np.maximum(intra, inter)
    return np.nan_to_num(s)


def bras(embedding: np.ndarray, batches: Sequence, labels: Sequence) -> float:
    """BRAS (Rautenstrauch & Ohler 2025), scib-metrics' Benchmarker default since 0.5.6: within each cell type seen in
    two or more batches, the mean of 1 − |silhouette of batch| with cosine distances and ``mean_other`` between-batch
    distances; then the mean over types (1 = batches indistinguishable)."""
    return _batch_silhouette(embedding, batches, labels, metric="cosine", between="mean_other")


def _batch_silhouette(embedding, batches, labels, *, metric: str, between: str) -> float:
    embedding = np.asarray(embedding, dtype=np.float64)
    batches, labels = np.asarray(batches), np.asarray(labels)
    scores = []
    for label in np.unique(labels):
        inside = labels == label
        n_batches = len(np.unique(batches[inside]))
        if n_batches == 1 or n_batches == inside.sum():
            continue  # a type seen in one batch says nothing about mixing
        s = _silhouette_samples(embedding[inside], batches[inside], metric=metric, between=between)
        scores.append(float(np.mean(1 - np.abs(s))))
    return float(np.mean(scores)) if scores else float("nan")


def graph_connectivity(graph, labels: Sequence) -> float:
    """scib's graph connectivity: per cell type, the share of its cells in the largest connected component of the
    kNN graph restricted to that type; the mean over types (1 = every type one connected piece)."""
    import scipy.sparse as sp  # noqa: PLC0415
    from scipy.sparse.csgraph import connected_components  # noqa: PLC0415

    graph, labels = sp.csr_matrix(graph), np.asarray(labels)
    shares = []
    for label in np.unique(labels):
        mask = labels == label
        _, comps = connected_components(graph[mask][:, mask], connection="strong")
        shares.append(np.bincount(comps).max() / mask.sum())
    return float(np.mean(shares))


def knn_graph(embedding: np.ndarray, *, k: int = 15):
    """The kNN distance graph (cells × cells, k entries per row) that scib-metrics scores graph connectivity on."""
    import scipy.sparse as sp  # noqa: PLC0415

    distances, neighbours = _neighbours(np.asarray(embedding, dtype=np.float64), k)
    rows = np.repeat(np.arange(len(distances)), neighbours.shape[1])
    # a tiny floor keeps zero distances (duplicate cells) as edges in the sparse matrix
    return sp.csr_matrix((np.maximum(distances.ravel(), 1e-12), (rows, neighbours.ravel())), shape=(len(distances),) * 2)


def isolated_labels(embedding: np.ndarray, labels: Sequence, batches: Sequence) -> float:
    """scib-metrics' isolated-label score: the labels present in the fewest batches, each scored by the mean
    rescaled silhouette ((s + 1) / 2, all labels) of its cells; the mean over those labels."""
    labels, batches = np.asarray(labels), np.asarray(batches)
    per_label = {lab: len(np.unique(batches[labels == lab])) for lab in np.unique(labels)}
    fewest = min(per_label.values())
    isolated = [lab for lab, n in per_label.items() if n <= fewest]
    s = (_silhouette_samples(np.asarray(embedding, dtype=np.float64), labels) + 1) / 2
    return float(np.mean([s[labels == lab].mean() for lab in isolated]))


def silhouette_label(embedding: np.ndarray, labels: Sequence) -> float:
    """Cell-type ASW, scaled to 0–1: (mean silhouette + 1) / 2."""
    from sklearn.metrics import silhouette_score  # noqa: PLC0415

    return float((silhouette_score(embedding, np.asarray(labels)) + 1) / 2)


def silhouette_batch(embedding: np.ndarray, batches: Sequence, labels: Sequence) -> float:
    """Batch ASW as scib computes it: within each cell type, mean of 1 − |silhouette of batch| (Euclidean, nearest
    other batch); then the mean over types. scib-metrics now prefers :func:`bras`; both are reported."""
    return _batch_silhouette(embedding, batches, labels, metric="euclidean", between="nearest")


def subtype_purity(embedding: np.ndarray, labels: Sequence, among: Sequence, *, k: int = 15,
                   per_cell: bool = False) -> float | np.ndarray:
    """Among the cells labelled one of ``among`` (related subtypes), the mean share of each one's ``k`` nearest such
    cells that carry its own label: 1 = the subtypes kept apart, 1/len(among) = merged (what Harmony does to two
    related subtypes seen in different batches). Not a scib-metrics metric: cLISI over all cells hides it.
    ``per_cell`` returns each such cell's share (in the order of the cells) for a paired comparison."""
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, np.asarray(among).astype(str))
    if len(np.unique(labels[keep])) < 2:
        raise InputError(f"subtype_purity needs at least two of {list(among)} present.")
    _, indices = _neighbours(np.asarray(embedding)[keep], k)
    own = labels[keep]
    shares = (own[indices] == own[:, None]).mean(axis=1)
    return shares if per_cell else float(shares.mean())


def centre_batches(embedding: np.ndarray, batches: Sequence) -> np.ndarray:
    """The trivial correction: subtract each batch's mean (a global shift per batch)."""
    embedding = np.asarray(embedding, dtype=np.float64).copy()
    batches = np.asarray(batches)
    for batch in np.unique(batches):
        embedding[batches == batch] -= embedding[batches == batch].mean(axis=0)
    return embedding


def compare(embeddings: Mapping[str, np.ndarray], *, batches: Sequence, truth: Sequence,
            clusters: Mapping[str, Sequence] | None = None, best: Mapping[str, Mapping[float, Sequence]] | None = None):
    """One row per embedding, scib-metrics' definitions: iLISI, cLISI (medians and scaled), batch ASW, BRAS, graph
    connectivity (15-NN graph), isolated labels, cell-type ASW; given each embedding's ``clusters``, ARI and NMI
    against ``truth`` and ARI against the batches; given ``best`` (clusterings per resolution), NMI and ARI at the
    resolution with the best NMI, as scib-metrics picks it."""
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
               "batch_ASW": silhouette_batch(emb, batches, truth), "BRAS": bras(emb, batches, truth),
               "graph_conn": graph_connectivity(knn_graph(emb), truth),
               "isolated_labels": isolated_labels(emb, truth, batches), "celltype_ASW": silhouette_label(emb, truth)}
        if clusters is not None and name in clusters:
            found = np.asarray(clusters[name])
            row |= {"ARI_truth": adjusted_rand_score(truth, found), "NMI_truth": normalized_mutual_info_score(truth, found),
                    "ARI_batch": adjusted_rand_score(batches, found), "clusters": len(np.unique(found))}
        if best is not None and name in best:
            nmi = {r: normalized_mutual_info_score(truth, np.asarray(c)) for r, c in best[name].items()}
            top = max(nmi, key=nmi.get)
            row |= {"NMI_best": nmi[top], "ARI_best": adjusted_rand_score(truth, np.asarray(best[name][top])),
                    "best_resolution": top}
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
              n_neighbors: int = 15, seed: int = 0, use_backend: str | None = None,
              resolutions: Sequence[float] = (0.2, 0.5, 1.0, 1.5)) -> IntegrationBenchmark:
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
    clusters: dict[str, np.ndarray] = {}
    best: dict[str, dict[float, np.ndarray]] = {}
    for label, embedding in embeddings.items():
        adata.obsm[f"X_{label}"] = embedding
        # the graph and Leiden on the host: a few thousand cells, and the same code for every embedding
        sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep=f"X_{label}", random_state=seed, key_added=label)
        leiden(adata, resolution=resolution, seed=seed, neighbors_key=label, key_added=f"leiden_{label}", use_backend=name)
        clusters[label] = adata.obs[f"leiden_{label}"].to_numpy()
        best[label] = {}
        for r in resolutions:  # scib-metrics scores NMI/ARI at the resolution that fits the labels best
            leiden(adata, resolution=r, seed=seed, neighbors_key=label, key_added="_best", use_backend=name)
            best[label][r] = adata.obs.pop("_best").to_numpy()
    table = compare(embeddings, batches=batches, truth=adata.obs[truth_key].to_numpy(), clusters=clusters, best=best)
    return IntegrationBenchmark(table, embeddings, clusters)
