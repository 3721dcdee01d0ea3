"""Answers from retrieved chunks: a short reply that cites passages by number, or says the documents do not hold it.

The prompt asks for a few words taken from the numbered passages, each claim followed by its passage
number in brackets (``[2]``), and the exact sentence :data:`REFUSAL` when the passages do not hold
the answer. Citations are mapped back to chunk ids. (A JSON-schema reply was tried first on eight
development questions that are not in the frozen set: the 135M stand-in then answered "not in the
documents" to everything it could answer; free text answered half of them.) :func:`score` checks
answers against the key: exact and whole-word normalised match, whether a cited chunk holds the gold passage, refusals
on unanswerable questions and false refusals on answerable ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..chunking import Chunk, normalise
from ...llm.client import Endpoint, Reply, chat

__all__ = ["Answer", "Match", "REFUSAL", "SYSTEM_PROMPT", "answer", "matches", "messages", "score", "summary"]

REFUSAL = "not in the documents"
SYSTEM_PROMPT = (
    "Answer the question in a few words, using only the numbered passages, and cite the passage you used by its "
    f"number in brackets, like [2]. If the passages do not contain the answer, reply exactly: {REFUSAL}."
)
_CITATION = re.compile(r"\[(\d{1,2})\]")


def messages(question: str, context: Sequence[Chunk]) -> list[dict[str, str]]:
    """The chat messages: the system rule, then the numbered passages (with where they come from) and the question."""
    passages = "\n\n".join(f"[{n}] ({c.citation})\n{c.text}" for n, c in enumerate(context, start=1))
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"}]


@dataclass
class Answer:
    """One reply: what the model said, which chunks it cited, and the context it was given."""

    question: str
    found: bool
    text: str
    cited: list[str]
    context: list[str]
    valid: bool  # every cited number names a passage that was given
    reply: Reply | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return self.reply.total_s if self.reply else 0.0


def answer(endpoint: Endpoint, question: str, context: Sequence[Chunk], *, max_tokens: int = 64,
           on_text: Callable[[str], None] | None = None, seed: int = 0) -> Answer:
    """Ask ``endpoint`` to answer from ``context`` (streamed: ``on_text`` sees each piece); citations mapped to chunk ids."""
    reply = chat(endpoint, messages(question, context), max_tokens=max_tokens, seed=seed, on_text=on_text)
    numbers = [int(n) for n in _CITATION.findall(reply.text)]
    cited = [context[n - 1].id for n in numbers if 1 <= n <= len(context)]
    refused = normalise(REFUSAL) in normalise(reply.text)
    return Answer(question, not refused, reply.text.strip(), list(dict.fromkeys(cited)), [c.id for c in context],
                  valid=all(1 <= n <= len(context) for n in numbers), reply=reply)


@dataclass(frozen=True)
class Match:
    """How an answer meets the key: ``exact`` equality, or an accepted answer ``contained`` as whole words."""

    exact: bool
    contained: bool


def matches(answer_text: str, accepted: Sequence[str]) -> Match:
    """exact: the normalised answer, without citations and end punctuation, equals an accepted answer;
    or an accepted answer occurs in it as whole words ("one" does not match inside "none")."""
    text = normalise(_CITATION.sub(" ", answer_text)).strip(" .;:")
    exact = any(text == normalise(a) for a in accepted)
    contained = any(re.search(rf"(?<!\w){re.escape(normalise(a))}(?!\w)", text) for a in accepted)
    return Match(exact, bool(contained))


def score(questions: Sequence[Mapping], answers: Sequence[Answer], gold: Mapping[str, set[str]]):
    """One row per question: answerable, gold in context, refused, correct, citation correct, seconds, tokens."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for q, a in zip(questions, answers):
        answerable = bool(q["answers"])
        match = matches(a.text, q["answers"]) if answerable and a.found else Match(False, False)
        rows.append({"id": q["id"], "answerable": answerable, "gold_in_context": bool(gold[q["id"]] & set(a.context)),
                     "refused": not a.found, "exact": match.exact, "correct": match.contained,
                     "citation_correct": answerable and bool(gold[q["id"]] & set(a.cited)),
                     "citations_valid": a.valid, "answer": a.text, "cited": ", ".join(a.cited),
                     "seconds": a.seconds, "tokens": a.reply.completion_tokens if a.reply else 0})
    return pd.DataFrame(rows).set_index("id")


def summary(table) -> dict[str, float]:
    """The headline rates: accuracy and citation correctness on answerable questions, refusals on both kinds."""
    answerable, unanswerable = table[table["answerable"]], table[~table["answerable"]]
    hit = answerable[answerable["gold_in_context"]]
    return {"answerable": len(answerable), "unanswerable": len(unanswerable),
            "accuracy": float(answerable["correct"].mean()),
            "exact_match": float(answerable["exact"].mean()),
            "citation_correct": float(answerable["citation_correct"].mean()),
            "refusal_rate_unanswerable": float(unanswerable["refused"].mean()) if len(unanswerable) else float("nan"),
            "false_refusal_rate": float(answerable["refused"].mean()),
            "gold_in_context": float(answerable["gold_in_context"].mean()),
            "accuracy_when_gold_in_context": float(hit["correct"].mean()) if len(hit) else float("nan"),
            "citations_valid": float(table["citations_valid"].mean())}
