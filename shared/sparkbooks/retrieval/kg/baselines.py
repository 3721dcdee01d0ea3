"""The trivial systems a knowledge graph must beat: the LLM with no context, and a resolver that merges nothing.

* :func:`closed_book` — the question alone to the same LLM (no graph facts, no chunks), as an :class:`~.ask.Asked`
  with an empty context, so :func:`.ask.compare` scores it beside graph and vector retrieval. The key's facts are
  real-world ones (capitals, currencies, neighbours): what the closed book gets right the model knew already.
* :func:`null_resolver` — every surface form its own entity: what entity resolution is measured against.
* :func:`pairwise_scores` — a resolver judged as entity resolution is judged (pairwise precision, recall, F1): over
  every pair of distinct surface forms (after :func:`.resolve.surface_key`) whose entity the answer key knows, a
  pair is *true* when the key maps both to one entity and *predicted* when the resolver puts them in one cluster.
  Missed merges lower recall; the key judges pairs, it never maps a name at scoring time.
* :func:`resolution_scores` — resolvers judged on **every surface form the key lists** for the scored text (names,
  ISO-3 codes, each currency's three spellings), whatever the extractor happened to write: merging nothing, the
  string rules, the rules with the aliases the text declares, and those with MiniLM similarity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations

from ...llm.client import Endpoint
from ..rag.baselines import closed_book_answers
from .ask import Asked
from .gold import name_key
from .resolve import Resolver, resolve, surface_key

__all__ = ["closed_book", "null_resolver", "pairwise_scores", "resolution_scores"]


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
    is NaN, with no true pair recall is NaN (nothing to judge, not a perfect score); F1 = 2·right / (true + predicted),
    NaN only when there is neither.
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
    precision = right / predicted if predicted else float("nan")
    recall = right / true if true else float("nan")
    f1 = 2 * right / (true + predicted) if true + predicted else float("nan")  # the harmonic mean, defined with either
    return {"surfaces": len(known), "true_pairs": true, "predicted_pairs": predicted, "right_pairs": right,
            "missed_merges": true - right, "wrong_merges": predicted - right, "precision": precision,
            "recall": recall, "f1": f1}


def resolution_scores(surfaces: Mapping[str, str], *, texts: Sequence[str] = (),
                      embed: Callable[[Sequence[str]], object] | None = None, threshold: float = 0.92):
    """Pairwise scores of four resolvers over ``surfaces`` (each form the text writes → its entity, as
    :attr:`.gold.KnowledgeBase.surfaces`): one row each, with the resolvers themselves in ``.attrs["resolvers"]``."""
    import pandas as pd  # noqa: PLC0415

    key = {name_key(s): e for s, e in surfaces.items()}
    forms = list(surfaces)
    resolvers = {"merges nothing": null_resolver(forms), "string rules": resolve(forms),
                 "rules + text's aliases": resolve(forms, texts=texts)}
    if embed is not None:
        resolvers["rules + aliases + MiniLM"] = resolve(forms, texts=texts, embed=embed, threshold=threshold)
    table = pd.DataFrame({name: pairwise_scores(r, forms, key) for name, r in resolvers.items()}).T
    table.attrs["resolvers"] = resolvers
    return table
