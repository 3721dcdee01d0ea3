"""Retrieval: documents to chunks and vectors, answers with citations (rag), text to a knowledge graph (kg).

- :mod:`.chunking` — the one chunker (sections → heading-bounded chunks), shared by rag and kg;
- :mod:`.embeddings` — all-MiniLM-L6-v2 from its wheel, checksummed, with cached vectors;
- :mod:`.rag` — ingest, Milvus index, dense / BM25 / hybrid retrieval, cited answers;
- :mod:`.kg` — triples by an LLM, entity resolution, LadybugDB, graph analytics, graph QA.
"""

from ..lazy import attach

SUBMODULES = ("chunking", "embeddings", "kg", "rag")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
