"""Questions answered from the graph or from the chunks — the same LLM, the same prompt, the same token budget, scored alike.

*Graph retrieval* (:class:`GraphRetriever`) links the entities a question names to nodes by
**embedding similarity** — each span of the question against every node name, as GraphRAG's local
search links a query to entities — never by the key's own spelling; reads the facts on paths of up to
``hops`` edges from them (a fixed traversal, names passed as query parameters, never spliced into
Cypher), ranks them nearest first and, within a hop, by similarity to the question, and keeps as many
as fit ``budget_tokens``. *Vector retrieval* (:func:`vector_context`) fills **the same budget** with
the chunks nearest the question, the last one cut to fit. Each reply is scored by :func:`score`
(:mod:`.answer_scores`, whose names are importable from here too): right when it names the answer and no
rival of the same kind, plus **supporting-path recall**, as HotpotQA scores supporting facts.
:func:`ask_cypher` is the other graph route: the LLM writes Cypher against the declared schema, and the query runs only if
:func:`~sparkbooks.retrieval.kg.store.check_read_only` passes it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..chunking import Chunk
from ...llm.client import Endpoint, chat
from ..rag.answer import Answer, answer
from .answer_scores import comparisons, contains, holm, score, summarise, support_recall
from .gold import Question
from .store import GraphStore, UnsafeQueryError

__all__ = ["Asked", "CYPHER_PROMPT", "CypherAnswer", "GraphRetriever", "ask_cypher", "ask_graph", "ask_vector",
           "compare", "comparisons", "contains", "facts_passage", "holm", "link_entities", "score", "summarise",
           "support_recall", "vector_context"]

CYPHER_PROMPT = (
    "Write one read-only Cypher query that answers the question from this graph. Nodes: (:Entity {name, kind}) where "
    "kind is country, city, continent or currency. Relationships: (:Entity)-[:Fact {relation}]->(:Entity) where "
    "relation is one of capital (country to city), located_in (city to country, country to continent), currency "
    "(country to currency), borders (country to country). Reply with the query only.")
_WORDS = {"capital": "has the capital", "located_in": "is located in", "currency": "uses the currency",
          "borders": "borders"}


def link_entities(question: str, names: Sequence[str]) -> list[str]:
    """Node names that occur in the question as whole words (case-insensitive); a name inside a longer match is skipped."""
    found: list[tuple[int, int, str]] = []
    lower = question.lower()
    for name in sorted(names, key=len, reverse=True):
        for m in re.finditer(rf"(?<!\w){re.escape(name.lower())}(?!\w)", lower):
            if not any(s <= m.start() and m.end() <= e for s, e, _ in found):
                found.append((m.start(), m.end(), name))
    return [name for _, _, name in sorted(found)]


def _sentence(subject: str, relation: str, obj: str) -> str:
    return f"{subject} {_WORDS.get(relation, relation.replace('_', ' '))} {obj}."


def facts_passage(facts: Sequence[tuple[int, str, str, str]], entities: Sequence[str]) -> Chunk:
    """The facts as one passage the answer prompt can cite ("Denmark borders Germany.")."""
    text = "\n".join(_sentence(s, r, o) for _, s, r, o in facts)
    count = len(text.split())
    return Chunk("graph#facts", "graph", "facts about " + ", ".join(entities) if entities else "no entity found",
                 None, text or "(no facts)", count)


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class Asked:
    """An answer, the passages it was given, the graph facts among them, and the context's size in tokens."""

    answer: Answer
    context: list[Chunk]
    facts: list[tuple[int, str, str, str]] = field(default_factory=list)
    tokens: int = 0
    entities: list[str] = field(default_factory=list)

    @property
    def context_text(self) -> str:
        return " ".join(c.text for c in self.context)


