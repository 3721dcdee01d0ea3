"""Answers from retrieved chunks: a short reply that cites passages by number, or says the documents do not hold it.

The prompt asks for a few words taken from the numbered passages, each claim followed by its passage
number in brackets (``[2]``), and the exact sentence :data:`REFUSAL` when the passages do not hold
the answer. Citations are mapped back to chunk ids. (A JSON-schema reply was tried first on eight
development questions that are not in the frozen set: the 135M stand-in then answered "not in the
documents" to everything it could answer; free text answered half of them.)

:func:`score` scores replies as the field does:

* **exact match** and **token F1** after SQuAD's normalisation (lower case, punctuation and the articles
  *a*, *an*, *the* removed, whitespace collapsed), the maximum over the accepted answers — the metrics
  of SQuAD and NQ-open. A reply that merely *contains* an accepted answer earns nothing extra, so a
  reply stuffed with short answers ("Yes, none; right once…") scores no exact match and little F1.
* **citation recall and precision** in ALCE's sense (Gao et al., 2023), with the gold passage as the
  support judge instead of ALCE's NLI model: a *right* answer's citations (exact match, or token F1 ≥
  :data:`CITATION_F1`) *recall* support when one cited chunk holds the gold passage; a citation is
  *precise* when its chunk holds it. A wrong answer, or one without citations, scores 0 on both (ALCE
  checks the cited passage against the sentence; a wrong sentence citing the gold chunk is not supported).
  Accepted answers that normalise to nothing (``"_*"``) are skipped, so bare punctuation matches nothing.
* each reply's **status**: ``answered``, ``refused`` (it says :data:`REFUSAL`), ``truncated`` (the
  server stopped at the token limit, ``finish_reason == "length"``) or ``empty`` (no text, e.g. a
  reasoning model that spent its budget thinking). Only ``answered`` replies are answers: a
  truncated or empty reply scores 0 and is counted apart, never as a wrong answer nor a refusal.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..chunking import Chunk, normalise
from ...llm.client import Endpoint, Reply, chat

__all__ = ["ANSWER_STOP", "Answer", "CITATION_F1", "Match", "REFUSAL", "STATUSES", "SYSTEM_PROMPT", "UNDECIDED_TRUNCATION", "answer",
           "exact_match", "limiting_stage", "matches", "messages", "normalize_answer", "sample", "score", "strip_citations",
           "summary", "token_f1"]

REFUSAL = "not in the documents"
SYSTEM_PROMPT = (
    "Answer the question in a few words, using only the numbered passages, and cite the passage you used by its "
    f"number in brackets, like [2]. If the passages do not contain the answer, reply exactly: {REFUSAL}."
)
#: Where a reply ends: the first blank line (NQ-open-style short answers stop at a line break). A small model that
#: rambles on after its answer in new paragraphs ("The answer is: None.\n\n* Every Python…") is cut there with
#: ``finish_reason == "stop"``, not at the token budget; a reply that overruns the budget inside its first paragraph
#: is still ``truncated``.
ANSWER_STOP: tuple[str, ...] = ("\n\n",)
#: Token F1 from which a reply counts as right for citation scoring (besides an exact match).
CITATION_F1 = 0.5
#: Above this share of truncated or empty answerable replies, which stage limits quality is not decided.
UNDECIDED_TRUNCATION = 0.5
#: A reply's status; only ``answered`` replies are scored as answers.
STATUSES = ("answered", "refused", "truncated", "empty")
_CITATION = re.compile(r"\[(\d{1,2})\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def messages(question: str, context: Sequence[Chunk]) -> list[dict[str, str]]:
    """The chat messages: the system rule, then the numbered passages (with where they come from) and the question."""
    passages = "\n\n".join(f"[{n}] ({c.citation})\n{c.text}" for n, c in enumerate(context, start=1))
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"}]


@dataclass
class Answer:
    """One reply: what the model said, which chunks it cited, the context it was given, and why it stopped."""

    question: str
    found: bool  # False when the reply is the refusal
    text: str
    cited: list[str]
    context: list[str]
    valid: bool  # every cited number names a passage that was given
    reply: Reply | None = field(default=None, repr=False)
    finish_reason: str | None = None  # the server's: "stop", or "length" when the token limit cut the reply

    @property
    def seconds(self) -> float:
        return self.reply.total_s if self.reply else 0.0

    @property
    def status(self) -> str:
        """``empty``, ``truncated``, ``refused`` or ``answered`` (in that order of precedence)."""
        if not strip_citations(self.text).strip():
            return "empty"
        if self.finish_reason == "length":
            return "truncated"
        return "answered" if self.found else "refused"


def answer(endpoint: Endpoint, question: str, context: Sequence[Chunk], *, max_tokens: int = 128,
           on_text: Callable[[str], None] | None = None, seed: int = 0, stop: Sequence[str] = ANSWER_STOP) -> Answer:
    """Ask ``endpoint`` to answer from ``context`` (streamed: ``on_text`` sees each piece); citations mapped to chunk ids.

    Reasoning is switched off (``enable_thinking: false`` for templates that have the switch, such as
    Nemotron 3 and Qwen3): a short cited answer needs no thinking, and a thinking model would spend the
    token budget before answering. The server's ``finish_reason`` is kept, so a reply cut at
    ``max_tokens`` is flagged ``truncated`` rather than scored as an answer. The reply ends at ``stop``
    (:data:`ANSWER_STOP`, the first blank line): the answer is its first paragraph.
    """
    reply = chat(endpoint, messages(question, context), max_tokens=max_tokens, seed=seed, on_text=on_text,
                 reasoning=False, **({"stop": list(stop)} if stop else {}))
    numbers = [int(n) for n in _CITATION.findall(reply.text)]
    cited = [context[n - 1].id for n in numbers if 1 <= n <= len(context)]
    refused = normalise(REFUSAL) in normalise(reply.text)
    return Answer(question, not refused, reply.text.strip(), list(dict.fromkeys(cited)), [c.id for c in context],
                  valid=all(1 <= n <= len(context) for n in numbers), reply=reply, finish_reason=reply.finish_reason)


def strip_citations(text: str) -> str:
    """The reply without its ``[n]`` citation marks."""
    return _CITATION.sub(" ", text)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation and articles removed, whitespace collapsed.

    >>> normalize_answer("The  AssertionError!")
    'assertionerror'
    """
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, accepted: Sequence[str]) -> float:
    """1.0 when the normalised prediction (citations removed) equals a normalised accepted answer, else 0.0."""
    pred = normalize_answer(strip_citations(prediction))
    return float(any(pred == gold for gold in _scorable(accepted)))


