"""JSON extraction constrained by a schema, validated, and scored against expected answers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import InputError
from .client import Endpoint, Reply, chat

__all__ = ["Extraction", "Parsed", "extract_json", "field_accuracy", "parse_answer", "run_extractions",
           "score_answers"]


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
                 constrained: bool = True, timeout: float = 300.0, reasoning: bool | None = False) -> Extraction:
    """Ask for JSON matching ``schema`` and validate the answer against it.

    ``constrained`` sends the schema as the request's ``response_format`` (the server then
    constrains decoding to it); without it the model is only told to answer in JSON, the first
    JSON object in its answer is taken (as clients do: models wrap JSON in prose or code fences),
    and validated all the same. ``examples`` are (text, answer) pairs sent first as a
    worked conversation (few-shot prompting).

    ``reasoning`` is off by default: a thinking model (Nemotron 3 thinks unless told ``enable_thinking: false``) spends
    ``max_tokens`` on its trace first, and vLLM applies the schema's grammar only after the trace ends — the answer
    would come back empty. ``None`` leaves the template's default.
    """
    import jsonschema  # noqa: PLC0415

    fmt = {"type": "json_schema", "json_schema": {"name": "extraction", "schema": dict(schema), "strict": True}}
    shots = [m for source, answer in examples for m in ({"role": "user", "content": source},
                                                        {"role": "assistant", "content": json.dumps(answer)})]
    extra = {"response_format": fmt} if constrained else {}
    reply = chat(endpoint, [{"role": "system", "content": instruction}, *shots, {"role": "user", "content": text}],
                 max_tokens=max_tokens, seed=seed, timeout=timeout, reasoning=reasoning, **extra)
    try:
        obj = json.loads(reply.text) if constrained else _first_json_object(reply.text)
        jsonschema.validate(obj, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        return Extraction(None, reply, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Extraction(obj, reply)


def _first_json_object(text: str) -> Any:
    """The first complete JSON object in ``text``; raises JSONDecodeError when there is none."""
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char == "{":
            try:
                return decoder.raw_decode(text, start)[0]
            except json.JSONDecodeError:
                continue
    raise json.JSONDecodeError("no JSON object in the answer", text, 0)


def run_extractions(endpoint: Endpoint, items: Sequence[Mapping[str, Any]], *, schema: Mapping[str, Any],
                    instruction: str, max_tokens: int = 200, seed: int = 0, constrained: bool = True,
                    examples: Sequence[tuple[str, Mapping[str, Any]]] = (), concurrency: int = 1,
                    reasoning: bool | None = False):
    """Extract JSON from each ``item["text"]`` and score it against ``item["expected"]``.

    Returns a DataFrame: one row per item with ``valid`` (schema-valid), one ``<field>_ok`` column
    per expected field (case- and space-insensitive; an expected list lists acceptable answers),
    ``all_ok``, ``fields_correct`` (share of fields right), ``wrong`` (each wrong field with its
    answer), the raw ``answer``, ``seconds``, the error and the server's ``finish_reason`` (``"length"``:
    the answer was cut at ``max_tokens``, so an invalid answer may only be unfinished). ``examples`` go to :func:`extract_json`;
    ``concurrency`` requests run at once (the server's slots serve them in parallel); ``reasoning`` as in :func:`extract_json`.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    def one(item: Mapping[str, Any]) -> dict[str, Any]:
        done = extract_json(endpoint, item["text"], schema=schema, instruction=instruction, max_tokens=max_tokens,
                            seed=seed, constrained=constrained, examples=examples, reasoning=reasoning)
        return {**_scored(item, done.value, done.reply.text, done.reply.total_s, done.problem),
                "finish_reason": done.reply.finish_reason}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return pd.DataFrame(list(pool.map(one, items)))


@dataclass(frozen=True)
class Parsed:
    """A free-text answer's first JSON object when it validates (else ``None``), and why not."""

    value: dict[str, Any] | None
    problem: str = ""


def parse_answer(text: str, schema: Mapping[str, Any]) -> Parsed:
    """The first JSON object in a free-text answer if it validates against ``schema``."""
    import jsonschema  # noqa: PLC0415

    try:
        obj = _first_json_object(text)
        jsonschema.validate(obj, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        return Parsed(None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Parsed(obj)


def score_answers(items: Sequence[Mapping[str, Any]], answers: Sequence[str], *, schema: Mapping[str, Any],
                  seconds: Sequence[float] | None = None):
    """Score free-text ``answers`` (one per item, from any model) exactly as :func:`run_extractions` scores a server's.

    The same table: ``valid``, ``<field>_ok``, ``all_ok``, ``fields_correct``, ``wrong``, ``answer``, ``seconds``, ``error``.
    """
    import pandas as pd  # noqa: PLC0415

    if len(answers) != len(items):
        raise InputError(f"{len(answers)} answers for {len(items)} items.")
    seconds = list(seconds) if seconds is not None else [float("nan")] * len(items)
    rows = []
    for item, text, s in zip(items, answers, seconds, strict=True):
        parsed = parse_answer(text, schema)
        rows.append(_scored(item, parsed.value, text, s, parsed.problem))
    return pd.DataFrame(rows)


def _norm(v: Any) -> str:
    return " ".join(str(v).lower().split())


def _scored(item: Mapping[str, Any], value: dict[str, Any] | None, text: str, seconds: float,
            problem: str) -> dict[str, Any]:
    valid = value is not None
    expected = item.get("expected", {})
    hits = {f"{k}_ok": valid and _norm(value.get(k)) in {_norm(a) for a in (v if isinstance(v, list) else [v])}
            for k, v in expected.items()}
    wrong = "; ".join(f"{k}: {(value or {}).get(k)!r} (answer {v!r})" for k, v in expected.items()
                      if valid and not hits[f"{k}_ok"]) if valid else "not schema-valid"
    return {"text": item["text"], "valid": valid, **hits, "all_ok": all(hits.values()) if hits else False,
            "fields_correct": sum(hits.values()) / len(hits) if hits else float("nan"), "wrong": wrong,
            "answer": text, "seconds": seconds, "error": problem}


def field_accuracy(table):
    """Per-field accuracy of :func:`run_extractions`' table with 95% Wilson intervals, plus schema-valid and all-fields rows."""
    import pandas as pd  # noqa: PLC0415

    from ..intervals import wilson  # noqa: PLC0415

    columns = ["valid", *[c for c in table.columns if c.endswith("_ok")]]
    rows = {}
    for column in columns:
        k, n = int(table[column].sum()), len(table)
        low, high = wilson(k, n)
        name = "all fields" if column == "all_ok" else column.removesuffix("_ok")
        rows[name] = {"right": k, "of": n, "rate": k / n, "low": low, "high": high}
    return pd.DataFrame(rows).T.astype({"right": int, "of": int})
