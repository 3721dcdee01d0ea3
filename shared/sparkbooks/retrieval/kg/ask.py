"""Questions answered from the graph or from the chunks — the same LLM, the same prompt, the same scoring.

*Graph retrieval* links the entities named in a question to nodes (whole-word match, longest
names first), reads the facts on paths of up to ``hops`` edges from them (a fixed traversal, the
names passed as query parameters — never spliced into Cypher), and gives those facts to the LLM as
one numbered passage. *Vector retrieval* gives it the chunks nearest the question. Answers are
scored by :func:`sparkbooks.retrieval.rag.answer.matches` against the key. :func:`ask_cypher` is the other
graph route: the LLM writes Cypher against the declared schema, and the query runs only if
:func:`~sparkbooks.retrieval.kg.store.check_read_only` passes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..chunking import Chunk
from ...llm.client import Endpoint, chat
from ..rag.answer import Answer, answer, matches
from .store import GraphStore, UnsafeQueryError

__all__ = ["Asked", "CYPHER_PROMPT", "CypherAnswer", "ask_cypher", "ask_graph", "ask_vector", "compare", "facts_passage",
           "link_entities", "score"]

CYPHER_PROMPT = (
    "Write one read-only Cypher query that answers the question from this graph. Nodes: (:Entity {name, kind}) where "
    "kind is country, city, continent or currency. Relationships: (:Entity)-[:Fact {relation}]->(:Entity) where "
    "relation is one of capital (country to city), located_in (city to country, country to continent), currency "
    "(country to currency), borders (country to country). Reply with the query only.")


def link_entities(question: str, names: Sequence[str]) -> list[str]:
    """Node names that occur in the question as whole words (case-insensitive); a name inside a longer match is skipped."""
    found: list[tuple[int, int, str]] = []
    lower = question.lower()
    for name in sorted(names, key=len, reverse=True):
        for m in re.finditer(rf"(?<!\w){re.escape(name.lower())}(?!\w)", lower):
            if not any(s <= m.start() and m.end() <= e for s, e, _ in found):
                found.append((m.start(), m.end(), name))
    return [name for _, _, name in sorted(found)]


def facts_passage(facts: Sequence[tuple[int, str, str, str]], entities: Sequence[str]) -> Chunk:
    """The facts as one passage the answer prompt can cite ("Denmark borders Germany.")."""
    words = {"capital": "has the capital", "located_in": "is located in", "currency": "uses the currency",
             "borders": "borders"}
    text = "\n".join(f"{s} {words.get(r, r.replace('_', ' '))} {o}." for _, s, r, o in facts)
    return Chunk("graph#facts", "graph", "facts about " + ", ".join(entities) if entities else "no entity found",
                 None, text or "(no facts)", len(text.split()))


@dataclass
class Asked:
    """An answer and the passages it was given."""

    answer: Answer
    context: list[Chunk]

    @property
    def context_text(self) -> str:
        return " ".join(c.text for c in self.context)


def ask_graph(endpoint: Endpoint, store: GraphStore, question: str, *, names: Sequence[str] | None = None,
              hops: int = 3, limit: int = 30, max_tokens: int = 32, seed: int = 0) -> Asked:
    """Link, traverse, answer: the LLM sees only the facts found within ``hops`` of the question's entities."""
    entities = link_entities(question, names if names is not None else store.names())
    facts = store.neighbourhood(entities, hops=hops, limit=limit) if entities else []
    passage = facts_passage(facts, entities)
    return Asked(answer(endpoint, question, [passage], max_tokens=max_tokens, seed=seed), [passage])


def ask_vector(endpoint: Endpoint, question: str, *, retriever, chunks_by_id: dict[str, Chunk], k: int = 2,
               max_tokens: int = 32, seed: int = 0) -> Asked:
    """The ``k`` nearest chunks (any retriever with ``search(questions, k)``), then the same answer prompt."""
    context = [chunks_by_id[i] for i in retriever.search([question], k).ids[0]]
    return Asked(answer(endpoint, question, context, max_tokens=max_tokens, seed=seed), context)


def compare(questions, methods: dict, *, concurrency: int = 1):
    """Ask every question by every method (``name → function(question) → Asked``); one scored table."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    tables = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for name, method in methods.items():
            replies = list(pool.map(lambda q, m=method: m(q.question), questions))
            tables.append(score(questions, [r.answer for r in replies], [r.context_text for r in replies], method=name))
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


def score(questions, answers: Sequence[Answer], contexts: Sequence[str], *, method: str):
    """One row per question: hops, correct (an accepted answer in the reply as whole words), whether the context
    given held an accepted answer at all (retrieval's share of a miss), refused, seconds."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for q, a, context in zip(questions, answers, contexts, strict=True):
        rows.append({"id": q.id, "hops": q.hops, "method": method,
                     "correct": a.found and matches(a.text, q.answers).contained,
                     "answer_in_context": matches(context, q.answers).contained, "refused": not a.found,
                     "question": q.question, "answer": a.text, "seconds": a.seconds})
    return pd.DataFrame(rows)
