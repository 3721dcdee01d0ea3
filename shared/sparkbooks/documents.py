"""Invoice images with an exact answer key: the test set for document → JSON extraction.

Each document varies what real scans vary — font (the DejaVu family), layout, field labels,
date and amount formats, line items, noise, a slight rotation and JPEG artefacts — while its
ground truth is known exactly, so any backend (OCR + LLM, or a VLM) can be scored on it.
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from .exceptions import MissingDependencyError

__all__ = [
    "Document", "EXTRACTION_EXAMPLE", "EXTRACTION_INSTRUCTION", "FIELDS", "INVOICE_SCHEMA", "VLM_INSTRUCTION",
    "constrained_schema", "extract_from_text", "extract_with_ocr", "extract_with_vlm", "first_candidates",
    "font_paths", "make_invoices", "match", "normalise", "page_candidates", "plot_extractions", "score",
]

#: The extracted fields and their normalised form in the answer key.
FIELDS = ("vendor", "invoice_number", "date", "total", "currency")

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string", "description": "name of the company that issued the invoice"},
        "invoice_number": {"type": "string", "description": "the invoice number, e.g. INV-4471"},
        "date": {"type": "string", "description": "the invoice date, copied as printed"},
        "total": {"type": "string", "description": "the total amount due, copied as printed"},
        "currency": {"type": "string", "description": "the currency symbol or code printed with the amounts"},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")
_VENDORS = ["Northwind Traders", "Contoso Supplies", "Fabrikam Robotics", "Tailspin Components", "Adatum Labs",
            "Litware Printing", "Proseware Logistics", "Wingtip Tools", "Alpine Ski House", "Coho Vineyard",
            "Blue Yonder Freight", "Fourth Coffee", "Lucerne Publishing", "Margie's Travel", "Trey Research"]
_ITEMS = ["Consulting hours", "GPU server rental", "Cable set", "Annual licence", "Shipping", "Spare parts",
          "Training session", "Support plan", "Storage array", "Network switch", "Printer toner", "Desk chairs"]
_SYMBOL = {"USD": "$", "EUR": "€", "GBP": "£"}
_NUMBER_LABELS = ["Invoice No.", "Invoice #", "Invoice number:", "No.", "Ref:"]
_DATE_LABELS = ["Date:", "Invoice date:", "Issued:", "Dated"]
_TOTAL_LABELS = ["Total due:", "TOTAL", "Amount due:", "Balance due:", "Total:"]
_DATE_FORMATS = ["%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%d.%m.%Y"]  # unambiguous day/month orders only


@dataclass
class Document:
    """One generated invoice: the JPEG bytes, its answer key and how it was made."""

    image: bytes
    truth: dict
    layout: str
    font: str

    def pil(self):
        from PIL import Image  # noqa: PLC0415

        return Image.open(io.BytesIO(self.image))


def font_paths() -> list[Path]:
    """DejaVu TrueType fonts found on this system (Debian: ``fonts-dejavu-core``)."""
    for folder in _FONT_DIRS:
        found = sorted(p for p in Path(folder).glob("DejaVu*.ttf") if "ExtraLight" not in p.name) if Path(folder).is_dir() else []
        if found:
            return found
    raise MissingDependencyError("No DejaVu fonts found: `sudo apt install fonts-dejavu-core` (Debian/Ubuntu) "
                                 "or `conda install -c conda-forge font-ttf-dejavu-sans-mono`.")


def _amount(value: float, currency: str, style: int) -> str:
    text = f"{value:,.2f}"
    if style == 1:  # European grouping: 1.234,56
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{_SYMBOL[currency]}{text}" if style != 2 else f"{text} {currency}"


def _one(rng: random.Random, fonts: list[Path], index: int) -> Document:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: PLC0415

    vendor = rng.choice(_VENDORS)
    number = f"{rng.choice(['INV', 'IN', 'F', 'BILL'])}-{rng.randint(1000, 99999)}"
    day = date(2023, 1, 1) + timedelta(days=rng.randint(0, 729))
    currency = rng.choice(list(_SYMBOL))
    items = [(rng.choice(_ITEMS), rng.randint(1, 9), round(rng.uniform(5, 900), 2)) for _ in range(rng.randint(2, 5))]
    subtotal = round(sum(q * p for _, q, p in items), 2)
    tax = round(subtotal * rng.choice([0.0, 0.07, 0.2]), 2)
    total = round(subtotal + tax, 2)
    style = rng.choice([0, 0, 1, 2]) if currency == "EUR" else rng.choice([0, 0, 2])
    font_file = rng.choice(fonts)
    size = rng.randint(17, 22)
    font = ImageFont.truetype(str(font_file), size)
    big = ImageFont.truetype(str(font_file), size + 10)
    width, height = 900, 420 + 34 * len(items)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    layout = rng.choice(["header-left", "header-right"])
    x0, right = 40, width - 40
    draw.text((x0, 30), vendor, font=big, fill=0)
    draw.text((x0, 30 + size + 16), f"{rng.randint(1, 999)} {rng.choice(['Main St', 'Harbour Rd', 'Via Roma', 'High St'])}",
              font=font, fill=60)
    meta = [f"{rng.choice(_NUMBER_LABELS)} {number}", f"{rng.choice(_DATE_LABELS)} {day.strftime(rng.choice(_DATE_FORMATS))}"]
    for k, line in enumerate(meta):
        xm = right - int(draw.textlength(line, font=font)) if layout == "header-right" else x0
        draw.text((xm, 130 + k * (size + 12)), line, font=font, fill=0)
    y = 210
    draw.line((x0, y - 8, right, y - 8), fill=120, width=1)
    for name, qty, price in items:
        draw.text((x0, y), f"{qty} x {name}", font=font, fill=0)
        cost = _amount(qty * price, currency, style)
        draw.text((right - int(draw.textlength(cost, font=font)), y), cost, font=font, fill=0)
        y += 34
    draw.line((x0, y + 4, right, y + 4), fill=120, width=1)
    for label, value in (("Tax", tax), (rng.choice(_TOTAL_LABELS), total)):
        line = f"{label} {_amount(value, currency, style)}"
        draw.text((right - int(draw.textlength(line, font=font)), y + 16), line, font=font, fill=0)
        y += 36
    # scan artefacts: slight rotation, blur, sensor noise, JPEG compression
    page = page.rotate(rng.uniform(-2.0, 2.0), resample=Image.BICUBIC, expand=True, fillcolor=255)
    if rng.random() < 0.5:
        page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    noisy = np.asarray(page, dtype=np.float32) + np.random.default_rng(index).normal(0, rng.uniform(2, 9), page.size[::-1])
    page = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB")
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=rng.randint(55, 90))
    truth = {"vendor": vendor, "invoice_number": number, "date": day.isoformat(), "total": total, "currency": currency}
    return Document(image=buffer.getvalue(), truth=truth, layout=layout, font=font_file.name)


def make_invoices(n: int, *, seed: int = 0) -> list[Document]:
    """``n`` invoice images with their answer keys, identical for the same ``seed``."""
    fonts = font_paths()
    rng = random.Random(seed)
    return [_one(rng, fonts, seed * 100_003 + i) for i in range(n)]


EXTRACTION_INSTRUCTION = (
    "You read the OCR text of one scanned invoice and return its fields as JSON. vendor: the issuing company "
    "(the first line). invoice_number: the reference after the invoice-number label, never the street address. "
    "date, total: copied exactly as printed; total is the final amount due (the last amount). "
    "currency: the symbol or code printed next to the amounts.")

#: A worked example for few-shot prompting (not one of the generated documents: other vendor, numbers, layout).
EXTRACTION_EXAMPLE = (
    "Globex Hardware\n12 Elm St\nInvoice #: Q-2718\nIssued: 03 Jul 2023\n2xMonitor arms 118.00\n"
    "1xDocking station 249.90\nTax 0.00\nTotal due: €367.90",
    {"vendor": "Globex Hardware", "invoice_number": "Q-2718", "date": "03 Jul 2023", "total": "€367.90", "currency": "€"})

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


def match(field: str, predicted, truth) -> tuple[bool, bool]:
    """(exact, normalised) agreement of one predicted field with the answer key.

    Exact: the same string (for ``total``: the same number to the cent). Normalised: equal after
    the forgiving reading a person would apply — case, spaces and punctuation ignored, any date
    or amount notation parsed, currency symbols mapped to codes.
    """
    if predicted is None:
        return False, False
    if field == "total":
        exact = isinstance(predicted, (int, float)) and not isinstance(predicted, bool) and abs(predicted - truth) < 0.005
        number = _number(predicted)
        return exact, number is not None and abs(number - truth) < 0.005
    exact = str(predicted).strip() == str(truth)
    if field == "date":
        return exact, _date(predicted) == truth
    if field == "currency":
        return exact, _CURRENCY_WORDS.get(str(predicted).strip().casefold(), str(predicted).strip().upper()) == truth
    return exact, _alnum(predicted) == _alnum(truth)


def score(predictions: list[dict | None], documents: list[Document], seconds: list[float]):
    """Per-document table and per-field summary: exact / normalised match, schema-valid rate, seconds per document.

    ``predictions[i]`` is the schema-valid object extracted from ``documents[i]``, or ``None``
    when the backend returned nothing valid (every field then counts as wrong).
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for pred, doc, secs in zip(predictions, documents, seconds, strict=True):
        row = {"valid": pred is not None, "seconds": secs}
        for field in FIELDS:
            row[f"{field}_exact"], row[f"{field}_normalised"] = match(field, (pred or {}).get(field), doc.truth[field])
        rows.append(row)
    table = pd.DataFrame(rows)
    summary = pd.DataFrame({"exact": [table[f"{f}_exact"].mean() for f in FIELDS],
                            "normalised": [table[f"{f}_normalised"].mean() for f in FIELDS]}, index=list(FIELDS))
    summary.loc["all fields"] = [table[[f"{f}_exact" for f in FIELDS]].to_numpy().mean(),
                                 table[[f"{f}_normalised" for f in FIELDS]].to_numpy().mean()]
    return table, summary


