"""Claims: a headline figure, the baseline it must beat, the test that decides it, and the verdict.

A claim is data, not prose. :func:`claim` takes two results the run has already recorded with
:func:`sparkbooks.record` — the headline (``metric``) and the trivial thing a practitioner would
try first (``baseline``) — says how they must compare (``greater``, ``smaller``, or ``within`` a
tolerance), names the test that decides it with its evidence (a p-value or an interval), and
computes the verdict:

* ``holds`` — the evidence decides for the claim;
* ``does not hold`` — the evidence decides against it;
* ``not decided`` — the evidence cannot tell (a p-value at or above ``alpha``, an interval that
  straddles the line).

The claim is stored in the run's ``results.json`` (under ``"claims"``) and shown in the notebook
as a sentence rendered from the verdict, so a verdict is never typed. The guide site lists every
claim in a **Claims** table at the top of the guide.

Tests and their evidence (:data:`TESTS`):

============================  =============================  ===========================================
``test``                      evidence                       use it for
============================  =============================  ===========================================
``exact``                     none                           figures without sampling noise: an
                                                             optimiser's objective, a count over all data
``wilson``                    ``interval`` of the metric     a rate (k of n) against a fixed reference
``mcnemar``                   ``p`` (exact, two-sided)       two methods right/wrong on the same items
``hac``                       ``p`` (Ledoit–Wolf)            two Sharpe ratios on the same days
``paired-bootstrap``          ``interval`` of the difference two methods scored on the same units
``block-bootstrap``           ``interval`` of the difference the same, for serially dependent days
``seed-bootstrap``            ``interval`` of the difference seeds as the unit of replication
============================  =============================  ===========================================

An ``interval`` of the *difference* is of ``metric − baseline``; a ``wilson`` interval is of the
metric itself, the baseline taken as a fixed reference. The verdict from an interval: ``holds``
when all of it satisfies the claim, ``does not hold`` when none of it does, else ``not decided``.
From a p-value: ``holds`` when ``p < alpha`` and the point values differ in the claimed direction,
``does not hold`` when ``p < alpha`` the other way, else ``not decided``.

>>> c = evaluate("faster", value=1.2, baseline=3.4, metric="ours_s", baseline_name="plain_s",
...              compare="smaller", test="exact", text="the new path is faster than the plain one")
>>> c.verdict
'holds'
"""

from __future__ import annotations

import ast
import html
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .exceptions import InputError, MetadataError

__all__ = [
    "COMPARES", "Claim", "DOES_NOT_HOLD", "HOLDS", "NOT_DECIDED", "TESTS", "VERDICTS", "assert_problems", "claim",
    "claim_problems", "decide", "evaluate", "markdown_problems", "markdown_table", "output_problems", "problems",
    "recorded", "show", "validate_declarations",
]

HOLDS, DOES_NOT_HOLD, NOT_DECIDED = "holds", "does not hold", "not decided"
#: The three verdicts, in the order a reader meets them.
VERDICTS = (HOLDS, DOES_NOT_HOLD, NOT_DECIDED)
#: How the metric must stand to its baseline.
COMPARES = ("greater", "smaller", "within")
#: Test name → (evidence it takes, words used in sentences).
TESTS: dict[str, tuple[str | None, str]] = {
    "exact": (None, "exact figures, no sampling test"),
    "wilson": ("interval", "Wilson 95% interval of the rate"),
    "mcnemar": ("p", "exact McNemar test"),
    "hac": ("p", "Ledoit–Wolf HAC test"),
    "paired-bootstrap": ("interval", "paired bootstrap interval of the difference"),
    "block-bootstrap": ("interval", "block bootstrap interval of the difference"),
    "seed-bootstrap": ("interval", "seed-level bootstrap interval of the difference"),
}
_DIFFERENCE_INTERVAL = {"paired-bootstrap", "block-bootstrap", "seed-bootstrap"}
_CALLER = "claim()"


def _invalid(name: str, constraint: str, value: Any, caller: str = _CALLER) -> InputError:
    return InputError(f"The {name!r} parameter of {caller} must be {constraint}. Got {value!r} instead.")


def _options(values: Iterable[str]) -> str:
    return "a str among {" + ", ".join(repr(v) for v in values) + "}"


