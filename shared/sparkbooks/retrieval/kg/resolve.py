"""Entity resolution — surface forms to one node each — and triple scores against the answer key after it.

Two stages, each reported: string rules (case, "the", punctuation, and aliases the text itself
declares — "Canada (CAN)" makes CAN another name of Canada, "BND dollar" a name of the currency
written "Dollar (BND)"), then embedding similarity (MiniLM, cosine ≥ ``threshold``) between the
names the rules left apart, merged transitively. Embeddings merge spelling variants and also names
that only look alike (Niger and Nigeria): the key counts those as wrong merges.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .gold import Triple, name_key

__all__ = ["Resolver", "resolve", "score_merges", "score_triples", "surface_key"]

_CODE_AFTER = re.compile(r"^(?P<name>.+?)\s*\((?P<code>[A-Z]{2,4})\)$")  # "Dollar (BND)", "Canada (CAN)"
_CODE_BEFORE = re.compile(r"^(?P<code>[A-Z]{3})\s+(?P<name>[a-z].*)$")  # "BND dollar"


def surface_key(name: str) -> str:
    """Case, a leading "the", punctuation and spacing removed."""
    name = re.sub(r"^the\s+", "", name.strip().lower())
    return " ".join(re.sub(r"[^\w\s()-]", " ", name).split())


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Resolver:
    """Maps a surface form to its cluster's display name; ``merges`` lists (stage, a, b) for every union made."""

    clusters: dict[str, str]  # surface key → cluster root key
    names: dict[str, str]  # cluster root key → display name (the most frequent surface form)
    merges: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, surface: str) -> str:
        key = surface_key(surface)
        return self.names.get(self.clusters.get(key, key), surface.strip())


def resolve(surfaces: Iterable[str], *, embed: Callable[[Sequence[str]], np.ndarray] | None = None,
            threshold: float = 0.92) -> Resolver:
    """Cluster surface forms by the string rules, then (with ``embed``) by cosine similarity ≥ ``threshold``."""
    counts = Counter(s.strip() for s in surfaces if s.strip())
    union, merges = _Union(), []
    keys = {surface_key(s) for s in counts}
    declared: dict[str, tuple[str, str]] = {}  # surface → (name key, code): "Canada (CAN)", "BND dollar"
    for s in counts:
        union.find(surface_key(s))
        match = _CODE_AFTER.match(s.strip()) or _CODE_BEFORE.match(s.strip())
        if match:
            declared[s] = (surface_key(match["name"]), match["code"].lower())
    codes_of: dict[str, set[str]] = {}
    for name, code in declared.values():
        codes_of.setdefault(name, set()).add(code)
    for s, (name, code) in declared.items():  # the text declares an alias: the code, "name (code)" ≡ "code name"
        others = [code, f"{name} ({code})", f"{code} {name}"]
        if len(codes_of[name]) == 1:  # the bare name too, unless it names two things ("Dollar (CAD)", "Dollar (BND)")
            others.append(name)
        for other in others:
            if other in keys and union.find(other) != union.find(surface_key(s)):
                merges.append(("rules", s, other))
                union.union(surface_key(s), other)
    if embed is not None:
        roots = sorted({union.find(k) for k in keys})
        if len(roots) > 1:
            vectors = embed(roots)
            sims = vectors @ vectors.T
            for i, j in zip(*np.nonzero(np.triu(sims, 1) >= threshold)):
                if union.find(roots[i]) != union.find(roots[j]):
                    merges.append(("embedding", roots[i], roots[j]))
                    union.union(roots[i], roots[j])
    clusters = {k: union.find(k) for k in keys}
    best: dict[str, tuple[int, str]] = {}
    for s, n in counts.items():
        root = clusters[surface_key(s)]
        if root not in best or (n, -len(s)) > (best[root][0], -len(best[root][1])):
            best[root] = (n, s)
    return Resolver(clusters, {root: s for root, (_, s) in best.items()}, merges)


def _gold_of(surface: str, key: Mapping[str, str]) -> str | None:
    """The answer key's entity for a surface form (the key's forms are normalised like ``gold._norm``)."""
    return key.get(name_key(surface))


def score_merges(resolver: Resolver, key: Mapping[str, str]) -> dict[str, int]:
    """Merges made by each stage and how many joined two different entities of the key (pairs the key knows)."""
    out: dict[str, int] = {}
    for stage in ("rules", "embedding"):
        made = [(a, b) for s, a, b in resolver.merges if s == stage]
        judged = [(_gold_of(a, key), _gold_of(b, key)) for a, b in made]
        judged = [(x, y) for x, y in judged if x and y]
        out[f"{stage}_merges"] = len(made)
        out[f"{stage}_judged"] = len(judged)
        out[f"{stage}_wrong"] = sum(x != y for x, y in judged)
    return out


def score_triples(extracted: Iterable[tuple[str, str, str]], gold: set[Triple], *, key: Mapping[str, str],
                  accepted: set[Triple] = frozenset()) -> dict[str, object]:
    """Precision, recall and F1 of unique (subject, relation, object) after resolution, overall and per relation.

    A triple is right when its subject and object map to the key's entities and the fact is a gold
    triple of the scored text (or an ``accepted`` one it entails: a capital lies in its country).
    """
    from ...intervals import wilson  # noqa: PLC0415

    mapped = set()
    for s, r, o in extracted:
        gs, go = _gold_of(s, key) or s, _gold_of(o, key) or o
        mapped.add(Triple(gs, r, go).key())
    right = {t for t in mapped if t in gold or t in accepted}
    found = {t for t in mapped if t in gold}
    rows = {}
    for relation in sorted({t.relation for t in gold} | {t.relation for t in mapped}) + ["all"]:
        pick = (lambda t: True) if relation == "all" else (lambda t, r=relation: t.relation == r)  # noqa: E731
        n_pred, n_gold = sum(map(pick, mapped)), sum(map(pick, gold))
        n_right, n_found = sum(map(pick, right)), sum(map(pick, found))
        p = n_right / n_pred if n_pred else 0.0
        r = n_found / n_gold if n_gold else 0.0
        low, high = wilson(n_found, n_gold)
        rows[relation] = {"predicted": n_pred, "right": n_right, "gold": n_gold, "found": n_found, "precision": p,
                          "recall": r, "recall_low": low, "recall_high": high, "f1": 2 * p * r / (p + r) if p + r else 0.0}
    return rows
