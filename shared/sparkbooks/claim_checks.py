"""The checks tests/test_claims.py runs on every executed playbook: claims, prose and asserts that agree with the run.

sklearn's ``parametrize_with_checks`` idea — one list of checks, applied to every notebook: a declared
claim the run did not record, a recorded verdict its own evidence does not give, a verdict or a number
typed in Markdown instead of rendered from the run, an output showing a verdict no claim has, an
``assert`` without a message. :func:`problems` runs them all.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .evidence import decide
from .exceptions import InputError

__all__ = ["NEAR", "assert_problems", "claim_problems", "markdown_problems", "output_problems", "problems", "recorded"]


def recorded(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The claims of a ``results.json`` (as read), by name."""
    return {c["name"]: dict(c) for c in results.get("claims") or ()}



#: How far after a result's name (in backticks) a typed number is read as that result's value.
NEAR = 40
_NUMBER = re.compile(r"(?<![\w.])([-−]?\d[\d,]*(?:\.\d+)?)(\s?%)?")
_TYPED_VERDICT = re.compile(r"\*\*\s*holds\s*\*\*|\bdoes not hold\b|\bnot decided\b", re.I)
_FENCE = re.compile(r"```.*?```", re.S)
_SHOWN = re.compile(r"^\*\*(holds|does not hold|not decided)\*\* — ")


def _cell_source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _agrees(typed: str, percent: bool, value: float) -> bool:
    digits = typed.replace(",", "").replace("−", "-")
    number = float(digits)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    half = 0.5 * 10 ** -decimals
    scale = 100 if percent else 1
    candidates = [value * scale] if percent else [value, value * 100]  # "0.052" or "5.2" for a share written bare
    return any(abs(number - c) <= half * (1 + 1e-9) + 1e-12 for c in candidates)


def markdown_problems(notebook: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """Typed verdicts, and numbers typed beside a recorded result's name that disagree with the run.

    A number within :data:`NEAR` characters after a recorded result's name in backticks, in the
    same sentence, is read as a statement of that result's value and must equal it at the typed
    precision (``5.2 %`` for 0.052 agrees, ``2 %`` does not). Fenced code blocks are skipped.
    """
    found = []
    numeric = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for i, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        text = _FENCE.sub("", _cell_source(cell))
        for m in _TYPED_VERDICT.finditer(text):
            found.append(f"markdown cell {i}: typed verdict {m.group(0)!r}; render it from a claim (sb.claim) instead")
        for m in re.finditer(r"`([A-Za-z_][\w]*)`", text):
            name = m.group(1)
            if name not in numeric:
                continue
            after = re.split(r"(?<=[.!?])\s|\n|\|", text[m.end():m.end() + NEAR])[0]
            hit = _NUMBER.search(after)
            if hit and not _agrees(hit.group(1), bool(hit.group(2)), numeric[name]):
                found.append(f"markdown cell {i}: `{name}` {hit.group(0).strip()!r} typed, but the run recorded "
                             f"{numeric[name]:.6g}; show the recorded figure (a claim or a print), not a typed one")
    return found


def assert_problems(notebook: Mapping[str, Any]) -> list[str]:
    """Code cells holding an ``assert`` without a message."""
    found = []
    for i, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                           for line in _cell_source(cell).splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            found.append(f"code cell {i}: does not parse ({exc.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert) and node.msg is None:
                found.append(f"code cell {i}, line {node.lineno}: `assert {ast.unparse(node.test)[:60]}` has no "
                             "message: say what went wrong and what to do, or report it as a claim")
    return found


def claim_problems(results: Mapping[str, Any], declared: Iterable[Mapping[str, Any]]) -> list[str]:
    """Declared claims missing from the run, or recorded with other figures, settings or a verdict their evidence does not give."""
    found = []
    values = {r["name"]: r["value"] for r in results.get("results", [])}
    made = recorded(results)
    for d in declared:
        name = d["name"]
        c = made.get(name)
        if c is None:
            found.append(f"claim {name!r} is declared but the run did not record it (sb.claim({name!r}, …))")
            continue
        for key in ("metric", "baseline", "compare", "test", "tolerance", "relative"):
            if key in d and c.get(key) != d[key]:
                found.append(f"claim {name!r}: declared {key} {d[key]!r}, recorded {c.get(key)!r}")
    for name, c in made.items():
        for key, field in (("metric", "value"), ("baseline", "baseline_value")):
            if c[key] not in values:
                found.append(f"claim {name!r}: its {key} {c[key]!r} is not a recorded result")
            elif values[c[key]] != c[field]:
                found.append(f"claim {name!r}: {field} {c[field]!r} differs from the recorded {c[key]} = {values[c[key]]!r}")
        try:
            again = decide(c["value"], c["baseline_value"], compare=c["compare"], test=c["test"],
                           tolerance=c["tolerance"], relative=c["relative"], p=c["p"],
                           interval=None if c["low"] is None else (c["low"], c["high"]), alpha=c["alpha"])
        except InputError as exc:
            found.append(f"claim {name!r}: its evidence does not decide it ({exc})")
            continue
        if again != c["verdict"]:
            found.append(f"claim {name!r}: recorded verdict {c['verdict']!r}, but its evidence gives {again!r}")
        if not c["sentence"].startswith(f"**{c['verdict']}** — "):
            found.append(f"claim {name!r}: its sentence does not start with its verdict: {c['sentence'][:60]!r}")
    return found


def output_problems(notebook: Mapping[str, Any], results: Mapping[str, Any]) -> list[str]:
    """Outputs that state a verdict no recorded claim gives (a claim shown ``holds`` that was not decided so)."""
    found = []
    sentences = {c["sentence"] for c in recorded(results).values()}
    by_name = recorded(results)
    for i, cell in enumerate(notebook.get("cells", [])):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else ():
            data = out.get("data", {})
            md = data.get("text/markdown")
            md = "".join(md) if isinstance(md, list) else md
            if md and _SHOWN.match(md) and md not in sentences:
                found.append(f"code cell {i}: shows the verdict {_SHOWN.match(md).group(1)!r} in a sentence no recorded claim has")
            html = data.get("text/html")
            html = "".join(html) if isinstance(html, list) else (html or "")
            for m in re.finditer(r'data-claim="([^"]+)" data-verdict="([^"]+)"', html):
                c = by_name.get(m.group(1))
                if c is None or c["verdict"] != m.group(2):
                    found.append(f"code cell {i}: shows claim {m.group(1)!r} as {m.group(2)!r}, recorded "
                                 f"{c['verdict'] if c else 'nothing'!r}")
    return found


def problems(notebook: Mapping[str, Any], results: Mapping[str, Any], *,
             declared: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """Every check above on one executed notebook and its ``results.json``; empty when all pass."""
    values = {r["name"]: r["value"] for r in results.get("results", [])}
    return [*claim_problems(results, declared), *markdown_problems(notebook, values),
            *output_problems(notebook, results), *assert_problems(notebook)]
