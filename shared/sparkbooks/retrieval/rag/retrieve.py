"""Dense (Milvus), BM25 (bm25s) and hybrid (reciprocal rank fusion) retrieval, and their scores on an answer key.

Every retriever maps a list of questions to ranked chunk ids. :func:`evaluate` scores rankings
against gold passages: a question is found at the first rank whose chunk contains its gold
passage (any chunk holding it counts, since overlapping chunks and repeated topics hold the same
text), giving recall@k with a Wilson interval and MRR. :func:`holm` adjusts the p-values of several
paired comparisons made on the same questions (Holm, 1979), so "A beats B" survives only when it
would across the whole family of comparisons.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..chunking import Chunk, normalise
from ...exceptions import MissingDependencyError
from ...intervals import mcnemar, wilson
from .index import VectorIndex

__all__ = ["Bm25", "Dense", "Hybrid", "Ranked", "compare", "evaluate", "gold_chunks", "gold_sections", "hits", "holm", "rrf",
           "section_chunks"]


@dataclass
class Ranked:
    """Ranked chunk ids per question and the seconds each query took."""

    ids: list[list[str]]
    seconds: list[float] = field(default_factory=list)

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.seconds, q) * 1000) if self.seconds else float("nan")


class Dense:
    """Nearest chunks in the vector index to the embedded question (one query at a time, as a user asks).

    Questions go through ``embed.query`` when the embedder has one (a served asymmetric model needs
    ``input_type="query"`` or its query instruction); otherwise through ``embed`` itself.
    """

    name = "dense"

    def __init__(self, index: VectorIndex, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.index = index
        self.embed = getattr(embed, "query", embed)

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


def gold_sections(sections: Sequence, passages: Mapping[str, str | None]) -> dict[str, set[tuple[str, str]]]:
    """For each question id, the ``(document, heading)`` sections whose text holds its gold passage.

    Keyed by section, not chunk, the answer key does not depend on the chunker: any chunk size scores
    (a gold passage a chunk boundary splits is still found in its section). Sections of one document
    under one heading (PDF pages) are joined first, as the chunker joins them.
    """
    joined: dict[tuple[str, str], list[str]] = {}
    for s in sections:
        joined.setdefault((s.doc, s.heading), []).append(s.text)
    texts = [(key, normalise(" ".join(parts))) for key, parts in joined.items()]
    return {qid: {key for key, text in texts if passage and normalise(passage) in text} for qid, passage in passages.items()}


def section_chunks(chunks: Sequence[Chunk], keys: Mapping[str, set[tuple[str, str]]]) -> dict[str, set[str]]:
    """For each question id, the ids of the chunks cut from its gold sections (see :func:`gold_sections`)."""
    by_section: dict[tuple[str, str], set[str]] = {}
    for c in chunks:
        by_section.setdefault((c.doc, c.heading), set()).add(c.id)
    return {qid: set().union(*(by_section.get(k, set()) for k in ks)) if ks else set() for qid, ks in keys.items()}


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


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values (step-down, kept monotone), by the same keys.

    >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
    {'a': 0.03, 'c': 0.06, 'b': 0.06}
    """
    order = sorted(p_values, key=lambda name: p_values[name])
    adjusted, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * float(p_values[name])))
        adjusted[name] = round(running, 12)
    return adjusted


def compare(ranked: Mapping[str, Ranked], question_ids: Sequence[str], gold: Mapping[str, set[str]], *,
            pairs: Sequence[tuple[str, str]], ks: Sequence[int] = (1, 5), alpha: float = 0.05):
    """Every pair of retrievers at every k by the exact McNemar test, p-values Holm-adjusted across the whole table.

    Returns a DataFrame, one row per (k, a, b): discordant counts, raw and adjusted p, and the verdict
    the adjusted p gives ("a better", "b better" or "no difference").
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for k in ks:
        right = {name: hits(rk, question_ids, gold, k=k) for name, rk in ranked.items()}
        for a, b in pairs:
            test = mcnemar(right[a], right[b])
            rows.append({"k": k, "a": a, "b": b, "only_a": test.only_a, "only_b": test.only_b, "p": test.p_value})
    adjusted = holm({i: r["p"] for i, r in enumerate(rows)})
    for i, row in enumerate(rows):
        row["p_holm"] = adjusted[i]
        better = row["a"] if row["only_a"] > row["only_b"] else row["b"]
        row["verdict"] = f"{better} better" if adjusted[i] < alpha else "no difference"
    return pd.DataFrame(rows)
