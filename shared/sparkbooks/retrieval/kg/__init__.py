"""Text to knowledge graph: chunks → triples (schema-constrained, evidence-checked) → resolved entities → LadybugDB → networkx → questions.

* :mod:`~sparkbooks.retrieval.kg.gold` — passages written from GeoNames facts, their gold triples and 1–3-hop questions;
* :mod:`~sparkbooks.retrieval.kg.extract` — triples by an LLM under a JSON schema, each checked against its evidence quote;
* :mod:`~sparkbooks.retrieval.kg.resolve` — entity resolution (string rules, then MiniLM similarity) and triple scores;
* :mod:`~sparkbooks.retrieval.kg.store` — :class:`GraphStore` on LadybugDB (embedded Cypher), read-only query check;
* :mod:`~sparkbooks.retrieval.kg.graph` — PageRank, communities, degrees (nx-cugraph on a GPU), interactive and static pictures;
* :mod:`~sparkbooks.retrieval.kg.ask` — answers from graph facts or from chunks, the same budget for both;
* :mod:`~sparkbooks.retrieval.kg.answer_scores` — those answers scored alike: rivals, supporting-path recall, comparisons.

Chunking is :mod:`sparkbooks.retrieval.chunking`, shared with ``rag``.
"""

from __future__ import annotations

from . import answer_scores, ask, baselines, extract, gold, graph, resolve, store
from .store import GraphStore, UnsafeQueryError, check_read_only

__all__ = ["GraphStore", "UnsafeQueryError", "answer_scores", "ask", "baselines", "check_read_only", "extract", "gold", "graph", "resolve", "store"]
