"""Dense (Milvus), BM25 (bm25s) and hybrid (reciprocal rank fusion) retrieval, and their scores on an answer key.

Every retriever maps a list of questions to ranked chunk ids. :func:`evaluate` scores rankings
against gold passages: a question is found at the first rank whose chunk contains its gold
passage (any chunk holding it counts, since overlapping chunks and repeated topics hold the same
text), giving recall@k with a Wilson interval and MRR.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..chunking import Chunk, normalise
from ...exceptions import MissingDependencyError
from ...intervals import wilson
from .index import VectorIndex

__all__ = ["Bm25", "Dense", "Hybrid", "Ranked", "evaluate", "gold_chunks", "hits", "rrf"]


@dataclass
class Ranked:
    """Ranked chunk ids per question and the seconds each query took."""

    ids: list[list[str]]
    seconds: list[float] = field(default_factory=list)

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.seconds, q) * 1000) if self.seconds else float("nan")


class Dense:
    """Nearest chunks in the vector index to the embedded question (one query at a time, as a user asks)."""

    name = "dense"

    def __init__(self, index: VectorIndex, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.index, self.embed = index, embed

    def search(self, questions: Sequence[str], k: int = 10) -> Ranked:
        out = Ranked([])
        for question in questions:
            start = time.perf_counter()
            hits = self.index.search(self.embed([question]), k)[0]
            out.seconds.append(time.perf_counter() - start)
            out.ids.append([h for h, _ in hits])
        return out


class Bm25:
    """Okapi BM25 over the chunks' indexed text (bm25s: English stop words, no stemmer)."""

    name = "bm25"

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        try:
            import bm25s  # noqa: PLC0415
        except ImportError:
            raise MissingDependencyError("bm25s is not installed: `pip install -e '.[rag]'`.") from None

        self._bm25s = bm25s
        self.ids = [c.id for c in chunks]
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize([c.indexed_text for c in chunks], stopwords="en", show_progress=False),
                             show_progress=False)

    def search(self, questions: Sequence[str], k: int = 10) -> Ranked:
        out = Ranked([])
        k = min(k, len(self.ids))
        for question in questions:
            start = time.perf_counter()
            tokens = self._bm25s.tokenize([question], stopwords="en", show_progress=False)
            docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
            out.seconds.append(time.perf_counter() - start)
            out.ids.append([self.ids[int(d)] for d, s in zip(docs[0], scores[0]) if s > 0])
        return out


def rrf(rankings: Sequence[Sequence[str]], *, k: int = 60, limit: int = 10) -> list[str]:
    """Reciprocal rank fusion (Cormack et al., 2009): score = Σ 1 / (k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))[:limit]


class Hybrid:
    """Dense and BM25 fused by reciprocal rank (each asked for ``depth`` candidates)."""

    name = "hybrid"

    def __init__(self, *retrievers, depth: int = 30, k_rrf: int = 60) -> None:
        self.retrievers, self.depth, self.k_rrf = retrievers, depth, k_rrf

    def search(self, questions: Sequence[str], k: int = 10) -> Ranked:
        out = Ranked([])
        for question in questions:
            start = time.perf_counter()
            lists = [r.search([question], self.depth).ids[0] for r in self.retrievers]
            out.ids.append(rrf(lists, k=self.k_rrf, limit=k))
            out.seconds.append(time.perf_counter() - start)
        return out


def gold_chunks(chunks: Sequence[Chunk], passages: Mapping[str, str | None]) -> dict[str, set[str]]:
    """For each question id, the ids of the chunks containing its gold passage (empty for unanswerable ones)."""
    texts = [(c.id, normalise(c.text)) for c in chunks]
    out = {}
    for qid, passage in passages.items():
        needle = normalise(passage) if passage else None
        out[qid] = {cid for cid, text in texts if needle and needle in text}
    return out


def evaluate(ranked: Ranked, question_ids: Sequence[str], gold: Mapping[str, set[str]], *,
             ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """recall@k (with 95% Wilson bounds), MRR and p50/p95 query latency over the answerable questions."""
    ranks = []
    for qid, ids in zip(question_ids, ranked.ids):
        if not gold[qid]:
            continue  # unanswerable: nothing to find
        ranks.append(next((r for r, i in enumerate(ids, start=1) if i in gold[qid]), None))
    n = len(ranks)
    row: dict[str, float] = {"questions": n}
    for k in ks:
        hits = sum(1 for r in ranks if r is not None and r <= k)
        interval = wilson(hits, n)
        row[f"recall@{k}"], row[f"recall@{k} low"], row[f"recall@{k} high"] = hits / n, interval.low, interval.high
    row["MRR"] = sum(1 / r for r in ranks if r) / n
    row["p50 ms"], row["p95 ms"] = ranked.latency_ms(50), ranked.latency_ms(95)
    return row


def hits(ranked: Ranked, question_ids: Sequence[str], gold: Mapping[str, set[str]], *, k: int) -> list[bool]:
    """For each answerable question (in order), whether a gold chunk is in the top ``k``: for paired tests."""
    return [bool(gold[q] & set(ids[:k])) for q, ids in zip(question_ids, ranked.ids) if gold[q]]