def _number(value: Any, name: str, caller: str = _CALLER) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise _invalid(name, "a finite real number", value, caller)
    return float(value)


def _pair(interval: Any, caller: str = _CALLER) -> tuple[float, float]:
    """``low, high`` from an :class:`~sparkbooks.intervals.Interval`, a ``Difference`` or a 2-sequence."""
    if hasattr(interval, "low") and hasattr(interval, "high"):
        low, high = interval.low, interval.high
    elif isinstance(interval, Sequence) and not isinstance(interval, str) and len(interval) == 2:
        low, high = interval
    else:
        raise _invalid("interval", "a (low, high) pair or an Interval", interval, caller)
    low, high = _number(low, "interval", caller), _number(high, "interval", caller)
    if low > high:
        raise _invalid("interval", "a (low, high) pair with low <= high", (low, high), caller)
    return low, high


def decide(value: float, baseline: float, *, compare: str, test: str, tolerance: float = 0.0,
           relative: bool = False, p: float | None = None, interval: Any = None, alpha: float = 0.05) -> str:
    """The verdict — ``holds``, ``does not hold`` or ``not decided`` — of ``value`` against ``baseline``.

    Parameters
    ----------
    value, baseline
        The headline figure and the figure it must beat.
    compare
        ``greater`` (value above baseline by more than ``tolerance``), ``smaller`` (below by more
        than ``tolerance``) or ``within`` (``|value − baseline| <= tolerance``; tolerance > 0).
    test
        A name in :data:`TESTS`; it says which evidence (``p`` or ``interval``) is required.
    tolerance, relative
        The margin; with ``relative=True`` a share of ``|baseline|`` (0.02 = 2 %).
    p, interval, alpha
        The test's evidence and the level a p-value must fall below.

    Returns
    -------
    str
        One of :data:`VERDICTS`.

    Raises
    ------
    InputError
        An unknown comparison or test, or evidence that does not fit the test (named in the message).
    """
    value, baseline = _number(value, "value"), _number(baseline, "baseline")
    if compare not in COMPARES:
        raise _invalid("compare", _options(COMPARES), compare)
    if test not in TESTS:
        raise _invalid("test", _options(TESTS), test)
    tolerance = _number(tolerance, "tolerance")
    if tolerance < 0:
        raise _invalid("tolerance", "a number >= 0", tolerance)
    if compare == "within" and tolerance == 0:
        raise InputError("compare='within' needs a tolerance > 0: say how close counts as the same "
                         "(e.g. tolerance=0.01, or tolerance=0.02, relative=True for 2 %).")
    if not 0 < _number(alpha, "alpha") < 1:
        raise _invalid("alpha", "a float in (0, 1)", alpha)
    margin = tolerance * abs(baseline) if relative else tolerance
    needs = TESTS[test][0]
    given = [n for n, v in (("p", p), ("interval", interval)) if v is not None]
    if needs is None and given:
        raise InputError(f"test='exact' takes no evidence, but {' and '.join(given)} was given: name the test "
                         f"that produced it ({', '.join(t for t in TESTS if t != 'exact')}).")
    if needs is not None and given != [needs]:
        raise InputError(f"test={test!r} decides from {'a p-value: pass p=' if needs == 'p' else 'an interval: pass interval='}"
                         f"…{' only' if given else ''}; got {', '.join(given) or 'no evidence'}.")
    diff = value - baseline
    if needs is None:  # exact: the point values decide
        if compare == "within":
            return HOLDS if abs(diff) <= margin else DOES_NOT_HOLD
        better = diff if compare == "greater" else -diff
        return HOLDS if better > margin else DOES_NOT_HOLD
    if needs == "p":
        if compare == "within" or margin:
            raise InputError(f"test={test!r} gives a p-value against 'no difference', which cannot decide "
                             "a tolerance: use an interval test (paired-bootstrap, seed-bootstrap, wilson) instead.")
        p = _number(p, "p")
        if not 0 <= p <= 1:
            raise _invalid("p", "a float in [0, 1]", p)
        if p >= alpha or diff == 0:
            return NOT_DECIDED
        return HOLDS if (diff > 0) == (compare == "greater") else DOES_NOT_HOLD
    low, high = _pair(interval)
    if test not in _DIFFERENCE_INTERVAL:  # an interval of the metric itself; the baseline is a fixed reference
        low, high = low - baseline, high - baseline
    if compare == "within":
        if -margin <= low and high <= margin:
            return HOLDS
        return DOES_NOT_HOLD if low > margin or high < -margin else NOT_DECIDED
    if compare == "smaller":
        low, high = -high, -low
    if low > margin:
        return HOLDS
    return DOES_NOT_HOLD if high <= margin else NOT_DECIDED


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