def normalise(raw: dict) -> dict:
    """The LLM's as-printed fields in canonical form: ISO date, total as a number, currency as a code.

    The model only has to *find* each value; parsing "16.221,26" or "11.02.2023" is left to code,
    which does it the same way every time (a field that does not parse becomes ``None``).
    """
    total = str(raw.get("total", ""))
    currency = _currency(total) or _currency(str(raw.get("currency", "")))  # the mark printed with the total wins
    return {"vendor": str(raw.get("vendor", "")).strip(), "invoice_number": str(raw.get("invoice_number", "")).strip(),
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
    """``schema`` with each field limited to the :func:`page_candidates` found in ``text`` (fields without any stay free)."""
    import copy  # noqa: PLC0415

    narrowed = copy.deepcopy(schema)
    for field, options in page_candidates(text).items():
        if options:
            narrowed["properties"][field]["enum"] = options
    return narrowed


def extract_from_text(endpoint, texts: list[str], *, spans: bool = True, few_shot: bool = True, seed: int = 0,
                      timeout: float = 120.0):
    """Constrained JSON extraction by the LLM at ``endpoint`` from each page's OCR text.

    ``spans``: limit each field to strings found on the page (:func:`constrained_schema`); the
    answer still validates against :data:`INVOICE_SCHEMA`. Returns ``(predictions, seconds)``:
    the :func:`normalise`-d objects (``None`` when not schema-valid) and the LLM seconds per page.
    A request unanswered for ``timeout`` seconds raises :class:`~sparkbooks.exceptions.RequestTimeoutError`.
    """
    from .llm import extract_json  # noqa: PLC0415

    predictions, seconds = [], []
    for text in texts:
        schema = constrained_schema(text) if spans else INVOICE_SCHEMA
        obj, _, reply = extract_json(endpoint, text, schema=schema, instruction=EXTRACTION_INSTRUCTION,
                                     max_tokens=120, seed=seed, examples=[EXTRACTION_EXAMPLE] if few_shot else (),
                                     timeout=timeout)
        predictions.append(normalise(obj) if obj is not None and _valid(obj) else None)
        seconds.append(reply.total_s)
    return predictions, seconds


def _valid(obj: dict) -> bool:
    import jsonschema  # noqa: PLC0415

    return jsonschema.Draft202012Validator(INVOICE_SCHEMA).is_valid(obj)


def extract_with_ocr(endpoint, ocr, documents: list[Document], *, spans: bool = True, seed: int = 0):
    """The CPU path end to end: OCR each page, then :func:`extract_from_text`.

    Returns ``(predictions, seconds, texts)``; seconds per document include the OCR.
    """
    reads = [ocr.read(doc.image) for doc in documents]
    predictions, seconds = extract_from_text(endpoint, [r.text for r in reads], spans=spans, seed=seed)
    return predictions, [r.seconds + s for r, s in zip(reads, seconds, strict=True)], [r.text for r in reads]


VLM_INSTRUCTION = ("This is a scanned invoice. Return its fields as JSON. vendor: the issuing company. invoice_number, "
                   "date and total: copied exactly as printed; total is the final amount due. currency: the symbol or "
                   "code printed with the amounts.")


def extract_with_vlm(endpoint, documents: list[Document], *, max_side: int = 1280, seed: int = 0, timeout: float = 300.0):
    """The VLM path: each page image to the model at ``endpoint`` with :data:`INVOICE_SCHEMA` as the response format.

    Returns ``(predictions, seconds, replies)``, predictions :func:`normalise`-d exactly as the OCR path's are,
    so :func:`score` compares the two on equal terms.
    """
    import json  # noqa: PLC0415

    from .vlm import ask, load_image  # noqa: PLC0415

    predictions, seconds, replies = [], [], []
    for doc in documents:
        reply = ask(endpoint, [load_image(doc.image, max_side=max_side)], VLM_INSTRUCTION, schema=INVOICE_SCHEMA,
                    max_tokens=200, seed=seed, timeout=timeout)
        try:
            obj = json.loads(reply.text)
        except json.JSONDecodeError:
            obj = None
        predictions.append(normalise(obj) if isinstance(obj, dict) and _valid(obj) else None)
        seconds.append(reply.total_s)
        replies.append(reply)
    return predictions, seconds, replies


def plot_extractions(documents: list[Document], predictions: list[dict | None], *, n: int = 4):
    """The first ``n`` pages beside the JSON extracted from them; wrong fields marked ✗ with the right answer."""
    import json  # noqa: PLC0415

    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(n, 2, figsize=(11, 3.3 * n), gridspec_kw={"width_ratios": [1.3, 1]}, squeeze=False)
    for (left, right), doc, pred in zip(axes, documents, predictions, strict=False):
        left.imshow(doc.pil(), cmap="gray")
        left.set_axis_off()
        lines = []
        for field in FIELDS:
            value = (pred or {}).get(field)
            ok = match(field, value, doc.truth[field])[1]
            lines.append(f"{'✓' if ok else '✗'} {field}: {json.dumps(value, ensure_ascii=False)}"
                         + ("" if ok else f"\n     answer: {json.dumps(doc.truth[field], ensure_ascii=False)}"))
        right.text(0, 0.95, "\n".join(lines) if pred is not None else "✗ no schema-valid JSON", va="top", family="monospace",
                   fontsize=10)
        right.set_axis_off()
    fig.tight_layout()
    return fig
