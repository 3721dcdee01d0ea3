"""Merging topics: similar topics joined (to a count or a distance), outliers moved to their nearest topic.

Both return a copy of the model with keywords recomputed by :func:`~sparkbooks.topics.keywords`; the model
itself is left as it was. :meth:`TopicModel.reduce` and :meth:`TopicModel.reassign_outliers` call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..exceptions import InputError
from .terms import ctfidf, keywords

if TYPE_CHECKING:
    from .model import TopicModel

__all__ = ["reassign_outliers", "reduce_topics"]


def reduce_topics(model: TopicModel, embeddings: np.ndarray, *, n_topics: int | None = None,
                  distance: float | None = None, by: str = "embeddings") -> TopicModel:
    """A copy with similar topics merged — to ``n_topics`` topics, or every merge closer than ``distance``.

    Topics are joined by average-linkage agglomeration (cosine distance) of their centroid
    embeddings (``by="embeddings"``, as BERTopic's ``reduce_topics`` joins topic embeddings) or of
    their c-TF-IDF word weights (``by="words"``, BERTopic's ``use_ctfidf=True``); keywords are recomputed by the same rule
    on the merged topics, outliers stay outliers, and new topic numbers run from the largest (0).
    The copy keeps ``hierarchy_`` (scipy's linkage matrix over the original topics, for
    :func:`hierarchy_figure`), ``merged_`` (original topic → new topic), ``parent_topics_`` and
    ``parent_words_`` (the original topics and their keywords).
    ``model`` is left as it was.
    """
    import copy  # noqa: PLC0415

    from scipy.cluster.hierarchy import fcluster, linkage  # noqa: PLC0415

    if (n_topics is None) == (distance is None):
        raise InputError("reduce needs exactly one of n_topics (a target count) or distance (a cosine distance cut).")
    if n_topics is not None and not 1 <= n_topics:
        raise InputError(f"n_topics={n_topics}: ask for at least one topic.")
    if by not in ("embeddings", "words"):
        raise InputError(f"by={by!r}: merge by 'embeddings' (topic centroids) or 'words' (c-TF-IDF weights).")
    original = sorted(model.topic_words_)
    if len(original) < 2:
        raise InputError(f"{len(original)} topic(s): nothing to merge.")
    if by == "embeddings":
        centres = model.centroids(embeddings)
        points = np.stack([centres[t] for t in original])
    else:
        keyed = ctfidf(model.counts_, model.labels_)
        rows = {int(c): i for i, c in enumerate(keyed.classes)}
        points = keyed.weights[[rows[t] for t in original]].toarray()
    tree = linkage(points, method="average", metric="cosine")
    groups = (fcluster(tree, t=n_topics, criterion="maxclust") if n_topics is not None
              else fcluster(tree, t=distance, criterion="distance"))
    group_of = dict(zip(original, groups.tolist()))
    sizes: dict[int, int] = {}
    for topic, group in group_of.items():
        sizes[group] = sizes.get(group, 0) + int((model.labels_ == topic).sum())
    order = sorted(sizes, key=lambda g: (-sizes[g], g))
    renumber = {g: i for i, g in enumerate(order)}
    merged = {t: renumber[g] for t, g in group_of.items()}
    reduced = copy.copy(model)
    reduced.labels_ = np.array([merged.get(int(label), -1) for label in model.labels_], dtype=int)
    reduced.topic_words_ = keywords(model.counts_, reduced.labels_, model.vocabulary_, top_n=model.top_n,
                                    min_word_docs=model.min_word_docs)
    reduced.hierarchy_, reduced.parent_topics_, reduced.merged_ = tree, original, merged
    reduced.parent_words_ = {t: model.topic_words_[t] for t in original}
    return reduced


def reassign_outliers(model: TopicModel, embeddings: np.ndarray, *, threshold: float = 0.5) -> TopicModel:
    """A copy in which each outlier joins the topic whose centroid is most similar (cosine ≥ ``threshold``).

    HDBSCAN leaves documents it cannot place confidently as outliers (−1); users usually want
    most of them in a topic. ``threshold`` keeps the ones unlike every topic out. Keywords are
    recomputed; ``reassigned_`` counts the moved documents.
    """
    import copy  # noqa: PLC0415

    if not -1.0 <= threshold <= 1.0:
        raise InputError(f"threshold={threshold}: a cosine similarity lies in [-1, 1].")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    centres = model.centroids(embeddings)
    topics_, matrix = list(centres), np.stack(list(centres.values()))
    outliers = np.flatnonzero(model.labels_ < 0)
    unit = embeddings[outliers] / np.maximum(np.linalg.norm(embeddings[outliers], axis=1, keepdims=True), 1e-12)
    similarity = unit @ matrix.T
    best = similarity.argmax(axis=1)
    moved = similarity[np.arange(len(outliers)), best] >= threshold
    out = copy.copy(model)
    out.labels_ = model.labels_.copy()
    out.labels_[outliers[moved]] = np.array(topics_)[best[moved]]
    out.topic_words_ = keywords(model.counts_, out.labels_, model.vocabulary_, top_n=model.top_n,
                                min_word_docs=model.min_word_docs)
    out.reassigned_ = int(moved.sum())
    return out