@dataclass(frozen=True)
class Claim:
    """One decided claim: what was compared, how, the evidence and the verdict with its sentence."""

    name: str
    text: str
    metric: str
    value: float
    baseline: str
    baseline_value: float
    compare: str
    tolerance: float
    relative: bool
    test: str
    p: float | None
    low: float | None
    high: float | None
    alpha: float
    verdict: str
    sentence: str
    unit: str = ""

    @property
    def holds(self) -> bool:
        return self.verdict == HOLDS

    @property
    def evidence(self) -> str:
        """The test and its evidence in words: ``exact McNemar test, p = 0.003``."""
        words = TESTS[self.test][1]
        if self.p is not None:
            return f"{words}, p = {self.p:.2g} (α = {self.alpha:g})"
        if self.low is not None:
            return f"{words} [{_fmt(self.low)}, {_fmt(self.high)}]"
        return words

    @property
    def comparison(self) -> str:
        """The claimed relation in words: ``smaller than``, ``within 2% of``."""
        tol = f"{self.tolerance:.0%}" if self.relative else _fmt(self.tolerance)
        if self.compare == "within":
            return f"within {tol} of"
        word = "greater than" if self.compare == "greater" else "smaller than"
        return f"{word} (by more than {tol})" if self.tolerance else word

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"evidence": self.evidence, "comparison": self.comparison}

    def __str__(self) -> str:
        return self.sentence

    def _repr_markdown_(self) -> str:
        return self.sentence

    def _repr_html_(self) -> str:  # JupyterLab and nbconvert show this as prose, not as code output
        import html  # noqa: PLC0415

        import re  # noqa: PLC0415

        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(self.sentence))
        text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
        return (f'<p class="sb-claim sb-claim-{self.verdict.replace(" ", "-")}" data-claim="{html.escape(self.name)}" '
                f'data-verdict="{self.verdict}">{text}</p>')


class _Figure(float):
    """A float that formats as 4 significant figures by default and honours any format spec (``{value:.1%}``)."""

    def __format__(self, spec: str) -> str:
        return _fmt(float(self)) if not spec else format(float(self), spec)


def _sentence(c: dict[str, Any], sentences: Mapping[str, str] | None) -> str:
    def figure(x: float | None) -> Any:
        return "—" if x is None else _Figure(x)

    fields = {**c, "value": figure(c["value"]), "baseline_value": figure(c["baseline_value"]),
              "difference": figure(c["value"] - c["baseline_value"]), "low": figure(c["low"]),
              "high": figure(c["high"]), "p": figure(c["p"]), "tolerance": figure(c["tolerance"])}
    unit = f" {c['unit']}" if c.get("unit") else ""
    figures = (f"`{c['metric']}` = {_fmt(c['value'])}{unit} vs `{c['baseline']}` = {_fmt(c['baseline_value'])}{unit}; "
               f"{c['evidence']}")
    if sentences and c["verdict"] in sentences:
        try:
            said = sentences[c["verdict"]].format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"claim {c['name']!r}: the {c['verdict']!r} sentence cannot be filled ({exc!r}); "
                             f"fields: {', '.join(sorted(fields))}.") from None
        return f"**{c['verdict']}** — {said} ({figures})."
    return f"**{c['verdict']}** — {c['text']}: {figures}."