def _scorable(accepted: Sequence[str]) -> list[str]:
    """The accepted answers that survive normalisation: one that normalises to "" (``"_*"``) would match bare punctuation."""
    return [gold for gold in (normalize_answer(a) for a in accepted) if gold]


def token_f1(prediction: str, accepted: Sequence[str]) -> float:
    """SQuAD's token F1 (bag of normalised tokens), the best over the accepted answers; 0.0 for none.

    >>> round(token_f1("It raises AssertionError [1].", ["AssertionError"]), 3)
    0.5
    """
    pred = normalize_answer(strip_citations(prediction)).split()
    best = 0.0
    for a in _scorable(accepted):
        gold = a.split()
        common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
        if common and pred and gold:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


@dataclass(frozen=True)
class Match:
    """The old containment reading (kept for ``txt2kg``'s graph answers): ``exact`` equality, or ``contained``."""

    exact: bool
    contained: bool


def matches(answer_text: str, accepted: Sequence[str]) -> Match:
    """Whether an accepted answer equals the reply, or occurs in it as whole words.

    Not the rag scorer any more: containment credits a reply stuffed with short answers (the constant
    reply "Yes, none; right once: one is false, zero or True [1]." contained an accepted answer of 12 of
    the 52 frozen questions). :func:`score` uses :func:`exact_match` and :func:`token_f1`.
    """
    text = normalise(_CITATION.sub(" ", answer_text)).strip(" .;:")
    exact = any(text == normalise(a) for a in accepted)
    contained = any(re.search(rf"(?<!\w){re.escape(normalise(a))}(?!\w)", text) for a in accepted)
    return Match(exact, bool(contained))


