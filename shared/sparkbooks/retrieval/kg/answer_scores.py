"""Answers to graph questions scored alike, whichever route gave them: right or wrong against rivals of the same
kind, supporting-path recall (HotpotQA's supporting facts), per-method accuracy with intervals, paired comparisons.

Each reply is right when it names the answer and no rival of the same kind (a reply listing every capital it was
given is not right); **supporting-path recall** is the share of the chain of facts the question needs that its
context held.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..chunking import normalise
from .gold import Question, Triple

if TYPE_CHECKING:  # only read here; ask imports this module
    from .ask import Asked

__all__ = ["comparisons", "contains", "holm", "score", "summarise", "support_recall"]

_CITATION = re.compile(r"\[(\d{1,2})\]")


def contains(text: str, accepted: Iterable[str]) -> bool:
    """An accepted answer occurs in ``text`` as whole words (citations dropped; "one" does not match inside "none")."""
    text = normalise(_CITATION.sub(" ", text))
    return any(re.search(rf"(?<!\w){re.escape(normalise(a))}(?!\w)", text) for a in accepted if a.strip())


def support_recall(question: Question, asked: Asked, *, forms: Callable[[str], Iterable[str]] | None = None,
                   stated_in: Mapping[Triple, Sequence[str]] | None = None) -> float:
    """Share of the question's supporting facts its context held (HotpotQA's supporting-fact recall).

    Graph context: a supporting fact is held when a fact given has its relation and, on each end, a node whose names
    (``forms``: the system's own names for a node; default the name itself) include the key's name — strict, the key
    maps no name. Chunk context (``stated_in``: fact → the passages stating it): when a chunk of such a passage was
    given and the part given names the fact's other end (the passage's own country may be "it").
    """
    if not question.support:
        return math.nan
    names = (lambda n: {normalise(f) for f in forms(n)}) if forms else (lambda n: {normalise(n)})  # noqa: E731
    held = 0
    for t in question.support:
        if asked.facts:
            ends = {(normalise(t.subject), normalise(t.object))}
            if t.relation == "borders":
                ends.add((normalise(t.object), normalise(t.subject)))
            held += any(r == t.relation and any(a in names(s) and b in names(o) for a, b in ends)
                        for _, s, r, o in asked.facts)
        elif stated_in:
            docs = set(stated_in.get(t.key(), ()))
            held += any(c.doc in docs and any(_named(end, c.text) for end in (t.subject, t.object)
                                              if not c.heading or end != c.heading) for c in asked.context)
    return held / len(question.support)


def _named(entity: str, text: str) -> bool:
    """Whether ``text`` names ``entity`` (a currency "Name (CODE)" also by its code)."""
    code = re.match(r".*\(([A-Z]{2,4})\)$", entity)
    return contains(text, [entity, code[1]] if code else [entity])


def score(questions, asked: Sequence[Asked], *, method: str, rivals: Mapping[str, Sequence[str]] | None = None,
          support: Callable[[Question, Asked], float] | None = None):
    """One row per question: correct, whether the context held an accepted answer, supporting-path recall, tokens given.

    *correct*: an accepted answer occurs in the reply as whole words and — with ``rivals`` (accepted answer → the
    other entities of its kind) — no rival does: a reply that lists every capital it was given is not right.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for q, a in zip(questions, asked, strict=True):
        text = a.answer.text if a.answer.found else ""
        others = [r for ans in q.answers for r in (rivals or {}).get(ans, ())
                  if not contains(r, q.answers) and not contains(ans, [r])]  # "Guinea" is no rival of "Papua New Guinea"
        right = contains(text, q.answers) and not contains(text, others)
        rows.append({"id": q.id, "hops": q.hops, "method": method, "correct": bool(right),
                     "answer_in_context": contains(a.context_text, q.answers), "refused": not a.answer.found,
                     "support_recall": support(q, a) if support else math.nan, "context_tokens": a.tokens,
                     "question": q.question, "answer": a.answer.text, "seconds": a.answer.seconds})
    return pd.DataFrame(rows)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values (step-down, kept monotone): a family of comparisons tested at one level."""
    order = sorted(p_values, key=p_values.get)
    out, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * p_values[name]))
        out[name] = running
    return out


def summarise(table):
    """Per method: questions, right, accuracy with its Wilson 95% interval, accuracy per hop count, answer in context,
    supporting-path recall and mean context tokens."""
    import pandas as pd  # noqa: PLC0415

    from ...intervals import wilson  # noqa: PLC0415

    rows = {}
    for method, g in table.groupby("method", sort=False):
        k, n = int(g["correct"].sum()), len(g)
        low, high = wilson(k, n)
        row = {"questions": n, "right": k, "accuracy": k / n, "low": low, "high": high}
        row |= {f"{h}-hop": v for h, v in g.groupby("hops")["correct"].mean().items()}
        row |= {"in context": g["answer_in_context"].mean(), "support": g["support_recall"].mean(),
                "tokens": g["context_tokens"].mean()}
        rows[method] = row
    return pd.DataFrame(rows).T


def comparisons(table, pairs: Sequence[tuple[str, str]], *, seed: int = 0):
    """Each (A, B) on the same questions: accuracy difference with a paired bootstrap 95% interval, discordant counts,
    the exact McNemar p and its Holm-adjusted value over the family ``pairs``."""
    import pandas as pd  # noqa: PLC0415

    from ...intervals import mcnemar, paired_bootstrap  # noqa: PLC0415

    right = {m: g.sort_values("id")["correct"].astype(bool).tolist() for m, g in table.groupby("method")}
    rows = {}
    for a, b in pairs:
        test = mcnemar(right[a], right[b])
        diff = paired_bootstrap([float(x) for x in right[a]], [float(x) for x in right[b]], seed=seed)
        rows[f"{a} − {b}"] = {"a": a, "b": b, "difference": diff.value, "low": diff.low, "high": diff.high,
                             "only_a": test.only_a, "only_b": test.only_b, "p": test.p_value}
    out = pd.DataFrame(rows).T
    adjusted = holm(dict(zip(out.index, out["p"].astype(float))))
    out["p_holm"] = [adjusted[i] for i in out.index]
    return out
