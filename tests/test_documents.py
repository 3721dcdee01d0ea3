"""The invoice generator, the scorer, page candidates, and the OCR + LLM path with the real models."""

import io

import pytest
from PIL import Image

from sparkbooks import documents, llm, ocr
from sparkbooks.exceptions import ChecksumMismatchError, ImageInputError


@pytest.fixture(scope="module")
def engine():
    return ocr.load_ocr()


def test_invoices_are_reproducible_and_their_answer_key_is_consistent():
    first, again = documents.make_invoices(6, seed=3), documents.make_invoices(6, seed=3)
    assert [d.image for d in first] == [d.image for d in again]
    assert [d.truth for d in first] != [d.truth for d in documents.make_invoices(6, seed=4)]
    for doc in first:
        assert set(doc.truth) == set(documents.FIELDS) and doc.truth["currency"] in {"USD", "EUR", "GBP"}
        assert Image.open(io.BytesIO(doc.image)).format == "JPEG"


@pytest.mark.parametrize(("field", "predicted", "truth", "expected"), [
    ("total", 1234.56, 1234.56, (True, True)),
    ("total", "€1.234,56", 1234.56, (False, True)),
    ("total", "1,234.56 USD", 1234.56, (False, True)),
    ("total", "1,234.50", 1234.56, (False, False)),
    ("date", "2024-03-05", "2024-03-05", (True, True)),
    ("date", "05.03.2024", "2024-03-05", (False, True)),  # d.m.Y is read day first
    ("date", "0ctober26,2023", "2023-10-26", (False, True)),  # OCR's 0-for-O, no spaces
    ("date", "March 6, 2024", "2024-03-05", (False, False)),
    ("currency", "€", "EUR", (False, True)),
    ("currency", "USD", "USD", (True, True)),
    ("vendor", "ContosoSupplies", "Contoso Supplies", (False, True)),
    ("vendor", "Contoso", "Contoso Supplies", (False, False)),
    ("invoice_number", None, "INV-1", (False, False)),
])
def test_match_is_exact_or_forgiving_as_documented(field, predicted, truth, expected):
    assert documents.match(field, predicted, truth) == documents.Match(*expected)


def test_normalise_turns_printed_values_into_canonical_ones():
    raw = {"vendor": " Adatum Labs ", "invoice_number": "F-12", "date": "11.02.2023", "total": "€16.221,26", "currency": ""}
    assert documents.normalise(raw) == {"vendor": "Adatum Labs", "invoice_number": "F-12", "date": "2023-02-11",
                                        "total": 16221.26, "currency": "EUR"}
    assert documents.normalise({"date": "not a date", "total": "n/a"})["date"] is None


def test_score_counts_a_missing_answer_as_wrong_on_every_field():
    docs = documents.make_invoices(2, seed=0)
    scored = documents.score([dict(docs[0].truth), None], docs, [1.0, 3.0])
    table, summary = scored.table, scored.summary
    assert table["valid"].tolist() == [True, False] and table["seconds"].mean() == 2.0
    assert summary.loc["all fields", "exact"] == 0.5 and summary.loc["total", "normalised"] == 0.5


def test_page_candidates_hold_the_answers_and_nothing_from_dates():
    text = "Acme Ltd\n12 Elm St\nInvoice No.IN-4471\nDated11.02.2023\n2xWidgets 1.234,50\nTax0,00\nTotal due:1.234,50"
    found = documents.page_candidates(text)
    assert found["invoice_number"] == ["IN-4471"]  # the labelled token, not the street number
    assert found["date"] == ["11.02.2023"] and "11.02" not in found["total"]
    assert found["total"] == ["0,00", "1.234,50"] and found["vendor"][0] == "Acme Ltd" and found["currency"] == []
    assert documents.first_candidates(text) == {"vendor": "Acme Ltd", "invoice_number": "IN-4471", "date": "2023-02-11",
                                                "total": 1234.5, "currency": None}
    schema = documents.constrained_schema(text)
    assert schema["properties"]["total"]["enum"] == found["total"]
    assert "enum" not in documents.INVOICE_SCHEMA["properties"]["total"]  # the shared schema is untouched


def test_currency_printed_with_the_total_beats_the_models_guess():
    assert documents.page_candidates("Tax 0.00GBP\nTOTAL 9,449.11 GBP\nPaid by $ card")["currency"] == ["GBP", "$"]
    assert documents.normalise({"total": "9,449.11GBP", "currency": "USD"})["currency"] == "GBP"
    assert documents.normalise({"total": "9,449.11", "currency": "$"})["currency"] == "USD"


def test_ocr_reads_a_generated_invoice_in_reading_order(engine):
    doc = documents.make_invoices(1, seed=5)[0]
    read = engine.read(doc.image)
    assert read.lines[0].replace(" ", "") == doc.truth["vendor"].replace(" ", "")
    assert doc.truth["invoice_number"] in read.text
    assert any(documents.match("total", a, doc.truth["total"]).normalised for a in documents.page_candidates(read.text)["total"])
    assert 0 < read.seconds < 30


def test_ocr_refuses_undecodable_bytes_with_the_reason(engine):
    with pytest.raises(ImageInputError, match="OCR could not read"):
        engine.read(b"%PDF-1.7 not an image")
    with pytest.raises(ImageInputError, match="no such file"):
        engine.read("/nonexistent/scan.jpg")


def test_damaged_ocr_model_is_refused(monkeypatch):
    name = next(iter(ocr.MODEL_SHA256))
    monkeypatch.setitem(ocr.MODEL_SHA256, name, "0" * 64)
    with pytest.raises(ChecksumMismatchError, match=name):
        ocr.load_ocr()


def test_ocr_plus_llm_extracts_held_out_invoices(engine):
    # seed 7 was never used while developing the extraction. Measured (all fields, normalised): seed 0, 20 invoices
    # 0.92; seed 1, 20 invoices 0.87; seed 100, 50 invoices (the benchmark) 0.864 — vendor, number, date and total
    # 0.94-1.0 each, currency 0.46-0.60 (capped by the OCR, which has no € or £). The margins allow 2 misses in 12.
    docs = documents.make_invoices(12, seed=7)
    with llm.stand_in(ctx_size=4096, parallel=1) as server:
        done = documents.extract_with_ocr(llm.connect(server.base_url), engine, docs)
    predictions, seconds, texts = done.predictions, done.seconds, done.texts
    scored = documents.score(predictions, docs, seconds)
    table, summary = scored.table, scored.summary
    assert table["valid"].all()
    for field in ("vendor", "invoice_number", "date", "total"):
        assert summary.loc[field, "normalised"] >= 0.8, summary
    assert summary.loc["all fields", "normalised"] >= 0.75, summary
    assert len(texts) == len(docs) and all(s > 0 for s in seconds)
