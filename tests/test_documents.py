"""The invoice generator, the scorer, page candidates, and the OCR + LLM path with the real models."""

import io

import jsonschema
import pytest
from PIL import Image

from sparkbooks import documents
from sparkbooks.documents import ocr
from sparkbooks.exceptions import ChecksumMismatchError, ImageInputError


@pytest.fixture(scope="module")
def engine():
    return ocr.load_ocr()


def test_invoices_are_reproducible_and_their_answer_key_is_consistent():
    first, again = documents.make_invoices(6, seed=3), documents.make_invoices(6, seed=3)
    assert [d.pages for d in first] == [d.pages for d in again]
    assert [d.truth for d in first] != [d.truth for d in documents.make_invoices(6, seed=4)]
    for doc in first:
        assert set(doc.truth) == set(documents.FIELDS) and doc.truth["currency"] in {"USD", "EUR", "GBP"}
        assert Image.open(io.BytesIO(doc.image)).format == "JPEG" and doc.image == doc.pages[0]


def test_invoices_span_every_layout_and_sometimes_print_no_number():
    docs = documents.make_invoices(60, seed=11)
    assert {d.layout for d in docs} == set(documents.LAYOUTS)
    assert all(len(d.pages) == (2 if d.layout == "two-page" else 1) for d in docs)
    missing = sum(d.truth["invoice_number"] is None for d in docs)
    assert 3 <= missing <= 20  # about one in seven
    for doc in docs:
        jsonschema.validate({**doc.truth, "total": str(doc.truth["total"])}, documents.INVOICE_SCHEMA)


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
    ("invoice_number", None, None, (True, True)),  # nothing printed, nothing claimed
    ("invoice_number", "null", None, (False, True)),
    ("invoice_number", "PO-88123", None, (False, False)),
])
def test_match_is_exact_or_forgiving_as_documented(field, predicted, truth, expected):
    assert documents.match(field, predicted, truth) == documents.Match(*expected)


def test_normalise_turns_printed_values_into_canonical_ones():
    raw = {"vendor": " Adatum Labs ", "invoice_number": "F-12", "date": "11.02.2023", "total": "€16.221,26", "currency": ""}
    assert documents.normalise(raw) == {"vendor": "Adatum Labs", "invoice_number": "F-12", "date": "2023-02-11",
                                        "total": 16221.26, "currency": "EUR"}
    assert documents.normalise({"date": "not a date", "total": "n/a"})["date"] is None
    assert documents.normalise({"invoice_number": None})["invoice_number"] is None


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
    assert schema["properties"]["invoice_number"]["enum"] == ["IN-4471", None]  # "none printed" stays a choice
    assert "enum" not in documents.INVOICE_SCHEMA["properties"]["total"]  # the shared schema is untouched


def test_currency_printed_with_the_total_beats_the_models_guess():
    assert documents.page_candidates("Tax 0.00GBP\nTOTAL 9,449.11 GBP\nPaid by $ card")["currency"] == ["GBP", "$"]
    assert documents.normalise({"total": "9,449.11GBP", "currency": "USD"})["currency"] == "GBP"
    assert documents.normalise({"total": "9,449.11", "currency": "$"})["currency"] == "USD"


def test_ocr_reads_a_generated_invoice_in_reading_order(engine):
    docs = documents.make_invoices(12, seed=5)
    doc = next(d for d in docs if d.layout == "classic" and d.truth["invoice_number"])
    read = engine.read(doc.image)
    assert read.lines[0].replace(" ", "") == doc.truth["vendor"].replace(" ", "")
    assert doc.truth["invoice_number"] in read.text
    assert any(documents.match("total", a, doc.truth["total"]).normalised for a in documents.page_candidates(read.text)["total"])
    assert 0 < read.seconds < 30
    two = next(d for d in docs if d.layout == "two-page")
    both = engine.read_pages(two.pages)
    first = engine.read(two.pages[0])
    assert both.text.startswith(first.text) and "page2of2" in both.text.replace(" ", "").lower()
    assert any(documents.match("total", a, two.truth["total"]).normalised for a in documents.page_candidates(both.text)["total"])


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


def test_birth_sentences_hold_their_answers_and_distractors_that_differ():
    items = documents.birth_sentences(80, seed=2)
    assert items == documents.birth_sentences(80, seed=2)
    assert sum(i["distractors"] for i in items) == 40 and len({i["template"] for i in items}) == len(documents.biographies.TEMPLATES)
    for item in items:
        expected = item["expected"]
        for value in expected.values():
            assert str(value) in item["text"]
        years = [int(w.strip(",.;()")) for w in item["text"].split() if w.strip(",.;()").isdigit()]
        assert years.count(expected["year"]) == 1 and len(years) == (2 if item["distractors"] else 1)
        jsonschema.validate(expected, documents.BIRTH_SCHEMA)


def test_the_worked_example_shares_no_name_or_place_with_the_test_set():
    from sparkbooks.documents import biographies

    text = documents.BIRTH_EXAMPLE[0]
    for word in [*biographies._FIRST, *biographies._LAST, *(c for c, _ in biographies._PLACES)]:
        assert word not in text
    jsonschema.validate(documents.BIRTH_EXAMPLE[1], documents.BIRTH_SCHEMA)


def test_gain_over_the_rule_is_paired_by_document():
    docs = documents.make_invoices(8, seed=0)
    perfect = documents.score([dict(d.truth) for d in docs], docs, [1.0] * 8)
    half = documents.score([dict(d.truth) if i % 2 else None for i, d in enumerate(docs)], docs, [1.0] * 8)
    gain = documents.gain_over(perfect, half)
    assert list(gain.index) == [*documents.FIELDS, "all fields"]
    assert gain.loc["all fields", "gain"] == pytest.approx(0.5) and gain.loc["all fields", "low"] > 0
    same = documents.gain_over(half, half).loc["all fields"]
    assert same["gain"] == same["low"] == same["high"] == 0
