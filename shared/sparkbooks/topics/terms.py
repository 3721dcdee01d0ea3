"""Class-based TF-IDF: the words that describe each cluster, by one rule for every pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CTfidf", "class_doc_frequency", "ctfidf", "keywords", "top_terms"]


@dataclass(frozen=True)
class CTfidf:
    """Class-based TF-IDF weights (sparse, classes × terms) and the class of each row."""

    weights: object
    classes: np.ndarray


def ctfidf(counts, labels: np.ndarray) -> CTfidf:
    """Class-based TF-IDF: one row per class in ``np.unique(labels)`` order, one column per term.

    ``W[c, t] = tf[c, t] · log(1 + A / f[t])`` with ``tf`` the class's L1-normalised term counts,
    ``A`` the mean number of words per class and ``f[t]`` the term's count over all classes —
    the weighting of BERTopic (Grootendorst 2022). ``counts`` is a documents × terms sparse matrix.
    Returns the weights (sparse, classes × terms) and the class of each row.
    """
    import scipy.sparse as sp  # noqa: PLC0415
    from sklearn.preprocessing import normalize  # noqa: PLC0415

    classes, index = np.unique(labels, return_inverse=True)
    membership = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(len(classes), len(index)))
    per_class = (membership @ counts).tocsr().astype(np.float64)
    term_total = np.asarray(per_class.sum(axis=0)).ravel()
    mean_words = per_class.sum() / len(classes)
    idf = np.log1p(mean_words / np.maximum(term_total, 1.0))
    return CTfidf(normalize(per_class, norm="l1", axis=1) @ sp.diags(idf), classes)


def class_doc_frequency(counts, labels: np.ndarray):
    """In how many of each class's documents each term occurs (sparse, classes in ``np.unique`` order × terms)."""
    import scipy.sparse as sp  # noqa: PLC0415

    classes, index = np.unique(labels, return_inverse=True)
    membership = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(len(classes), len(index)))
    return (membership @ (counts > 0).astype(np.float64)).tocsr()


def top_terms(weights, vocabulary: np.ndarray, n: int = 10) -> list[list[str]]:
    """The ``n`` highest-weighted terms of each row of ``weights`` (ties broken by term order)."""
    dense = weights.toarray() if hasattr(weights, "toarray") else np.asarray(weights)
    order = np.argsort(-dense, axis=1, kind="stable")[:, :n]
    return [[str(vocabulary[j]) for j in row if dense[i, j] > 0] for i, row in enumerate(order)]


def keywords(counts, labels: np.ndarray, vocabulary: np.ndarray, *, top_n: int = 10,
             min_word_docs: int = 1) -> dict[int, list[str]]:
    """The ``top_n`` c-TF-IDF words of each cluster (outliers, label −1, excluded): the one keyword rule,
    whichever pipeline made the clusters — so that two pipelines are scored alike.

    ``min_word_docs`` > 1 keeps only words found in at least that many of the cluster's documents
    (a word from one document describes that document, not the topic); lists can then be shorter.
    """
    keyed = ctfidf(counts, labels)
    weights = keyed.weights
    if min_word_docs > 1:
        weights = weights.multiply(class_doc_frequency(counts, labels) >= min_word_docs).tocsr()
    words = top_terms(weights, vocabulary, top_n)
    return {int(c): w for c, w in zip(keyed.classes, words) if c >= 0}
