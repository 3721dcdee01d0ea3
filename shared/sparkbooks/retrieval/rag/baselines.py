"""The trivial replies a RAG answer must beat, scored by the same scorer as the model (:func:`.answer.score`).

* :func:`constant_answers` — the same reply to every question. The default, :data:`CONSTANT_REPLY`, is the
  practitioners' review's probe of the scorer's floor: short accepted answers ("yes", "none", "one", "True", "0")
  strung together, with a citation of passage 1; whatever it scores, the scorer gives away for nothing
  (the old whole-word containment scorer credited it on 12 of 52 questions; exact match on none).
* :func:`echo_answers` — the first retrieved passage, verbatim, cited as [1]: what retrieval alone "answers".
  A scorer that counts an answer contained anywhere in the reply scored this as highly as retrieval is good
  (52 of 52 on the frozen key); exact match gives it nothing and token F1 little (a passage is long).
* :func:`closed_book_answers` — the same LLM asked the question with no passages at all: what it knows already.

Each returns :class:`~.answer.Answer` objects built exactly as :func:`.answer.answer` builds the model's
(citations parsed and mapped to the given context, a refusal recognised by the same words), so
``answer.score(questions, baseline_answers, gold)`` scores them on the same footing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..chunking import Chunk, normalise
from ...llm.client import Endpoint, Reply, chat
from .answer import _CITATION, ANSWER_STOP, REFUSAL, Answer

__all__ = ["CLOSED_BOOK_PROMPT", "CONSTANT_REPLY", "FLOOR_GOAL", "Floor", "as_answer", "best_constant", "closed_book_answers",
           "constant_answers", "echo_answers"]

#: One reply for every question: short accepted answers of the frozen key strung together (issue 49's probe).
CONSTANT_REPLY = "Yes, none; right once: one is false, zero or True [1]."
#: Issue 49's goal for the scorer's floor: no constant reply may score above this exact-match rate.
FLOOR_GOAL = 0.02
#: The closed-book instruction: the RAG prompt's answer rule without passages (and without a way to refuse).
CLOSED_BOOK_PROMPT = "Answer the question in a few words."


def as_answer(question: str, text: str, context: Sequence[Chunk], *, reply: Reply | None = None) -> Answer:
    """``text`` read as :func:`.answer.answer` reads a model's reply to ``question`` given ``context``."""
    numbers = [int(n) for n in _CITATION.findall(text)]
    cited = [context[n - 1].id for n in numbers if 1 <= n <= len(context)]
    refused = normalise(REFUSAL) in normalise(text)
    return Answer(question, not refused, text.strip(), list(dict.fromkeys(cited)), [c.id for c in context],
                  valid=all(1 <= n <= len(context) for n in numbers), reply=reply,
                  finish_reason=reply.finish_reason if reply else "stop")


def constant_answers(questions: Sequence[Mapping], contexts: Mapping[str, Sequence[Chunk]], *,
                     reply: str = CONSTANT_REPLY) -> list[Answer]:
    """``reply`` to every question (``contexts``: question id → the passages the model was given)."""
    return [as_answer(q["question"], reply, contexts[q["id"]]) for q in questions]


class Floor(NamedTuple):
    """The best single constant reply and its exact match over the questions."""

    reply: str
    exact_match: float


def best_constant(questions: Sequence[Mapping]) -> Floor:
    """The single reply that scores the highest exact match over ``questions``, and that score: the scorer's floor.

    Every accepted answer of the key is tried as the one reply to every question (only those can match exactly),
    so a key with repeated short answers ("None" on two questions) shows its floor however the probe is worded.
    """
    from .answer import exact_match  # noqa: PLC0415

    answerable = [q for q in questions if q["answers"]]
    if not answerable:
        return Floor("", 0.0)
    candidates = sorted({a for q in answerable for a in q["answers"]})
    scores = {c: sum(exact_match(c, q["answers"]) for q in answerable) / len(answerable) for c in candidates}
    best = max(candidates, key=lambda c: (scores[c], c))
    return Floor(best, scores[best])


def echo_answers(questions: Sequence[Mapping], contexts: Mapping[str, Sequence[Chunk]]) -> list[Answer]:
    """The first passage of each question's context, verbatim, cited as [1] (no passage: an empty reply)."""
    return [as_answer(q["question"], f"{ctx[0].text} [1]" if ctx else "", ctx)
            for q in questions for ctx in [list(contexts[q["id"]])]]


def closed_book_answers(endpoint: Endpoint, questions: Sequence[Mapping], *, max_tokens: int = 32,
                        seed: int = 0) -> list[Answer]:
    """The LLM's reply to each question with no passages (:data:`CLOSED_BOOK_PROMPT`); nothing to cite."""
    out = []
    for q in questions:
        reply = chat(endpoint, [{"role": "system", "content": CLOSED_BOOK_PROMPT},
                                {"role": "user", "content": q["question"]}], max_tokens=max_tokens, seed=seed,
                     reasoning=False, stop=list(ANSWER_STOP))  # the RAG answer's stop rule: a fair comparison
        out.append(as_answer(q["question"], reply.text, [], reply=reply))
    return out
