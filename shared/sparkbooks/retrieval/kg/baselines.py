"""The trivial systems a knowledge graph must beat: the LLM with no context, and a resolver that merges nothing.

* :func:`closed_book` — the question alone to the same LLM (no graph facts, no chunks), as an :class:`~.ask.Asked`
  with an empty context, so :func:`.ask.compare` scores it beside graph and vector retrieval. The key's facts are
  real-world ones (capitals, currencies, neighbours): what the closed book gets right the model knew already.
* :func:`null_resolver` — every surface form its own entity: what entity resolution is measured against.
* :func:`pairwise_scores` — a resolver judged as entity resolution is judged (pairwise precision, recall, F1): over
  every pair of distinct surface forms (after :func:`.resolve.surface_key`) whose entity the answer key knows, a
  pair is *true* when the key maps both to one entity and *predicted* when the resolver puts them in one cluster.
  Missed merges lower recall; the key judges pairs, it never maps a name at scoring time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import combinations

from ...llm.client import Endpoint
from ..rag.baselines import closed_book_answers
from .ask import Asked
from .gold import name_key
from .resolve import Resolver, surface_key

__all__ = ["closed_book", "null_resolver", "pairwise_scores"]


def closed_book(endpoint: Endpoint, question: str, *, max_tokens: int = 32, seed: int = 0) -> Asked:
    """The LLM's answer to ``question`` with nothing retrieved (the ``rag`` closed-book prompt), context empty."""
    reply = closed_book_answers(endpoint, [{"question": question}], max_tokens=max_tokens, seed=seed)[0]
    return Asked(reply, [])


def null_resolver(surfaces: Iterable[str]) -> Resolver:
    """A resolver that merges nothing: each surface form (after :func:`.resolve.surface_key`) is its own entity."""
    counts = Counter(s.strip() for s in surfaces if s.strip())
    names: dict[str, str] = {}
    for s, _ in counts.most_common():
        names.setdefault(surface_key(s), s)
    return Resolver({k: k for k in names}, names, [])


def pairwise_scores(resolver: Resolver, surfaces: Iterable[str], key: Mapping[str, str]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of ``resolver`` over the ``surfaces`` the answer ``key`` knows.

    ``key`` maps a normalised surface form (:func:`.gold.name_key`) to its entity. With no predicted pair precision
    is 1 (nothing wrong was merged); with no true pair recall is 1 (nothing was there to merge).
    """
    known: dict[str, str] = {}
    for s in surfaces:
        k, entity = surface_key(s), key.get(name_key(s))
        if k and entity is not None:
            known.setdefault(k, entity)
    cluster = {k: resolver.clusters.get(k, k) for k in known}
    true = predicted = right = 0
    for a, b in combinations(sorted(known), 2):
        same_entity, same_cluster = known[a] == known[b], cluster[a] == cluster[b]
        true += same_entity
        predicted += same_cluster
        right += same_entity and same_cluster
    precision = right / predicted if predicted else 1.0
    recall = right / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"surfaces": len(known), "true_pairs": true, "predicted_pairs": predicted, "right_pairs": right,
            "missed_merges": true - right, "wrong_merges": predicted - right, "precision": precision,
            "recall": recall, "f1": f1}
