"""RAG in a box: documents → sections → chunks → vectors in Milvus → dense, BM25 and hybrid retrieval → cited answers.

* :mod:`~sparkbooks.retrieval.rag.pydoc_corpus` — the committed Python Language Reference corpus (Markdown, HTML, one PDF);
* :mod:`~sparkbooks.retrieval.rag.ingest` — PDF/HTML/Markdown to sections with pages and headings, bad files reported;
* :mod:`~sparkbooks.retrieval.rag.index` — :class:`VectorIndex` on Milvus Lite (a file) or a Milvus server (a URI);
* :mod:`~sparkbooks.retrieval.rag.retrieve` — dense, BM25, reciprocal rank fusion, recall@k / MRR on an answer key;
* :mod:`~sparkbooks.retrieval.rag.answer` — cited answers or a refusal through any OpenAI-compatible server, scored
  by exact match, token F1 and ALCE-style citation recall/precision;
* :mod:`~sparkbooks.retrieval.rag.ann` — a recall@10 / QPS frontier of HNSW and IVF on real MiniLM tweet vectors;
* :mod:`~sparkbooks.retrieval.rag.ann_speed` — an operating point's speed-up over exact search, in interleaved pairs;
* :mod:`~sparkbooks.retrieval.rag.ann_record` — the committed full-size frontier record the benchmark wrote;
* :mod:`~sparkbooks.retrieval.rag.gate` — a refusal gate on the retrieval score, calibrated on near-miss questions;
* this module — the frozen question set, the embedder (local MiniLM or a ``/v1/embeddings`` server), the ask box.

Chunking lives in :mod:`sparkbooks.retrieval.chunking`, shared with ``txt2kg``.
"""

from __future__ import annotations

import hashlib
import html
import json
from typing import NamedTuple
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...exceptions import ChecksumMismatchError, InputError
from . import ann, ann_record, ann_speed, answer, baselines, gate, index, ingest, pydoc_corpus, retrieve
from .index import VectorIndex

__all__ = ["AskBox", "Embedder", "NEAR_MISS", "NEAR_MISS_SHA256", "QUERY_PREFIXES", "QUESTIONS", "QUESTIONS_SHA256",
           "VectorIndex", "ann", "ann_record", "ann_speed", "answer", "baselines", "gate", "index", "ingest", "load_questions", "pydoc_corpus",
           "retrieve"]

QUESTIONS = pydoc_corpus.CORPUS_DIR.parent / "questions.json"
#: The frozen question set's sha256 (written 2026-11-30, before any retrieval or prompt was tried).
QUESTIONS_SHA256 = "8d45e0724a35fe389b0953df1e207461f7cc8baa161ea61c8f67c60458aa1a30"
NEAR_MISS = pydoc_corpus.CORPUS_DIR.parent / "questions_nearmiss.json"
#: The near-miss unanswerable questions' sha256 (written 2026-12-06 from the topic list, before any gate score was seen).
NEAR_MISS_SHA256 = "536d0cd6d6c7b363d958de25435421146539b4ef1b46de153c401c894d6e888d"


def load_questions(path: Path = QUESTIONS, *, frozen: bool = True) -> list[dict]:
    """A question set; the project's own files must match their frozen sha256 (your own files are read as they are)."""
    data = Path(path).read_bytes()
    expected = {QUESTIONS.resolve(): QUESTIONS_SHA256, NEAR_MISS.resolve(): NEAR_MISS_SHA256}.get(Path(path).resolve())
    if frozen and expected:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise ChecksumMismatchError(str(path), expected, digest)
    questions = json.loads(data)["questions"]
    for q in questions:
        if not {"id", "question", "answers", "gold"} <= set(q):
            raise InputError(f"question {q.get('id', '?')} in {path} needs id, question, answers and gold")
    return questions


#: Served embedding models that embed a query and a passage differently: (name fragment, query prefix, passage prefix).
#: Qwen3-Embedding loses retrieval quality without its query instruction; e5 and nomic were trained with these prefixes.
QUERY_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("qwen3-embedding", "Instruct: Given a question, retrieve passages that answer the question\nQuery:", ""),
    ("e5-", "query: ", "passage: "),
    ("nomic-embed", "search_query: ", "search_document: "),
)


class Prefixes(NamedTuple):
    """What a served embedding model is given before a query and before a passage."""

    query: str
    passage: str