def sample(questions: Sequence[Mapping], n: int | None, *, seed: int) -> list[Mapping]:
    """``n`` of ``questions`` drawn at random with ``seed`` (in their original order); all of them when ``n`` is None.

    The questions sent to a slow model are a seeded random sample, never the first ``n`` by id: the ids
    follow the corpus's topics, so the first few would all come from the same documents.
    """
    import numpy as np  # noqa: PLC0415

    if n is None or n >= len(questions):
        return list(questions)
    picked = np.random.default_rng(seed).choice(len(questions), size=n, replace=False)
    return [questions[i] for i in sorted(int(i) for i in picked)]


def score(questions: Sequence[Mapping], answers: Sequence[Answer], gold: Mapping[str, set[str]]):
    """One row per question: status, exact match, F1, citation recall and precision, gold in context, seconds, tokens.

    Scores apply to answerable questions; an unanswerable one is right when its status is ``refused``.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for q, a in zip(questions, answers):
        answerable = bool(q["answers"])
        status = a.status
        scored = answerable and status == "answered"
        em, f1 = (exact_match(a.text, q["answers"]), token_f1(a.text, q["answers"])) if scored else (0.0, 0.0)
        # a citation supports a reply only when the reply is right (EM, or F1 ≥ 0.5): ALCE judges the cited passage
        # against the sentence; without its NLI model a wrong reply citing the gold chunk (the constant reply's [1])
        # must not earn citation credit
        right = em == 1.0 or f1 >= CITATION_F1
        holds_gold = [c in gold[q["id"]] for c in a.cited]
        rows.append({"id": q["id"], "answerable": answerable, "status": status,
                     "gold_in_context": bool(gold[q["id"]] & set(a.context)),
                     "refused": status == "refused", "truncated": status == "truncated",
                     "em": em, "f1": f1,
                     "citation_recall": float(scored and right and any(holds_gold)),
                     "citation_precision": sum(holds_gold) / len(holds_gold) if scored and right and holds_gold else 0.0,
                     "citations_valid": a.valid, "answer": a.text, "cited": ", ".join(a.cited),
                     "seconds": a.seconds, "tokens": a.reply.completion_tokens if a.reply else 0})
    columns = ["id", "answerable", "status", "gold_in_context", "refused", "truncated", "em", "f1", "citation_recall",
               "citation_precision", "citations_valid", "answer", "cited", "seconds", "tokens"]
    flags = {c: bool for c in ("answerable", "gold_in_context", "refused", "truncated", "citations_valid")}
    return pd.DataFrame(rows, columns=columns).astype(flags).set_index("id")  # typed even when empty (your own folder)


def limiting_stage(table) -> str:
    """``retrieval``, ``generation``, or ``undecided`` when over half the answerable replies were cut off or empty.

    Retrieval loses the questions whose gold passage never reached the context; generation loses those it had in
    context and still got wrong. A truncated reply says nothing about the generator's reading — only about the
    token budget — so when they dominate, no stage is named.
    """
    answerable = table[table["answerable"]]
    if not len(answerable):
        return "undecided"
    if answerable["status"].isin(["truncated", "empty"]).mean() > UNDECIDED_TRUNCATION:
        return "undecided"
    lost_to_retrieval = 1 - answerable["gold_in_context"].mean()
    lost_to_generation = answerable["gold_in_context"].mean() - answerable["em"].mean()
    return "generation" if lost_to_generation > lost_to_retrieval else "retrieval"


def summary(table) -> dict[str, float]:
    """The headline rates: EM, F1 and citations on answerable questions; refusals, truncations on each kind."""
    nan = float("nan")
    answerable, unanswerable = table[table["answerable"]], table[~table["answerable"]]
    hit = answerable[answerable["gold_in_context"]]

    def mean(frame, column: str) -> float:
        return float(frame[column].mean()) if len(frame) else nan

    return {"answerable": len(answerable), "unanswerable": len(unanswerable),
            "exact_match": mean(answerable, "em"), "f1": mean(answerable, "f1"),
            "citation_recall": mean(answerable, "citation_recall"),
            "citation_precision": mean(answerable, "citation_precision"),
            "refusal_rate_unanswerable": mean(unanswerable, "refused"),
            "false_refusal_rate": mean(answerable, "refused"),
            "truncated_rate": mean(table, "truncated"),
            "empty_rate": float((table["status"] == "empty").mean()) if len(table) else nan,
            "gold_in_context": mean(answerable, "gold_in_context"),
            "em_when_gold_in_context": mean(hit, "em"),
            "citations_valid": mean(table, "citations_valid")}
