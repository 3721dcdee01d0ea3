"""Document → JSON extraction: OCR text + an LLM (the CPU path), or page images + a VLM (the GPU path).

Both paths return :func:`~sparkbooks.documents.fields.normalise`-d objects, so one scorer
compares them on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fields import INVOICE_SCHEMA, constrained_schema, normalise
from .generate import Document

__all__ = ["EXTRACTION_EXAMPLE", "EXTRACTION_INSTRUCTION", "Extractions", "VLM_INSTRUCTION", "extract_from_text",
           "extract_with_vlm"]


@dataclass(frozen=True)
class Extractions:
    """Per document: the normalised prediction (``None`` when not schema-valid) and the seconds it took.

    ``texts`` holds the OCR text of each page (OCR path), ``replies`` the raw model replies (VLM path).
    """

    predictions: list[dict | None]
    seconds: list[float]
    texts: list[str] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)


EXTRACTION_INSTRUCTION = (
    "You read the OCR text of one scanned invoice (all its pages) and return its fields as JSON. vendor: the company "
    "that issued the invoice, never the bill-to customer or a title such as INVOICE. invoice_number: the invoice's own "
    "number, never the PO/order number, customer reference or street number; null when none is printed. date: the "
    "invoice date, never the due date. total: the final total due, never the subtotal, tax, shipping or a fee or limit "
    "printed after it. date and total copied exactly as printed. currency: the symbol or code printed with the amounts.")

#: A worked example for few-shot prompting (not one of the generated documents: other names, numbers and wording).
EXTRACTION_EXAMPLE = (
    "INVOICE\nGlobex Hardware\n12 Elm St\nDue date: 02 Aug 2023\nInvoice #: Q-2718\nPO Number: 771204\n"
    "Issued: 03 Jul 2023\nBill to:\nInitech Ltd\n2xMonitor arms 118.00\n1xDocking station 249.90\nSubtotal 367.90\n"
    "Tax 0.00\nTotal due: €367.90\nLate fee after the due date: €20.00",
    {"vendor": "Globex Hardware", "invoice_number": "Q-2718", "date": "03 Jul 2023", "total": "€367.90", "currency": "€"})


def extract_from_text(endpoint, texts: list[str], *, spans: bool = True, few_shot: bool = True, seed: int = 0,
                      timeout: float = 120.0) -> Extractions:
    """Constrained JSON extraction by the LLM at ``endpoint`` from each page's OCR text.

    ``spans``: limit each field to strings found on the page (:func:`constrained_schema`); the
    answer still validates against :data:`INVOICE_SCHEMA`. Predictions are the :func:`normalise`-d
    objects (``None`` when not schema-valid), seconds the LLM's per page. A request unanswered for
    ``timeout`` seconds raises :class:`~sparkbooks.exceptions.RequestTimeoutError`.
    """
    from ..llm import extract_json  # noqa: PLC0415

    predictions, seconds, replies = [], [], []
    for text in texts:
        schema = constrained_schema(text) if spans else INVOICE_SCHEMA
        done = extract_json(endpoint, text, schema=schema, instruction=EXTRACTION_INSTRUCTION, max_tokens=120,
                            seed=seed, examples=[EXTRACTION_EXAMPLE] if few_shot else (), timeout=timeout)
        predictions.append(normalise(done.value) if done.valid and _valid(done.value) else None)
        seconds.append(done.reply.total_s)
        replies.append(done.reply)
    return Extractions(predictions, seconds, texts=list(texts), replies=replies)


def _valid(obj: dict) -> bool:
    import jsonschema  # noqa: PLC0415

    return jsonschema.Draft202012Validator(INVOICE_SCHEMA).is_valid(obj)


VLM_INSTRUCTION = ("These are the pages of one scanned invoice. Return its fields as JSON. vendor: the company that "
                   "issued it, not the bill-to customer. invoice_number: its own number, not the PO number; null when none "
                   "is printed. date: the invoice date, not the due date. total: the final total due, not the subtotal. "
                   "date and total copied exactly as printed. currency: the symbol or code printed with the amounts.")


def extract_with_vlm(endpoint, documents: list[Document], *, max_side: int = 1280, seed: int = 0,
                     timeout: float = 300.0) -> Extractions:
    """The VLM path: every page image of a document in one request, with :data:`INVOICE_SCHEMA` as the response format.

    Predictions are :func:`normalise`-d exactly as the OCR path's are, so :func:`score` compares
    the two on equal terms.
    """
    import json  # noqa: PLC0415

    from .vlm import ask, load_image  # noqa: PLC0415

    predictions, seconds, replies = [], [], []
    for doc in documents:
        reply = ask(endpoint, [load_image(page, max_side=max_side) for page in doc.pages], VLM_INSTRUCTION, schema=INVOICE_SCHEMA,
                    max_tokens=200, seed=seed, timeout=timeout)
        try:
            obj = json.loads(reply.text)
        except json.JSONDecodeError:
            obj = None
        predictions.append(normalise(obj) if isinstance(obj, dict) and _valid(obj) else None)
        seconds.append(reply.total_s)
        replies.append(reply)
    return Extractions(predictions, seconds, replies=replies)
