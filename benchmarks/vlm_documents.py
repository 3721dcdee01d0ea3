"""Invoice → JSON: accuracy and seconds per document for each extraction backend, on the same 50 invoices.

The invoices come from ``sparkbooks.documents.make_invoices`` (exact answer key; five layouts, one
in five on two pages; a bill-to company, PO number, due date, subtotal/shipping/tax and sometimes
a fee after the total compete with the answers; one in seven prints no invoice number; seed 100,
never used while the extraction was developed). Every backend's answers are normalised and
scored by the same code (``documents.score``), and each is compared with the rule (c), the
reference line, by a paired bootstrap over documents:

(a) OCR + LLM with page-span enums — PP-OCRv4, then the LLM chooses each field among strings found
    on the page (``documents.constrained_schema``); the playbook's CPU path;
(b) OCR + LLM, free text — the same OCR text and LLM with the plain JSON schema: the usual
    "schema-constrained extraction" recipe, the peer;
(c) first-candidate rule — no LLM: first line, first labelled number, first date, last amount,
    first currency mark — what the page candidates alone are worth; the reference line;
(d) a VLM (``--vlm-url``, e.g. Qwen2.5-VL-7B on vLLM): the page image, the plain schema.

The LLM is the local llama.cpp stand-in (SmolLM2-135M-Instruct) unless ``--llm-url`` names another.

    python benchmarks/vlm_documents.py [--n 50] [--llm-url URL] [--vlm-url URL] [--max-side 1280]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from sparkbooks import documents, llm
from sparkbooks.documents import ocr


SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"n": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--llm-url", default=None)
    parser.add_argument("--vlm-url", default=None)
    parser.add_argument("--max-side", type=int, default=1280)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()

    docs = documents.make_invoices(args.n, seed=args.seed)
    engine = ocr.load_ocr()
    reads = [engine.read_pages(doc.pages) for doc in docs]
    texts, ocr_s = [r.text for r in reads], [r.seconds for r in reads]
    rows = {}
    with contextlib.nullcontext() if args.llm_url else llm.stand_in(ctx_size=4096, parallel=1) as server:
        endpoint = llm.connect(args.llm_url or server.base_url)
        for spans, name in ((True, "OCR + LLM, page-span enums"), (False, "OCR + LLM, free text")):
            done = documents.extract_from_text(endpoint, texts, spans=spans)
            rows[name] = documents.score(done.predictions, docs, [o + s for o, s in zip(ocr_s, done.seconds, strict=True)])
    start = time.perf_counter()
    rules = [documents.first_candidates(t) for t in texts]
    rule_s = (time.perf_counter() - start) / len(texts)
    rows["first-candidate rule (no LLM)"] = documents.score(rules, docs, [o + rule_s for o in ocr_s])
    if args.vlm_url:
        vlm_endpoint = llm.connect(args.vlm_url)
        done = documents.extract_with_vlm(vlm_endpoint, docs, max_side=args.max_side)
        rows[f"VLM {vlm_endpoint.model}"] = documents.score(done.predictions, docs, done.seconds)

    print(f"{args.n} invoices (seed {args.seed}), LLM {endpoint.model}; normalised match per field\n")
    fields = [*documents.FIELDS, "all fields"]
    print(f"{'backend':34} " + " ".join(f"{f[:9]:>9}" for f in fields) + f" {'exact':>6} {'valid':>6} {'s/doc':>6}")
    for name, scored in rows.items():
        table, summary = scored.table, scored.summary
        print(f"{name:34} " + " ".join(f"{summary.loc[f, 'normalised']:9.3f}" for f in fields)
              + f" {summary.loc['all fields', 'exact']:6.3f} {table['valid'].mean():6.2f} {table['seconds'].mean():6.2f}")
    n_pages = sum(len(doc.pages) for doc in docs)
    print(f"\nOCR alone: {sum(ocr_s) / n_pages:.2f} s/page over {n_pages} pages (PP-OCRv4, onnxruntime CPU)")
    reference = rows["first-candidate rule (no LLM)"]
    print("\ngain over the rule, all fields (95% paired bootstrap over documents):")
    gains = {}
    for name, scored in rows.items():
        if scored is not reference:
            g = documents.gain_over(scored, reference).loc["all fields"]
            gains[name] = g
            print(f"  {name:34} {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]")
    spans, free = rows["OCR + LLM, page-span enums"].summary, rows["OCR + LLM, free text"].summary
    rule = reference.summary
    print(json.dumps({"n_documents": args.n, "llm": endpoint.model,
                      "spans_accuracy": round(spans.loc["all fields", "normalised"], 3),
                      "free_text_accuracy": round(free.loc["all fields", "normalised"], 3),
                      "rule_accuracy": round(rule.loc["all fields", "normalised"], 3),
                      "spans_gain_over_rule": round(gains["OCR + LLM, page-span enums"]["gain"], 3),
                      "spans_gain_low": round(gains["OCR + LLM, page-span enums"]["low"], 3),
                      "spans_gain_high": round(gains["OCR + LLM, page-span enums"]["high"], 3),
                      "spans_s_per_doc": round(rows["OCR + LLM, page-span enums"].table["seconds"].mean(), 2),
                      "ocr_s_per_page": round(sum(ocr_s) / n_pages, 2)}))


if __name__ == "__main__":
    main()
