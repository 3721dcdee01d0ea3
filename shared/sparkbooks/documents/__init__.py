"""Documents with an answer key, and extraction from them scored field by field.

* :mod:`~sparkbooks.documents.generate` — invoice images with their exact ground truth;
* :mod:`~sparkbooks.documents.fields` — schema, normalisation, matching, page candidates;
* :mod:`~sparkbooks.documents.extract` — OCR + LLM and VLM extraction pipelines;
* :mod:`~sparkbooks.documents.scoring` — per-document and per-field scores, plots.
"""

from __future__ import annotations

from .extract import (
    EXTRACTION_EXAMPLE,
    EXTRACTION_INSTRUCTION,
    VLM_INSTRUCTION,
    Extractions,
    extract_from_text,
    extract_with_ocr,
    extract_with_vlm,
)
from .fields import FIELDS, INVOICE_SCHEMA, Match, constrained_schema, first_candidates, match, normalise, page_candidates
from .generate import Document, font_paths, make_invoices
from .scoring import Score, plot_extractions, score

__all__ = [
    "Document", "EXTRACTION_EXAMPLE", "EXTRACTION_INSTRUCTION", "Extractions", "FIELDS", "INVOICE_SCHEMA", "Match",
    "Score", "VLM_INSTRUCTION", "constrained_schema", "extract_from_text", "extract_with_ocr", "extract_with_vlm",
    "first_candidates", "font_paths", "make_invoices", "match", "normalise", "page_candidates", "plot_extractions", "score",
]