def evaluate(name: str, *, value: float, baseline: float, metric: str, baseline_name: str, text: str,
             compare: str = "greater", test: str, tolerance: float = 0.0, relative: bool = False,
             p: float | None = None, interval: Any = None, alpha: float = 0.05,
             sentences: Mapping[str, str] | None = None, unit: str = "") -> Claim:
    """Decide a claim from figures in hand (no session): what :func:`claim` does after looking them up.

    ``sentences`` maps a verdict to the sentence said when it falls that way, a format string
    with the fields ``{value}``, ``{baseline_value}``, ``{difference}``, ``{low}``, ``{high}``,
    ``{p}``, ``{metric}``, ``{baseline}``, ``{tolerance}``; a verdict without one says ``text``.
    """
    for label, given in (("name", name), ("metric", metric), ("baseline", baseline_name), ("text", text)):
        if not isinstance(given, str) or not given.strip():
            raise _invalid(label, "a non-empty str", given)
    if sentences is not None:
        if not isinstance(sentences, Mapping) or set(sentences) - set(VERDICTS):
            raise _invalid("sentences", "a mapping whose keys are among {" + ", ".join(map(repr, VERDICTS)) + "}",
                           sentences)
    if not isinstance(relative, bool):
        raise _invalid("relative", "a bool", relative)
    verdict = decide(value, baseline, compare=compare, test=test, tolerance=tolerance, relative=relative, p=p,
                     interval=interval, alpha=alpha)
    low, high = _pair(interval) if interval is not None else (None, None)
    partial = Claim(name=name, text=text.strip(), metric=metric, value=float(value), baseline=baseline_name,
                    baseline_value=float(baseline), compare=compare, tolerance=float(tolerance), relative=relative,
                    test=test, p=None if p is None else float(p), low=low, high=high, alpha=float(alpha),
                    verdict=verdict, sentence="", unit=unit)
    return Claim(**{**asdict(partial), "sentence": _sentence(partial.to_dict(), sentences)})


def claim(name: str, metric: str, *, baseline: str, compare: str = "greater", test: str, text: str,
          tolerance: float = 0.0, relative: bool = False, p: float | None = None, interval: Any = None,
          alpha: float = 0.05, sentences: Mapping[str, str] | None = None) -> Claim:
    """Decide and record a claim about two results of this run; show its sentence.

    Parameters
    ----------
    name
        The claim's key in ``results.json`` and the guide's Claims table (declared in the
        notebook's ``playbook.claims`` metadata).
    metric, baseline
        Names of results already recorded with :func:`sparkbooks.record`: the headline and the
        trivial figure it must beat. Their recorded values are compared, so a claim can never
        quote a figure the run did not record.
    compare, tolerance, relative, test, p, interval, alpha
        See :func:`decide`.
    text
        The claim in words, e.g. ``"the min-CVaR portfolio's realised tail loss is smaller than equal weight's"``.
    sentences
        Optional per-verdict sentences (see :func:`evaluate`), e.g.
        ``{"holds": "HDBSCAN finds the sub-topics …", "does not hold": "…"}``.

    Returns
    -------
    Claim
        Displayed in a notebook as its sentence (Markdown), the verdict first.

    Raises
    ------
    InputError
        A name that was not recorded (the message lists what was), a non-numeric result,
        or arguments :func:`decide` refuses.
    SessionError
        No playbook session (call :func:`sparkbooks.begin` first).

    Example
    -------
    >>> sb.claim("cvar_vs_equal_weight", "backtest_realised_cvar95", baseline="backtest_cvar95_equal_weight",
    ...          compare="smaller", test="block-bootstrap", interval=(lo, hi),
    ...          text="min-CVaR's realised 95% CVaR is smaller than equal weight's")  # doctest: +SKIP
    """
    from .session import current  # noqa: PLC0415

    session = current()
    figures = {}
    for label, key in (("metric", metric), ("baseline", baseline)):
        if not isinstance(key, str) or key not in session.results:
            raise InputError(f"claim({name!r}): the {label} {key!r} was not recorded in this run; record it first "
                             f"with sb.record({key!r}, value). Recorded: {', '.join(session.results) or 'nothing yet'}.")
        figures[label] = session.results[key]
        if isinstance(figures[label].value, (bool, str)):
            raise InputError(f"claim({name!r}): the {label} {key!r} is {figures[label].value!r}; a claim compares numbers.")
    made = evaluate(name, value=figures["metric"].value, baseline=figures["baseline"].value, metric=metric,
                    baseline_name=baseline, text=text, compare=compare, test=test, tolerance=tolerance,
                    relative=relative, p=p, interval=interval, alpha=alpha, sentences=sentences,
                    unit=figures["metric"].unit if figures["metric"].unit == figures["baseline"].unit else "")
    session.claims[name] = made.to_dict()
    session.save()
    return made