@dataclass
class Embedder:
    """Unit-length embeddings from the local all-MiniLM-L6-v2 (``base_url=None``) or an OpenAI-compatible server.

    On a Spark: ``vllm serve Qwen/Qwen3-Embedding-0.6B --runner pooling --port 8001`` and ``Embedder(base_url="http://localhost:8001/v1",
    model="Qwen/Qwen3-Embedding-0.6B")``. ``last_seconds`` is the time the last call took.

    Queries go through :meth:`query`, passages through the call itself. For a served model each request
    carries ``input_type`` (``"query"`` or ``"passage"``: NVIDIA's embedding NIMs answer HTTP 400 without
    it; vLLM and llama.cpp ignore it; OpenAI's own API refuses it, so pass ``input_type=False`` there),
    and a model listed in :data:`QUERY_PREFIXES` gets its query instruction or prefixes.
    MiniLM is symmetric: the local model embeds both alike.
    """

    base_url: str | None = None
    model: str | None = None
    batch_size: int = 32
    input_type: bool = True
    last_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._local = None
        if self.base_url is None:
            from ..embeddings import load_minilm  # noqa: PLC0415

            self._local = load_minilm()
            self.model = self.model or "sentence-transformers/all-MiniLM-L6-v2"
        else:
            from ...llm.client import connect  # noqa: PLC0415

            self._endpoint = connect(self.base_url, model=self.model)
            self.model = self._endpoint.model

    def prefixes(self) -> Prefixes:
        """(query prefix, passage prefix) this model is given; empty for the local MiniLM and unlisted models."""
        name = (self.model or "").lower()
        if self._local is None:
            for fragment, query, passage in QUERY_PREFIXES:
                if fragment in name:
                    return Prefixes(query, passage)
        return Prefixes("", "")

    def query(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of questions (``input_type="query"`` and the model's query instruction, where it has one)."""
        return self(texts, input_type="query")

    def __call__(self, texts: Sequence[str], *, input_type: str = "passage") -> np.ndarray:
        if input_type not in ("query", "passage"):
            raise InputError(f"input_type must be 'query' or 'passage', got {input_type!r}")
        start = time.perf_counter()
        if self._local is not None:
            vectors = self._local.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        else:
            prefix = self.prefixes()[0 if input_type == "query" else 1]
            vectors = np.asarray(self._served([prefix + t for t in texts], input_type), dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.last_seconds = time.perf_counter() - start
        return np.asarray(vectors, dtype=np.float32)

    def _served(self, texts: list[str], input_type: str) -> list[list[float]]:
        # NVIDIA's embedding NIMs answer HTTP 400 without input_type ("query" / "passage") in the request body
        from ...llm.client import embed  # noqa: PLC0415

        return embed(self._endpoint, texts, batch_size=self.batch_size, timeout=300.0,
                     extra_body={"input_type": input_type} if self.input_type else None)


class AskBox:
    """An ipywidgets "ask your documents" box: hybrid retrieval, a streamed cited answer, the sources listed.

    ``AskBox(...).widget`` is the thing to display; :meth:`ask` works without a browser (the guide's transcript).
    """

    def __init__(self, retriever, chunks_by_id: dict, endpoint, *, k: int = 3, gate=None) -> None:
        import ipywidgets as w  # noqa: PLC0415

        self.retriever, self.chunks, self.endpoint, self.k = retriever, chunks_by_id, endpoint, k
        self.gate = gate  # a calibrated gate.Gate: a question below its threshold is refused without asking the LLM
        self.history: list[tuple[str, answer.Answer]] = []
        self.log = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="6px", min_height="120px"))
        self.box = w.Text(placeholder="Ask your documents…", layout=w.Layout(width="80%"))
        self.button = w.Button(description="Ask", button_style="success")
        self.status = w.Label()
        self.button.on_click(lambda _: self.ask(self.box.value))
        self.widget = w.VBox([self.log, w.HBox([self.box, self.button]), self.status])

    def ask(self, question: str) -> answer.Answer | None:
        """Retrieve, stream the answer into the box, list its sources; returns the answer."""
        from ...exceptions import ServerError  # noqa: PLC0415

        question = question.strip()
        if not question:
            return None
        self.box.value = ""
        start = time.perf_counter()
        context = [self.chunks[i] for i in self.retriever.search([question], self.k).ids[0]]
        retrieved_s = time.perf_counter() - start
        pieces: list[str] = []

        def show(piece: str) -> None:
            pieces.append(piece)
            self._render(question, "".join(pieces) + "▌")

        try:
            ask = self.gate.answer if self.gate is not None else answer.answer
            reply = ask(self.endpoint, question, context, on_text=show)
        except ServerError as exc:
            self.status.value = f"{type(exc).__name__}: {exc}"
            return None
        self.history.append((question, reply))
        self._render()
        self.status.value = (f"retrieval {retrieved_s * 1000:.0f} ms · refused by the gate (the LLM was not asked)"
                             if reply.finish_reason == "gate" else
                             f"retrieval {retrieved_s * 1000:.0f} ms · first token {reply.reply.ttft_s or 0:.2f} s · "
                             f"answer {reply.seconds:.2f} s")
        return reply

    def transcript(self) -> str:
        lines = []
        for question, reply in self.history:
            lines += [f"you: {question}", f"answer: {reply.text}"]
            lines += [f"  [{n}] {self.chunks[c].citation}" + (" (cited)" if c in reply.cited else "")
                      for n, c in enumerate(reply.context, start=1)]
        return "\n".join(lines)

    def _render(self, pending_question: str = "", pending: str = "") -> None:
        rows = []
        for question, reply in self.history:
            sources = "".join(f"<li>[{n}] {html.escape(self.chunks[c].citation)}{' ✓' if c in reply.cited else ''}</li>"
                              for n, c in enumerate(reply.context, start=1))
            rows.append(f"<p><b>you</b>: {html.escape(question)}<br><b>answer</b>: {html.escape(reply.text)}</p>"
                        f"<ul>{sources}</ul>")
        if pending_question:
            rows.append(f"<p><b>you</b>: {html.escape(pending_question)}<br><b>answer</b>: {html.escape(pending)}</p>")
        self.log.value = "".join(rows)
