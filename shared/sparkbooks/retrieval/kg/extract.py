"""Triples from chunks by an LLM whose decoding is constrained to a JSON schema, each checked against its evidence.

The schema (subject, relation from the declared set — or any string for open text —, object, and an
evidence quote) goes to the server as ``response_format``, so llama.cpp, vLLM and NIM decode only
strings that parse (NVIDIA's playbook asks Ollama for a JSON array and regex-parses the reply). What can
still go wrong is counted, never raised: an answer cut off at ``max_tokens`` (not schema-valid), and
a triple whose evidence is not a quote of its chunk or whose subject or object is not in that
evidence (dropped by :func:`check_evidence` — the model made it up).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..chunking import Chunk, normalise
from ...llm.client import Endpoint
from ...llm.extraction import extract_json
from .gold import RELATIONS, Passage

__all__ = ["Extracted", "ExtractionRun", "INSTRUCTION", "check_evidence", "extract", "instruction", "schema", "worked_examples"]

INSTRUCTION = ("Extract the facts stated in the text as triples (subject, relation, object) with the exact words of the "
               "text that state each one as evidence. Use full names for subject and object, not pronouns. ")


def schema(relations: Sequence[str] | None = tuple(RELATIONS), *, max_triples: int = 10) -> dict[str, Any]:
    """The JSON schema of one answer; ``relations=None`` leaves the relation free (open text)."""
    relation = {"type": "string", "enum": list(relations)} if relations else {"type": "string", "maxLength": 40}
    triple = {"type": "object", "additionalProperties": False,
              "required": ["subject", "relation", "object", "evidence"],
              "properties": {"subject": {"type": "string", "maxLength": 60}, "relation": relation,
                             "object": {"type": "string", "maxLength": 60},
                             "evidence": {"type": "string", "maxLength": 120}}}
    return {"type": "object", "additionalProperties": False, "required": ["triples"],
            "properties": {"triples": {"type": "array", "items": triple, "maxItems": max_triples}}}


def instruction(relations: Sequence[str] | None = tuple(RELATIONS)) -> str:
    if not relations:
        return INSTRUCTION + "Name each relation in one or two words."
    meaning = {"capital": "country → its capital city", "located_in": "city → country, or country → continent",
               "currency": "country → its currency", "borders": "country → a neighbouring country"}
    return INSTRUCTION + "Relations: " + "; ".join(f"{r} ({meaning.get(r, r)})" for r in relations) + "."


def worked_examples(passages: Sequence[Passage]) -> list[tuple[str, dict]]:
    """(text, answer) pairs for few-shot prompting, from passages that are never scored; evidence is the sentence."""
    import re  # noqa: PLC0415

    pairs = []
    for p in passages:
        sentences = re.split(r"(?<=\.)\s+", p.text)
        triples = []
        for t in p.triples:
            name, code = t.object.split(" (")[0], t.object.rsplit("(", 1)[-1].rstrip(")")  # "Oslo", or "NOK" of "krone (NOK)"
            quote = next((s for s in sentences if name in s or code in s), sentences[0])  # the sentence that states it
            triples.append({"subject": t.subject, "relation": t.relation, "object": t.object, "evidence": quote})
        pairs.append((p.text, {"triples": triples}))
    return pairs


@dataclass(frozen=True)
class Extracted:
    """A triple as the model wrote it, where it came from, and whether its evidence held."""

    subject: str
    relation: str
    object: str
    evidence: str
    chunk: str
    kept: bool
    problem: str = ""


def check_evidence(triple: Mapping[str, str], chunk_text: str) -> str:
    """Why a triple is dropped ('' when kept): evidence not quoted from the chunk, an object the evidence does not
    name, a subject the chunk does not name, or a triple that links a name to itself."""
    text, evidence = normalise(chunk_text), normalise(triple["evidence"])
    if not evidence or evidence not in text:
        return "evidence is not a quote of the chunk"
    for role, where, said in (("subject", text, "the chunk"), ("object", evidence, "the evidence")):
        name = normalise(triple[role])  # the subject may stand in the evidence as a pronoun ("Its capital is …")
        if not name:
            return f"empty {role}"
        if name not in where:
            return f"{role} {triple[role]!r} is not in {said}"
    if normalise(triple["subject"]) == normalise(triple["object"]):
        return "subject and object are the same"
    return ""


@dataclass
class ExtractionRun:
    """Every chunk's answer: the triples (kept and dropped), invalid answers, and time."""

    triples: list[Extracted] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (chunk id, why)
    chunks: int = 0
    seconds: float = 0.0
    completion_tokens: int = 0

    @property
    def kept(self) -> list[Extracted]:
        return [t for t in self.triples if t.kept]

    def summary(self) -> dict[str, float]:
        n = len(self.triples)
        return {"chunks": self.chunks, "schema_valid_rate": 1 - len(self.invalid) / max(self.chunks, 1),
                "triples_proposed": n, "triples_kept": len(self.kept),
                "evidence_drop_rate": (n - len(self.kept)) / n if n else float("nan"),
                "seconds_per_chunk": self.seconds / max(self.chunks, 1),
                "tokens_per_s": self.completion_tokens / self.seconds if self.seconds else float("nan")}


def extract(endpoint: Endpoint, chunks: Sequence[Chunk], *, relations: Sequence[str] | None = tuple(RELATIONS),
            examples: Sequence[tuple[str, dict]] = (), max_tokens: int = 700, max_triples: int = 10,
            seed: int = 0, concurrency: int = 1) -> ExtractionRun:
    """Ask for triples chunk by chunk (``concurrency`` at once); a failed answer or evidence check is counted, never raised."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from ...exceptions import InputError  # noqa: PLC0415

    if not chunks:
        raise InputError("no text to extract from: the document set is empty (check the folder or the pairs parameter)")
    run = ExtractionRun(chunks=len(chunks))
    spec, rule = schema(relations, max_triples=max_triples), instruction(relations)
    ask = lambda c: extract_json(endpoint, c.text, schema=spec, instruction=rule, max_tokens=max_tokens,  # noqa: E731
                                 seed=seed, examples=examples)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        answers = list(pool.map(ask, chunks))
    run.seconds = time.perf_counter() - start
    for c, done in zip(chunks, answers):
        run.completion_tokens += done.reply.completion_tokens or 0
        if not done.valid:
            run.invalid.append((c.id, done.problem))
        for t in (done.value or {}).get("triples", []):
            why = check_evidence(t, c.text)
            run.triples.append(Extracted(t["subject"].strip(), t["relation"].strip(), t["object"].strip(),
                                         t["evidence"], c.id, not why, why))
    return run
