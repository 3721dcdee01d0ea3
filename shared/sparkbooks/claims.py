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

The verdict rule and the tests a claim may name (with the evidence each takes) are
:mod:`sparkbooks.evidence`; the checks every executed playbook passes are
:mod:`sparkbooks.claim_checks`. Both modules' names are importable from here too.

>>> c = evaluate("faster", value=1.2, baseline=3.4, metric="ours_s", baseline_name="plain_s",
...              compare="smaller", test="exact", text="the new path is faster than the plain one")
>>> c.verdict
'holds'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .claim_checks import (NEAR, assert_problems, claim_problems, markdown_problems, output_problems, problems,
                           recorded)
from .evidence import COMPARES, DOES_NOT_HOLD, HOLDS, NOT_DECIDED, TESTS, VERDICTS, decide
from .evidence import _fmt, _invalid, _pair  # the shared validation and figure format of the claim's record
from .exceptions import InputError, MetadataError

__all__ = [
    "COMPARES", "Claim", "DOES_NOT_HOLD", "HOLDS", "NEAR", "NOT_DECIDED", "TESTS", "VERDICTS", "assert_problems", "claim",
    "claim_problems", "decide", "evaluate", "markdown_problems", "markdown_table", "output_problems", "problems",
    "recorded", "show", "validate_declarations",
]


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
        if self.low is not None:  # an interval at another level than 95%: a family of comparisons (Bonferroni)
            level = "" if self.alpha == 0.05 else f" at {1 - self.alpha:.2%}"
            return f"{words}{level} [{_fmt(self.low)}, {_fmt(self.high)}]"
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
