"""Entity resolution — surface forms to one node each — and triple scores on the system's own node names.

Two stages, each reported: string rules (case, "the", punctuation, and aliases the text itself
declares — "Canada (CAN)" or "Canada, ISO code CAN" makes CAN another name of Canada, "BND dollar"
a name of the currency written "Dollar (BND)"), then embedding similarity (MiniLM, cosine ≥
``threshold``) between the names the rules left apart, merged transitively. Embeddings merge
spelling variants and also names that only look alike (Niger and Nigeria).

The answer key never maps a name here. :func:`score_triples` matches a triple on the names the
system gave its nodes (WebNLG's strict match): a node matches the key's entity only when one of the
names merged into it — or declared for them by the text — is the key's name, so a resolver that
leaves DNK apart from Denmark scores (DNK, capital, Copenhagen) as wrong. The resolver itself is
judged pairwise over every surface form the key lists (:func:`.baselines.pairwise_scores`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .gold import Triple

__all__ = ["Resolver", "declarations", "resolve", "score_triples", "surface_key"]

_CODE_AFTER = re.compile(r"^(?P<name>.+?)\s*\((?P<code>[A-Z]{2,4})\)$")  # "Dollar (BND)", "Canada (CAN)"
_CODE_BEFORE = re.compile(r"^(?P<code>[A-Z]{3})\s+(?P<name>[a-z].*)$")  # "BND dollar"
_NAME = r"(?P<name>[A-Z][\w'’.-]*(?:\s+(?:(?:and|of|the|de|da|del)\s+)?[A-Z][\w'’.-]*)*)"
_IN_TEXT = (re.compile(_NAME + r"\s*\((?P<code>[A-Z]{2,4})\)"),  # "Denmark (DNK) is …", "the Krone (DKK)"
            re.compile(_NAME + r",\s+ISO code\s+(?P<code>[A-Z]{3})\b"))  # "Denmark, ISO code DNK, lies …"


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


def declarations(texts: Iterable[str]) -> list[tuple[str, str]]:
    """(name, code) aliases a text declares: "Denmark (DNK)", "Denmark, ISO code DNK", "the Krone (DKK)"."""
    found = []
    for text in texts:
        for pattern in _IN_TEXT:
            found += [(m["name"], m["code"]) for m in pattern.finditer(text)]
    return list(dict.fromkeys(found))


@dataclass
class Resolver:
    """Maps a surface form to its cluster's display name; ``merges`` lists (stage, a, b) for every union made;
    ``aliases`` adds to each cluster the names the text or the rules declared for its members."""

    clusters: dict[str, str]  # surface key → cluster root key
    names: dict[str, str]  # cluster root key → display name (the most frequent surface form)
    merges: list[tuple[str, str, str]] = field(default_factory=list)
    aliases: dict[str, set[str]] = field(default_factory=dict)  # cluster root key → declared names (surface keys)
    groups: list[set[str]] = field(default_factory=list)  # each declared (name, code): every form that names it

    def __call__(self, surface: str) -> str:
        key = surface_key(surface)
        return self.names.get(self.clusters.get(key, key), surface.strip())

    def forms(self, surface: str) -> set[str]:
        """The names ``surface``'s node answers to: its display name and the aliases the text declares for that name.

        Not every member of its cluster: a node that merged Niger into Nigeria is labelled Nigeria, and Niger's facts
        on it are wrong facts (WebNLG strict matches one label per node; an over-merge must cost, not score).
        """
        name = surface_key(self(surface))
        return {name}.union(*(group for group in self.groups if name in group))


def resolve(surfaces: Iterable[str], *, embed: Callable[[Sequence[str]], np.ndarray] | None = None,
            threshold: float = 0.92, texts: Iterable[str] = ()) -> Resolver:
    """Cluster surface forms by the string rules (and the aliases ``texts`` declare), then (with ``embed``) by cosine
    similarity ≥ ``threshold``."""
    counts = Counter(s.strip() for s in surfaces if s.strip())
    union, merges = _Union(), []
    keys = {surface_key(s) for s in counts}
    declared: dict[str, tuple[str, str]] = {}  # surface → (name key, code): "Canada (CAN)", "BND dollar", or the text's
    for s in counts:
        union.find(surface_key(s))
        match = _CODE_AFTER.match(s.strip()) or _CODE_BEFORE.match(s.strip())
        if match:
            declared[s] = (surface_key(match["name"]), match["code"].lower())
    for name, code in declarations(texts):
        declared.setdefault(f"{name} ({code})", (surface_key(name), code.lower()))
    codes_of: dict[str, set[str]] = {}
    for name, code in declared.values():
        codes_of.setdefault(name, set()).add(code)
    groups: dict[str, set[str]] = {}  # a declared (name, code): every form that names it
    for s, (name, code) in declared.items():  # the text declares an alias: the code, "name (code)" ≡ "code name"
        group = {code, f"{name} ({code})", f"{code} {name}"}
        if len(codes_of[name]) == 1:  # the bare name too, unless it names two things ("Dollar (CAD)", "Dollar (BND)")
            group.add(name)
        groups[f"{name} ({code})"] = group
        present = sorted(group & keys)
        for other in present[1:]:
            if union.find(other) != union.find(present[0]):
                merges.append(("rules", present[0], other))
                union.union(present[0], other)
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
    aliases: dict[str, set[str]] = {}
    for group in groups.values():
        for root in {clusters[k] for k in group & keys}:
            aliases.setdefault(root, set()).update(group)
    best: dict[str, tuple[int, str]] = {}
    for s, n in counts.items():
        root = clusters[surface_key(s)]
        if root not in best or (n, -len(s)) > (best[root][0], -len(best[root][1])):
            best[root] = (n, s)
    return Resolver(clusters, {root: s for root, (_, s) in best.items()}, merges, aliases, list(groups.values()))


def _matches(predicted: tuple[str, str, str], fact: Triple, names: Callable[[str], set[str]]) -> bool:
    s, r, o = predicted
    if r != fact.relation:
        return False
    a, b = surface_key(fact.subject), surface_key(fact.object)
    ends = [(a, b), (b, a)] if r == "borders" else [(a, b)]
    return any(x in names(s) and y in names(o) for x, y in ends)


def score_triples(extracted: Iterable[tuple[str, str, str]], gold: set[Triple], *,
                  forms: Callable[[str], Iterable[str]] | None = None,
                  accepted: set[Triple] = frozenset()) -> dict[str, object]:
    """Precision, recall and F1 of unique (subject, relation, object) node triples, overall and per relation.

    Strict (WebNLG): a triple is right when its subject's and object's nodes carry the key's names (``forms``: every
    name the system has for a node, e.g. :meth:`Resolver.forms`; default the node name alone) and the fact is a gold
    triple of the scored text (or an ``accepted`` one it entails: a capital lies in its country). The key's aliases
    are not used: a node the resolver left as "DNK" is not Denmark.
    """
    from ...intervals import wilson  # noqa: PLC0415

    cache: dict[str, set[str]] = {}

    def names(node: str) -> set[str]:
        if node not in cache:
            cache[node] = {surface_key(f) for f in (forms(node) if forms else (node,))}
        return cache[node]

    unique: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for s, r, o in extracted:
        a, b = surface_key(s), surface_key(o)
        unique.setdefault((min(a, b), r, max(a, b)) if r == "borders" else (a, r, b), (s, r, o))
    predicted = list(unique.values())
    truth = list(gold) + [t for t in accepted if t not in gold]
    right = [p for p in predicted if any(_matches(p, t, names) for t in truth)]
    found = [t for t in gold if any(_matches(p, t, names) for p in predicted)]
    rows = {}
    for relation in sorted({t.relation for t in gold} | {p[1] for p in predicted}) + ["all"]:
        keep = (lambda r: True) if relation == "all" else (lambda r, want=relation: r == want)  # noqa: E731
        n_pred, n_gold = sum(keep(p[1]) for p in predicted), sum(keep(t.relation) for t in gold)
        n_right, n_found = sum(keep(p[1]) for p in right), sum(keep(t.relation) for t in found)
        p = n_right / n_pred if n_pred else 0.0
        r = n_found / n_gold if n_gold else 0.0
        low, high = wilson(n_found, n_gold)
        rows[relation] = {"predicted": n_pred, "right": n_right, "gold": n_gold, "found": n_found, "precision": p,
                          "recall": r, "recall_low": low, "recall_high": high, "f1": 2 * p * r / (p + r) if p + r else 0.0}
    return rows
