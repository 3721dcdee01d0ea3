"""Scoring topics fairly: one keyword rule for every pipeline, coherence on held-out text, AMI with a chance
baseline, and the baselines a topic-modelling reader expects (LDA, NMF, k-means).

* :func:`npmi_coherence`, :func:`topic_diversity` — the measures themselves;
* :func:`coherence` — NPMI of a fixed top-k per topic; a topic left with fewer than two scorable
  words scores −1 instead of dropping out of the mean (dropping it flatters the average).
* :func:`agreement` — AMI against reference labels with outliers as one cluster *and* on the
  clustered documents only, NMI and ARI, and the AMI the same clusters reach against shuffled
  labels (mean ± sd over permutations): AMI is chance-corrected, NMI rises with the number of
  clusters.
* :func:`quality` — both for a fitted :class:`~sparkbooks.topics.TopicModel`.
* :func:`baseline` — LDA or NMF on the bag-of-words (each document to its largest topic) and
  k-means on the embeddings, all scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..exceptions import InputError
from .model import TopicModel
from .text import vectorizer

__all__ = ["BASELINES", "agreement", "baseline", "coherence", "held_out_counts", "npmi_coherence", "quality",
           "topic_diversity"]


def npmi_coherence(topics: Sequence[Sequence[str]], counts, vocabulary: np.ndarray, *,
                   eps: float | None = None) -> np.ndarray:
    """Mean normalised PMI of each topic's word pairs, from document co-occurrence in ``counts``.

    ``NPMI(a, b) = log(p(a,b) / (p(a) p(b))) / −log p(a,b)`` with probabilities = share of
    documents containing the words. ``eps=None``: a pair that never co-occurs scores −1 (its
    limit). ``eps`` > 0 adds it to ``p(a,b)`` as gensim's ``c_npmi`` does (1e-12 there), which
    scores such a pair near 0 instead — the two differ most for topics whose words never meet.
    Range −1 … 1; a topic with fewer than two words in the vocabulary scores NaN.
    """
    where = {w: i for i, w in enumerate(vocabulary)}
    present = (counts > 0).astype(np.float64).tocsc()
    n_docs = present.shape[0]
    scores = np.full(len(topics), np.nan)
    for k, words in enumerate(topics):
        cols = [where[w] for w in words if w in where]
        if len(cols) < 2:
            continue
        sub = present[:, cols]
        joint = (sub.T @ sub).toarray() / n_docs
        single = np.diag(joint).copy()
        i, j = np.triu_indices(len(cols), k=1)
        p_ab = joint[i, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            if eps is None:
                npmi = np.where(p_ab > 0, np.log(p_ab / (single[i] * single[j])) / -np.log(p_ab), -1.0)
            else:
                npmi = np.log((p_ab + eps) / (single[i] * single[j])) / -np.log(p_ab + eps)
        npmi[(p_ab >= 1.0)] = 1.0  # both words in every document
        scores[k] = float(np.mean(npmi))
    return scores


def topic_diversity(topics: Sequence[Sequence[str]]) -> float:
    """Share of distinct words among all topics' top words (1 = no word repeats across topics)."""
    words = [w for topic in topics for w in topic]
    return len(set(words)) / len(words) if words else float("nan")


def coherence(topic_words: Sequence[Sequence[str]], counts, vocabulary: np.ndarray, *, top_k: int = 10,
              eps: float | None = None) -> np.ndarray:
    """NPMI of each topic's first ``top_k`` words in ``counts`` (documents × ``vocabulary``); fewer than two
    scorable words → −1. ``eps`` as in :func:`~sparkbooks.topics.npmi_coherence` (1e-12: gensim's ``c_npmi``)."""
    scores = npmi_coherence([list(w)[:top_k] for w in topic_words], counts, vocabulary, eps=eps)
    return np.where(np.isnan(scores), -1.0, scores)


