"""JSON extraction constrained by a schema, validated, and scored against expected answers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .client import Endpoint, Reply, chat

__all__ = ["Extraction", "extract_json", "run_extractions"]


@dataclass(frozen=True)
class Extraction:
    """One extraction: the schema-valid object (``None`` when the answer was not), why not, and the reply."""

    value: dict[str, Any] | None
    reply: Reply
    problem: str = ""  # e.g. "ValidationError: 'year' is a required property"; empty when valid

    @property
    def valid(self) -> bool:
        return self.value is not None


def extract_json(endpoint: Endpoint, text: str, *, schema: Mapping[str, Any], instruction: str,
                 max_tokens: int = 200, seed: int = 0, examples: Sequence[tuple[str, Mapping[str, Any]]] = (),
                 constrained: bool = True, timeout: float = 300.0) -> Extraction:
    """Ask for JSON matching ``schema`` and validate the answer against it.

    ``constrained`` sends the schema as the request's ``response_format`` (the server then
    constrains decoding to it); without it the model is only told to answer in JSON, and the
    answer is validated all the same. ``examples`` are (text, answer) pairs sent first as a
    worked conversation (few-shot prompting).
    """
    import jsonschema  # noqa: PLC0415

    fmt = {"type": "json_schema", "json_schema": {"name": "extraction", "schema": dict(schema), "strict": True}}
    shots = [m for source, answer in examples for m in ({"role": "user", "content": source},
                                                        {"role": "assistant", "content": json.dumps(answer)})]
    extra = {"response_format": fmt} if constrained else {}
    reply = chat(endpoint, [{"role": "system", "content": instruction}, *shots, {"role": "user", "content": text}],
                 max_tokens=max_tokens, seed=seed, timeout=timeout, **extra)
    try:
        obj = json.loads(reply.text)
        jsonschema.validate(obj, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        return Extraction(None, reply, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Extraction(obj, reply)


def run_extractions(endpoint: Endpoint, items: Sequence[Mapping[str, Any]], *, schema: Mapping[str, Any],
                    instruction: str, max_tokens: int = 200, seed: int = 0):
    """Extract JSON from each ``item["text"]`` and score it against ``item["expected"]``.

    Returns a DataFrame: one row per item with ``valid`` (schema-valid), ``fields_correct``
    (share of expected fields matched, case- and space-insensitive; an expected list lists
    acceptable answers), ``seconds`` and the error.
    """
    import pandas as pd  # noqa: PLC0415

    def norm(v: Any) -> str:
        return " ".join(str(v).lower().split())

    rows = []
    for item in items:
        done = extract_json(endpoint, item["text"], schema=schema, instruction=instruction,
                            max_tokens=max_tokens, seed=seed)
        expected = item.get("expected", {})
        hits = [done.valid and norm(done.value.get(k)) in {norm(a) for a in (v if isinstance(v, list) else [v])}
                for k, v in expected.items()]
        rows.append({"text": item["text"], "valid": done.valid, "answer": done.reply.text,
                     "fields_correct": sum(hits) / len(hits) if hits else float("nan"),
                     "seconds": done.reply.total_s, "error": done.problem})
    return pd.DataFrame(rows)