def recorded(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The claims of a ``results.json`` (as read), by name."""
    return {c["name"]: dict(c) for c in results.get("claims") or ()}


def markdown_table(claims: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown table — claim, value, baseline, test, verdict — of recorded claims."""
    rows = ["| claim | value | baseline | test | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        rows.append(f"| {c['text']} | `{c['metric']}` = {_fmt(c['value'])} | `{c['baseline']}` = "
                    f"{_fmt(c['baseline_value'])} | {c['evidence']} | **{c['verdict']}** |")
    return "\n".join(rows)


class _Markdown(str):
    def _repr_markdown_(self) -> str:
        return str(self)


def show(names: Iterable[str] | None = None) -> _Markdown:
    """The claims recorded so far in this session (or those named) as a Markdown table, for a notebook cell."""
    from .session import current  # noqa: PLC0415

    store = current().claims
    wanted = list(names) if names is not None else list(store)
    missing = [n for n in wanted if n not in store]
    if missing:
        raise InputError(f"No claim named {', '.join(map(repr, missing))} in this run. Claims: {', '.join(store) or 'none yet'}.")
    return _Markdown(markdown_table(store[n] for n in wanted))


_DECLARED_KEYS = {"name": str, "metric": str, "baseline": str, "compare": str, "test": str}
_DECLARED_OPTIONAL = {"tolerance": (int, float), "relative": bool, "text": str}


def validate_declarations(declared: Any, *, where: str) -> list[dict[str, Any]]:
    """Check ``playbook.claims`` metadata: a list of ``{name, metric, baseline, compare, test}``.

    Raises
    ------
    MetadataError
        Naming the notebook, the claim and what is wrong.
    """
    if not isinstance(declared, list):
        raise MetadataError(f"{where}: `playbook.claims` must be a list of claims, got {type(declared).__name__}.")
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(declared):
        label = f"{where}: `playbook.claims[{i}]`"
        if not isinstance(entry, Mapping):
            raise MetadataError(f"{label} must be a mapping, got {type(entry).__name__}.")
        missing = [k for k in _DECLARED_KEYS if k not in entry]
        if missing:
            raise MetadataError(f"{label} lacks {', '.join(missing)} (a claim declares {', '.join(_DECLARED_KEYS)}).")
        unknown = sorted(set(entry) - set(_DECLARED_KEYS) - set(_DECLARED_OPTIONAL))
        if unknown:
            raise MetadataError(f"{label} has unknown keys {', '.join(unknown)}; allowed: "
                                f"{', '.join([*_DECLARED_KEYS, *_DECLARED_OPTIONAL])}.")
        for key, kind in {**_DECLARED_KEYS, **_DECLARED_OPTIONAL}.items():
            if key in entry and (not isinstance(entry[key], kind) or (kind is not bool and isinstance(entry[key], bool))):
                raise MetadataError(f"{label}.{key} must be {getattr(kind, '__name__', 'a number')}, got {entry[key]!r}.")
        if entry["compare"] not in COMPARES:
            raise MetadataError(f"{label}.compare must be one of {', '.join(COMPARES)}; got {entry['compare']!r}.")
        if entry["test"] not in TESTS:
            raise MetadataError(f"{label}.test must be one of {', '.join(TESTS)}; got {entry['test']!r}.")
        if entry["metric"] == entry["baseline"]:
            raise MetadataError(f"{label}: metric and baseline are both {entry['metric']!r}; a claim needs a baseline.")
        if entry["name"] in seen:
            raise MetadataError(f"{label}: the claim name {entry['name']!r} is declared twice.")
        seen.add(entry["name"])
        out.append(dict(entry))
    return out


# --------------------------------------------------------------------------------------------------
# The checks tests/test_claims.py runs on every executed playbook (sklearn's parametrize_with_checks
# idea: one list of checks, applied to every notebook).

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