def agreement(labels: Sequence, reference: Sequence, *, permutations: int = 20, seed: int = 0) -> dict[str, float]:
    """How well clusters (−1 = outlier) match reference labels: AMI (outliers as one cluster), AMI over the
    clustered documents only, NMI, ARI, and AMI against shuffled references (mean and sd)."""
    from sklearn.metrics import adjusted_mutual_info_score as ami  # noqa: PLC0415
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: PLC0415

    labels, reference = np.asarray(labels), np.asarray(reference)
    if len(labels) != len(reference):
        raise InputError(f"{len(labels)} cluster labels for {len(reference)} reference labels: one each per document.")
    clustered = labels >= 0
    rng = np.random.default_rng(seed)
    shuffled = [ami(rng.permutation(reference), labels) for _ in range(permutations)]
    return {"clusters": int(len(np.unique(labels[clustered]))), "outlier_share": float(1 - clustered.mean()),
            "ami": float(ami(reference, labels)),
            "ami_clustered": float(ami(reference[clustered], labels[clustered])) if clustered.sum() > 1 else float("nan"),
            "nmi": float(normalized_mutual_info_score(reference, labels)),
            "ari": float(adjusted_rand_score(reference, labels)),
            "ami_shuffled": float(np.mean(shuffled)), "ami_shuffled_sd": float(np.std(shuffled))}


def quality(model: TopicModel, reference: Sequence | None = None, *, corpus: Sequence[str] | None = None,
            counts=None, top_k: int = 10, seed: int = 0) -> dict[str, float]:
    """Topics, outliers, NPMI (strict and gensim-style) of the top ``top_k`` keywords counted in ``corpus`` —
    pass documents the model did not see (held out) — diversity, and :func:`agreement` given ``reference``.

    ``counts``: ``corpus`` already counted over ``model.vocabulary_`` (:func:`held_out_counts`), to score
    several models that share a vocabulary (a model and its reductions) without counting it again.
    """
    words = list(model.topic_words_.values())
    if counts is None:
        counts = model.counts_ if corpus is None else held_out_counts(model, corpus)
    scores = {"topics": model.n_topics_, "outlier_share": float(np.mean(model.labels_ < 0)),
              "npmi": float(np.mean(coherence(words, counts, model.vocabulary_, top_k=top_k))) if words else float("nan"),
              "npmi_gensim_eps": float(np.mean(coherence(words, counts, model.vocabulary_, top_k=top_k, eps=1e-12)))
              if words else float("nan"),
              "diversity": topic_diversity([w[:top_k] for w in words])}
    if reference is not None:
        scores |= {k: v for k, v in agreement(model.labels_, reference, seed=seed).items()
                   if k not in ("clusters", "outlier_share")}
    return scores


def held_out_counts(model: TopicModel, corpus: Sequence[str]):
    """``corpus`` counted over the model's vocabulary (documents × terms, sparse), for :func:`quality`."""
    return vectorizer(vocabulary=model.vocabulary_, min_df=1).transform(corpus)


def _lda(counts, embeddings, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import LatentDirichletAllocation  # noqa: PLC0415

    return LatentDirichletAllocation(k, learning_method="batch", max_iter=10, random_state=seed).fit_transform(counts).argmax(axis=1)


def _nmf(counts, embeddings, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import NMF  # noqa: PLC0415
    from sklearn.feature_extraction.text import TfidfTransformer  # noqa: PLC0415

    tfidf = TfidfTransformer().fit_transform(counts)  # NMF topic models work on TF-IDF, not raw counts
    return NMF(k, init="nndsvda", max_iter=400, random_state=seed).fit_transform(tfidf).argmax(axis=1)


def _kmeans(counts, embeddings, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans  # noqa: PLC0415

    return KMeans(k, n_init=10, random_state=seed).fit_predict(embeddings)


#: Baselines by name: what each clusters, in words.
BASELINES = {"lda": "LDA on the bag-of-words", "nmf": "NMF on TF-IDF", "kmeans": "k-means on the embeddings"}
_BASELINE_FUNCTIONS = {"lda": _lda, "nmf": _nmf, "kmeans": _kmeans}


def baseline(method: str, k: int, *, counts=None, embeddings: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """One cluster per document (no outliers) from a classic method with ``k`` topics: ``lda`` / ``nmf`` need
    ``counts`` (documents × terms), ``kmeans`` needs ``embeddings``."""
    if method not in _BASELINE_FUNCTIONS:
        raise InputError(f"Unknown baseline {method!r}: use one of {', '.join(BASELINES)}.")
    needed = embeddings if method == "kmeans" else counts
    if needed is None:
        raise InputError(f"Baseline {method!r} needs {'embeddings' if method == 'kmeans' else 'counts'}.")
    if k < 2:
        raise InputError(f"A baseline needs k ≥ 2 topics. Got {k}.")
    return np.asarray(_BASELINE_FUNCTIONS[method](counts, embeddings, k, seed), dtype=int)