class GraphRetriever:
    """Entity linking by embedding similarity, a ``hops``-edge traversal, and the facts that fit ``budget_tokens``.

    ``embed`` (texts → unit vectors) links every 1–``max_words``-word span of the question to its most similar node
    name when the cosine is at least ``threshold`` (spans may not overlap; the best first); without ``embed`` names
    are linked by whole-word match (:func:`link_entities`). ``count`` measures tokens (``None``: words).
    """

    def __init__(self, store: GraphStore, *, embed: Callable[[Sequence[str]], np.ndarray] | None = None,
                 hops: int = 3, budget_tokens: int | None = None, limit: int = 30, threshold: float = 0.8,
                 max_words: int = 5, count: Callable[[str], int] | None = None) -> None:
        self.store, self.embed, self.hops, self.budget, self.limit = store, embed, hops, budget_tokens, limit
        self.threshold, self.max_words, self.count = threshold, max_words, count or _words
        self.names = store.names()
        self._name_vectors = embed(self.names) if embed is not None and self.names else None
        self._fact_vectors: dict[str, np.ndarray] = {}

    def link(self, question: str) -> list[str]:
        """The nodes the question names, in the order it names them."""
        if self._name_vectors is None:
            return link_entities(question, self.names)
        words = re.findall(r"[\w'’.-]+", question)
        words = [w.strip(".") for w in words]
        spans = [(i, j, " ".join(words[i:j])) for i in range(len(words))
                 for j in range(i + 1, min(len(words), i + self.max_words) + 1)]
        if not spans:
            return []
        sims = self.embed([text for _, _, text in spans]) @ self._name_vectors.T
        best = sims.argmax(axis=1)
        ranked = sorted(((float(sims[n, best[n]]), n) for n in range(len(spans))), reverse=True)
        taken: list[tuple[int, int, str]] = []
        for sim, n in ranked:
            i, j, _ = spans[n]
            if sim < self.threshold:
                break
            name = self.names[best[n]]
            if all(j <= a or i >= b for a, b, _ in taken) and name not in {t[2] for t in taken}:
                taken.append((i, j, name))
        return [name for _, _, name in sorted(taken)]

    def _rank(self, question: str, facts: list[tuple[int, str, str, str]]) -> list[tuple[int, str, str, str]]:
        """Nearest hop first; within a hop, the facts most similar to the question first (alphabetical without ``embed``)."""
        if self.embed is None or not facts:
            return facts
        sentences = [_sentence(s, r, o) for _, s, r, o in facts]
        new = [t for t in dict.fromkeys(sentences) if t not in self._fact_vectors]
        if new:
            self._fact_vectors.update(zip(new, self.embed(new)))
        q = self.embed([question])[0]
        sim = {t: float(self._fact_vectors[t] @ q) for t in sentences}
        return [f for _, f in sorted(zip(sentences, facts), key=lambda x: (x[1][0], -sim[x[0]]))]

    def __call__(self, question: str) -> tuple[Chunk, list[tuple[int, str, str, str]], list[str]]:
        entities = self.link(question)
        limit = self.limit if self.budget is None else 100_000
        facts = self._rank(question, self.store.neighbourhood(entities, hops=self.hops, limit=limit)) if entities else []
        if self.budget is not None:
            kept, used = [], 0
            for f in facts:
                cost = self.count(_sentence(*f[1:])) + 1  # the line break between facts
                if used + cost > self.budget:
                    continue  # a shorter fact further down may still fit (the order is the priority)
                kept.append(f)
                used += cost
            facts = kept
        return facts_passage(facts, entities), facts, entities


def ask_graph(endpoint: Endpoint, store: GraphStore | GraphRetriever, question: str, *, names: Sequence[str] | None = None,
              hops: int = 3, limit: int = 30, max_tokens: int = 32, seed: int = 0) -> Asked:
    """Link, traverse, answer: the LLM sees only the facts found within ``hops`` of the question's entities.

    ``store`` is a :class:`GraphRetriever` (embedding linking, token budget) or a bare store (whole-word linking against
    ``names`` or every node, the ``limit`` nearest facts)."""
    retriever = store if isinstance(store, GraphRetriever) else GraphRetriever(store, hops=hops, limit=limit)
    if names is not None:
        retriever.names = list(names)
    passage, facts, entities = retriever(question)
    tokens = retriever.count(passage.text) if facts else 0
    return Asked(answer(endpoint, question, [passage], max_tokens=max_tokens, seed=seed), [passage], facts, tokens,
                 entities)


