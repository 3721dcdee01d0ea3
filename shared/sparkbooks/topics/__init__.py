"""Topics: UMAP + HDBSCAN + c-TF-IDF on embeddings, split by job.

- :mod:`.text` — cleaning and the bag-of-words every step reads;
- :mod:`.terms` — class-based TF-IDF and the keyword rule;
- :mod:`.model` — :class:`TopicModel` (neighbours, UMAP, HDBSCAN, keywords);
- :mod:`.merge` — merging similar topics, reassigning outliers;
- :mod:`.naming` — topic names from an LLM;
- :mod:`.plots` — the documents' map, the merge tree, topics over time;
- :mod:`.evaluate` — NPMI coherence, diversity, agreement with labels, baselines, on held-out text;
- :mod:`.compare` — the pipeline against k-means at the same k on texts without topical labels;
- :mod:`.scale` — a corpus too large to fit whole: fit a sample, label the rest (live, and the 1M record);
- :mod:`.full_size` — fewer topics at full size: the reduction record, merged against a coarser HDBSCAN and BERTopic.
"""

from __future__ import annotations

from ..lazy import attach
from .evaluate import npmi_coherence, topic_diversity
from .model import TopicModel
from .naming import name_topics
from .plots import hierarchy_figure, show, topic_map, topics_over_time
from .terms import CTfidf, class_doc_frequency, ctfidf, keywords, top_terms
from .text import clean_text, vectorizer

SUBMODULES = ("compare", "evaluate", "full_size", "merge", "model", "naming", "plots", "scale", "terms", "text")
__all__ = sorted({*SUBMODULES,
                  *(n for n in dir() if not n.startswith("_") and n not in ("annotations", "attach", "SUBMODULES"))})
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
