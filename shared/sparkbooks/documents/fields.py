"""The invoice fields: schema, forgiving normalisation, matching against the answer key, and page candidates.

Parsing "16.221,26" or "11.02.2023" is code's job, done the same way every time; a model only
has to *find* each value — and, given :func:`page_candidates` as ``enum`` constraints, only to
*choose* one of the strings actually on the page.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

__all__ = ["FIELDS", "INVOICE_SCHEMA", "Match", "constrained_schema", "first_candidates", "match", "normalise",
           "page_candidates"]

#: The extracted fields and their normalised form in the answer key.
FIELDS = ("vendor", "invoice_number", "date", "total", "currency")

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string", "description": "name of the company that issued the invoice"},
        "invoice_number": {"type": ["string", "null"],
                           "description": "the invoice's own number, e.g. INV-4471 (not the PO number); null when none is printed"},
        "date": {"type": "string", "description": "the invoice date (not the due date), copied as printed"},
        "total": {"type": "string", "description": "the total amount due (not the subtotal), copied as printed"},
        "currency": {"type": "string", "description": "the currency symbol or code printed with the amounts"},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}


_CURRENCY_WORDS = {"$": "USD", "usd": "USD", "€": "EUR", "eur": "EUR", "£": "GBP", "gbp": "GBP"}


def _currency(text: str) -> str | None:
    return next((code for mark, code in _CURRENCY_WORDS.items() if mark in text.casefold()), None)


def _alnum(value) -> str:
    return "".join(ch for ch in str(value).casefold() if ch.isalnum())


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = "".join(ch for ch in str(value) if ch.isdigit() or ch in ",.")
    if not text:
        return None
    if "," in text and "." in text:  # the later separator is the decimal one
        text = text.replace(",", "") if text.rfind(".") > text.rfind(",") else text.replace(".", "").replace(",", ".")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        text = head.replace(",", "") + ("." if len(tail) == 2 else "") + tail
    try:
        return float(text)
    except ValueError:
        return None


def _date(value) -> str | None:
    """An ISO date from a printed one: OCR's 0-for-O and run-together words repaired, d.m.Y read day first."""
    from dateutil import parser  # noqa: PLC0415

    text = re.sub(r"\b0(?=[a-zA-Z])", "O", str(value).strip())
    text = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])|,(?=\S)", lambda m: m.group(0) + " ", text)
    try:
        return parser.parse(text, dayfirst=bool(re.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{4}", text))).date().isoformat()
    except (ValueError, OverflowError, TypeError):
        return None



@dataclass(frozen=True)
class Match:
    """Whether a predicted field equals the answer: exactly, and after forgiving normalisation."""

    exact: bool
    normalised: bool


def match(field: str, predicted, truth) -> Match:
    """Exact and normalised agreement of one predicted field with the answer key.

    Exact: the same string (for ``total``: the same number to the cent). Normalised: equal after
    the forgiving reading a person would apply — case, spaces and punctuation ignored, any date
    or amount notation parsed, currency symbols mapped to codes.
    """
    if truth is None:  # the page prints no such field: only "none" is right
        said_none = predicted is None or str(predicted).strip().casefold() in {"", "null", "none", "n/a"}
        return Match(predicted is None, said_none)
    if predicted is None:
        return Match(False, False)
    if field == "total":
        exact = isinstance(predicted, (int, float)) and not isinstance(predicted, bool) and abs(predicted - truth) < 0.005
        number = _number(predicted)
        return Match(exact, number is not None and abs(number - truth) < 0.005)
    exact = str(predicted).strip() == str(truth)
    if field == "date":
        return Match(exact, _date(predicted) == truth)
    if field == "currency":
        return Match(exact, _CURRENCY_WORDS.get(str(predicted).strip().casefold(), str(predicted).strip().upper()) == truth)
    return Match(exact, _alnum(predicted) == _alnum(truth))



def normalise(raw: dict) -> dict:
    """The LLM's as-printed fields in canonical form: ISO date, total as a number, currency as a code.

    The model only has to *find* each value; parsing "16.221,26" or "11.02.2023" is left to code,
    which does it the same way every time (a field that does not parse becomes ``None``).
    """
    total = str(raw.get("total", ""))
    currency = _currency(total) or _currency(str(raw.get("currency", "")))  # the mark printed with the total wins
    number = raw.get("invoice_number")
    number = str(number).strip() if number is not None else None
    return {"vendor": str(raw.get("vendor", "")).strip(), "invoice_number": number or None,
            "date": _date(raw.get("date", "")), "total": _number(total), "currency": currency}


_AMOUNT = re.compile(r"(?:[$€£]\s?)?(?<![\d.,])\d{1,3}(?:[.,]?\d{3})*[.,]\d{2}(?![\d])(?:\s?(?:USD|EUR|GBP))?")
_MONTH = r"(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|0ct|Nov|Dec)[a-z]*\.?)"
_DATE = re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}[./]\d{{1,2}}[./]\d{{4}}|(?:\d{{1,2}}\s?)?{_MONTH}\s?(?:\d{{1,2}},?\s?)?\d{{4}}")
_LABEL_END = re.compile(r".*(?:[:#]|No\.)\s*")
_CURRENCY_MARK = re.compile(r"[$€£]|(?<![A-Za-z])(?:USD|EUR|GBP)(?![A-Za-z])")


def page_candidates(text: str) -> dict[str, list[str]]:
    """Strings on the page that each field could be, found without knowing the layout.

    vendor: the first three lines; date: anything a date parser accepts; total: every amount; currency:
    every currency symbol or code; invoice_number: the tokens with a digit that follow a label ending in
    ``:``, ``#`` or ``No.`` (every other token with a digit when none does). Used as ``enum`` constraints,
    so a small model *chooses* a span of the page instead of writing one.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    dates = list(dict.fromkeys(m.group(0).strip() for m in _DATE.finditer(text) if _date(m.group(0))))
    undated = _DATE.sub(lambda m: " " * len(m.group(0)), text)  # "11.02.2023" holds no amount
    # a repeated amount keeps its *last* place: the total often repeats a line item's amount
    amounts = list(dict.fromkeys(m.group(0).strip() for m in reversed(list(_AMOUNT.finditer(undated)))))[::-1]
    taken = set(amounts) | set(dates)
    # a labelled value beats an unlabelled one (a 135M model otherwise picks the street number half the time)
    labelled, other = [], []
    for line in lines:
        for token in line.split():
            tail = _LABEL_END.sub("", token)
            if any(ch.isdigit() for ch in tail) and not any(t in tail or tail in t for t in taken):
                (labelled if tail != token else other).append(tail)
    marks = list(dict.fromkeys(_CURRENCY_MARK.findall(text)))
    return {"vendor": lines[:3], "invoice_number": list(dict.fromkeys(labelled or other)), "date": dates, "total": amounts,
            "currency": marks}


def first_candidates(text: str) -> dict:
    """A baseline without any model: each field's first page candidate (the *last* amount for the total), normalised.

    What the candidates alone are worth — the bar an LLM choosing among them has to clear.
    """
    found = page_candidates(text)
    first = {field: (options[0] if options else "") for field, options in found.items()}
    first["total"] = found["total"][-1] if found["total"] else ""
    return normalise(first)


def constrained_schema(text: str, schema: dict = INVOICE_SCHEMA) -> dict:
    """``schema`` with each field limited to the :func:`page_candidates` found in ``text`` (fields without any stay free).

    A field the schema allows to be ``null`` keeps ``null`` among its choices, so "not on the page" stays sayable.
    """
    narrowed = copy.deepcopy(schema)
    for field, options in page_candidates(text).items():
        if options:
            prop = narrowed["properties"][field]
            nullable = "null" in (prop["type"] if isinstance(prop.get("type"), list) else [prop.get("type")])
            prop["enum"] = [*options, None] if nullable else options
    return narrowed
