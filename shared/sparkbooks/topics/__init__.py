"""Topics: UMAP + HDBSCAN + c-TF-IDF on embeddings (:mod:`.model`), scored on held-out text (:mod:`.evaluate`)."""

from __future__ import annotations

from ..lazy import attach
from .model import (
    CTfidf,
    TopicModel,
    class_doc_frequency,
    clean_text,
    ctfidf,
    hierarchy_figure,
    keywords,
    name_topics,
    npmi_coherence,
    show,
    top_terms,
    topic_diversity,
    topic_map,
    topics_over_time,
    vectorizer,
)

SUBMODULES = ('evaluate', 'model')
__all__ = sorted([*SUBMODULES, *(n for n in dir() if not n.startswith('_') and n not in ('annotations', 'attach'))])
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
