"""The pipeline against k-means told the same number of topics, on texts without topical labels.

A reader's first question of UMAP + HDBSCAN is whether it buys anything over k-means on the same embeddings at the
k it found. :func:`versus_kmeans` answers it for one fit of each: k-means' clusters get keywords by the one keyword
rule (:func:`~sparkbooks.topics.keywords`), both sets are scored by NPMI on the same reference documents and by AMI
against the same weak labels. The intervals are paired bootstraps over those documents (both methods on every draw):
they hold the reference's sampling noise, not the spread between fits — the guide's BBC seed table shows that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .evaluate import EPS_NPMI, coherence
from .model import TopicModel
from .terms import keywords

__all__ = ["VersusKMeans", "versus_kmeans"]


@dataclass(frozen=True)
class VersusKMeans:
    """k-means at the model's k beside the model: keywords, NPMI (strict and ε) and AMI, and the paired 95 %
    bootstrap intervals of ``model − k-means`` (``npmi_gain``: over reference documents; ``ami_gain``: over the
    fitted documents, outliers one cluster; ``None`` without reference labels)."""

    k: int
    labels: np.ndarray
    words: dict[int, list[str]]
    npmi: float
    npmi_docs_eps: float
    npmi_model: float
    npmi_gain: tuple[float, float]
    ami: float | None
    ami_model: float | None
    ami_gain: tuple[float, float] | None
    reference_docs: int


def _mean_npmi(words: list[list[str]], counts, vocabulary: np.ndarray, top_k: int, eps: float | None = None) -> float:
    return float(np.mean(coherence(words, counts, vocabulary, top_k=top_k, eps=eps)))


def _pairs(topics: list[list[str]], where: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Column pairs of every topic's scorable words, the topic each pair belongs to, and the number of topics."""
    a, b, owner = [], [], []
    for t, words in enumerate(topics):
        cols = [where[w] for w in words if w in where]
        i, j = np.triu_indices(len(cols), k=1)
        a += [cols[x] for x in i]; b += [cols[x] for x in j]; owner += [t] * len(i)  # noqa: E702
    return np.array(a, dtype=int), np.array(b, dtype=int), np.array(owner, dtype=int), len(topics)


def _npmi_means(joint: np.ndarray, n: float, pairs: tuple, eps: float | None = None) -> float:
    """Mean over topics of NPMI from a co-occurrence matrix: :func:`~.evaluate.coherence`'s rule (a topic with
    no scorable pair −1; never together −1 when strict, ε-smoothed given ``eps``; a word absent −1; together in every
    document 1), all topics at once."""
    a, b, owner, n_topics = pairs
    p_ab, p_a, p_b = joint[a, b] / n, joint[a, a] / n, joint[b, b] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        if eps is None:
            npmi = np.where(p_ab > 0, np.log(p_ab / (p_a * p_b)) / -np.log(p_ab), -1.0)
        else:
            npmi = np.log((p_ab + eps) / (p_a * p_b)) / -np.log(p_ab + eps)
    npmi[p_ab >= 1.0] = 1.0
    npmi[p_a * p_b == 0] = -1.0
    count = np.bincount(owner, minlength=n_topics)
    per_topic = np.where(count > 0, np.bincount(owner, weights=npmi, minlength=n_topics) / np.maximum(count, 1), -1.0)
    return float(per_topic.mean())


def versus_kmeans(model: TopicModel, embeddings: np.ndarray, counts, *, reference: Sequence | None = None,
                  top_k: int = 10, seed: int = 0, n_boot: int = 200, ami_boot: int = 100,
                  n_init: int = 10) -> VersusKMeans:
    """k-means on ``embeddings`` with the model's number of topics — the best of ``n_init`` k-means++ starts (ten, the
    baseline at its strongest: 1.3 s at 5,000 × 384 on 2 cores; scikit-learn's ``"auto"`` runs one) — scored as the
    model is.

    ``counts``: the reference documents counted over ``model.vocabulary_`` (:func:`~sparkbooks.topics.evaluate.
    held_out_counts` of texts the model never saw); ``reference``: labels of the fitted documents (AMI), optional.
    ``n_boot`` / ``ami_boot``: bootstrap draws of the NPMI / AMI difference.
    """
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.metrics import adjusted_mutual_info_score as ami  # noqa: PLC0415

    k = max(model.n_topics_, 2)
    labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(embeddings)
    words = keywords(model.counts_, labels, model.vocabulary_, top_n=model.top_n, min_word_docs=model.min_word_docs)
    sets = [[list(w)[:top_k] for w in model.topic_words_.values()], [list(w)[:top_k] for w in words.values()]]
    # only the keywords' columns: the same NPMI (a document's words are counted whole), a bootstrap draw 100× smaller
    where = {w: i for i, w in enumerate(model.vocabulary_)}
    cols = sorted({where[w] for topics in sets for topic in topics for w in topic if w in where})
    sub, vocab = (counts.tocsr()[:, cols] > 0).astype(np.float64), model.vocabulary_[cols]
    ours, theirs = (_mean_npmi(s, sub, vocab, top_k) for s in sets)
    local = {w: i for i, w in enumerate(vocab)}
    pairs = [_pairs(s, local) for s in sets]
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(n_boot):  # a draw of the reference = each document weighted by how often it was drawn
        w = np.bincount(rng.integers(0, sub.shape[0], sub.shape[0]), minlength=sub.shape[0]).astype(np.float64)
        joint = (sub.T @ sub.multiply(w[:, None]).tocsr()).toarray()
        gains.append(_npmi_means(joint, w.sum(), pairs[0]) - _npmi_means(joint, w.sum(), pairs[1]))
    ami_them = ami_ours = ami_gain = None
    if reference is not None:
        ref, mine = np.asarray(reference), np.asarray(model.labels_)
        ami_ours, ami_them = float(ami(ref, mine)), float(ami(ref, labels))
        rows = (rng.integers(0, len(ref), len(ref)) for _ in range(ami_boot))
        diffs = [ami(ref[r], mine[r]) - ami(ref[r], labels[r]) for r in rows]
        ami_gain = (float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))
    return VersusKMeans(k=k, labels=labels, words=words, npmi=theirs,
                        npmi_docs_eps=_mean_npmi(sets[1], sub, vocab, top_k, eps=EPS_NPMI), npmi_model=ours,
                        npmi_gain=(float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))),
                        ami=ami_them, ami_model=ami_ours, ami_gain=ami_gain, reference_docs=int(sub.shape[0]))