def vector_context(question: str, *, retriever, chunks_by_id: Mapping[str, Chunk], k: int = 2,
                   budget_tokens: int | None = None, count: Callable[[str], int] | None = None) -> list[Chunk]:
    """The ``k`` nearest chunks; with ``budget_tokens``, as many nearest chunks as fill it, the last one cut to fit."""
    if budget_tokens is None:
        return [chunks_by_id[i] for i in retriever.search([question], k).ids[0]]
    count = count or _words
    out, used = [], 0
    for i in retriever.search([question], min(len(chunks_by_id), 32)).ids[0]:
        c = chunks_by_id[i]
        cost = count(c.text)
        if used + cost <= budget_tokens:
            out.append(c)
            used += cost
            continue
        words = c.text.split()
        low, high = 0, len(words)  # the longest prefix that fits what is left
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if count(" ".join(words[:mid])) <= budget_tokens - used else (low, mid - 1)
        if low:
            out.append(dataclasses.replace(c, text=" ".join(words[:low]), tokens=low))
        break
    return out


def ask_vector(endpoint: Endpoint, question: str, *, retriever, chunks_by_id: dict[str, Chunk], k: int = 2,
               budget_tokens: int | None = None, count: Callable[[str], int] | None = None,
               max_tokens: int = 32, seed: int = 0) -> Asked:
    """The nearest chunks (``k``, or as many as fill ``budget_tokens``), then the same answer prompt."""
    context = vector_context(question, retriever=retriever, chunks_by_id=chunks_by_id, k=k, budget_tokens=budget_tokens,
                             count=count)
    tokens = sum((count or _words)(c.text) for c in context)
    return Asked(answer(endpoint, question, context, max_tokens=max_tokens, seed=seed), context, tokens=tokens)


def compare(questions, methods: dict, *, concurrency: int = 1, rivals: Mapping[str, Sequence[str]] | None = None,
            support: Mapping[str, Callable[[Question, Asked], float]] | None = None):
    """Ask every question by every method (``name → function(question) → Asked``); one scored table (see :func:`score`)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    tables = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for name, method in methods.items():
            replies = list(pool.map(lambda q, m=method: m(q.question), questions))
            tables.append(score(questions, replies, method=name, rivals=rivals, support=(support or {}).get(name)))
    return pd.concat(tables, ignore_index=True)


@dataclass
class CypherAnswer:
    question: str
    query: str
    refused: str  # why the query was refused before running ('' when it ran)
    error: str  # the database's error when it ran and failed
    rows: list

    @property
    def text(self) -> str:
        return "; ".join(str(v) for row in self.rows for v in row)


def ask_cypher(endpoint: Endpoint, store: GraphStore, question: str, *, max_tokens: int = 96,
               seed: int = 0) -> CypherAnswer:
    """The LLM writes Cypher; it runs only if it is one read-only statement; errors are returned, not raised."""
    reply = chat(endpoint, [{"role": "system", "content": CYPHER_PROMPT}, {"role": "user", "content": question}],
                 max_tokens=max_tokens, seed=seed)
    query = re.sub(r"^```\w*|```$", "", reply.text.strip()).strip()
    try:
        table = store.query(query)
    except UnsafeQueryError as exc:
        return CypherAnswer(question, query, str(exc), "", [])
    except RuntimeError as exc:  # the database refused it: a syntax or binder error
        return CypherAnswer(question, query, "", str(exc).splitlines()[0], [])
    return CypherAnswer(question, query, "", "", table.head(5).values.tolist())
