"""Documents with an answer key, and extraction from them scored field by field.

* :mod:`~sparkbooks.documents.generate` — invoice images with their exact ground truth;
* :mod:`~sparkbooks.documents.biographies` — birth sentences with distractors, for text extraction;
* :mod:`~sparkbooks.documents.fields` — schema, normalisation, matching, page candidates;
* :mod:`~sparkbooks.documents.extract` — OCR + LLM and VLM extraction pipelines;
* :mod:`~sparkbooks.documents.scoring` — per-document and per-field scores, plots;
* :mod:`~sparkbooks.documents.ocr` — PP-OCRv4 (RapidOCR) on a page image (loaded on first use);
* :mod:`~sparkbooks.documents.vlm` — images to OpenAI-compatible VLMs, token budgets (loaded on first use).
"""

from __future__ import annotations

from ..lazy import attach
from .biographies import BIRTH_EXAMPLE, BIRTH_INSTRUCTION, BIRTH_SCHEMA, birth_sentences
from .extract import (
    EXTRACTION_EXAMPLE,
    EXTRACTION_INSTRUCTION,
    VLM_INSTRUCTION,
    Extractions,
    extract_from_text,
    extract_with_vlm,
)
from .fields import FIELDS, INVOICE_SCHEMA, Match, constrained_schema, first_candidates, match, normalise, page_candidates
from .generate import LAYOUTS, Document, font_paths, make_invoices
from .scoring import Score, gain_over, plot_extractions, score

__all__ = [
    "BIRTH_EXAMPLE", "BIRTH_INSTRUCTION", "BIRTH_SCHEMA", "Document", "EXTRACTION_EXAMPLE", "EXTRACTION_INSTRUCTION",
    "Extractions", "FIELDS", "INVOICE_SCHEMA", "LAYOUTS", "Match", "Score", "VLM_INSTRUCTION", "birth_sentences",
    "constrained_schema", "extract_from_text", "extract_with_vlm", "first_candidates",
    "font_paths", "gain_over", "make_invoices", "match", "normalise", "ocr", "page_candidates", "plot_extractions", "score",
    "vlm",
]
__getattr__, __dir__ = attach(__name__, ("ocr", "vlm"), namespace=globals())
