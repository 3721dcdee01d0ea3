"""One chunker for ``rag`` and ``txt2kg``: heading-bounded, paragraph-first, a token budget and an overlap.

A section (one heading's text, optionally one page) is cut into paragraphs; a paragraph over the
budget into sentences; a sentence over the budget into word windows. Units are packed greedily up
to ``max_tokens``; the next chunk starts with the previous chunk's last units up to
``overlap_tokens``, so a sentence cut at a boundary is whole in one of the two. Chunks never cross
a heading, so each carries one heading and the page it starts on — what a citation needs. Tokens
are counted with the embedding model's own tokenizer (MiniLM reads at most 256 word pieces and
silently drops the rest, so a budget in characters would lose text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..exceptions import InputError

__all__ = ["Chunk", "Section", "chunk", "contains", "minilm_token_counter", "normalise"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"“(A-Z0-9])")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Section:
    """Text under one heading of one document (and one page, for PDFs)."""

    doc: str
    heading: str
    text: str
    page: int | None = None


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of a document; ``id`` is stable while the document does not change."""

    id: str
    doc: str
    heading: str
    page: int | None
    text: str
    tokens: int

    @property
    def indexed_text(self) -> str:
        """What is embedded and BM25-indexed: the heading, then the text (the heading names what the text is about)."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    @property
    def citation(self) -> str:
        where = f"{self.doc}" + (f" p.{self.page}" if self.page else "")
        return f"{where} — {self.heading}" if self.heading else where


def normalise(text: str) -> str:
    """Lower case, straight quotes and markup dropped, whitespace collapsed: for matching passages across formats."""
    text = text.lower().translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'}))
    text = re.sub(r"[*\"'`]", "", text)
    return " ".join(text.split())


@functools.lru_cache(maxsize=1)
def minilm_token_counter() -> Callable[[str], int]:
    """Count word pieces as all-MiniLM-L6-v2 does (its own ``tokenizer.json``, without the two special tokens)."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    from .embeddings import minilm_path  # noqa: PLC0415

    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()  # the shipped tokenizer.json pads every input to 128
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _units(text: str, budget: int, window: int, count: Callable[[str], int]) -> list[tuple[str, int]]:
    """Paragraphs, or sentences of a long paragraph, or word windows of a long sentence — each with its token count.

    Word windows hold about ``window`` tokens (the overlap), so the overlap repeats at least one whole window.
    """
    out: list[tuple[str, int]] = []
    for para in _PARAGRAPH.split(text):
        para = para.strip()
        if not para:
            continue
        n = count(para)
        if n <= budget:
            out.append((para, n))
            continue
        for sentence in _SENTENCE.split(para):
            n = count(sentence)
            if n <= budget:
                out.append((sentence, n))
                continue
            words = sentence.split()
            step = max(1, len(words) * window // n)  # about `window` tokens each, counted exactly below
            for i in range(0, len(words), step):
                piece = " ".join(words[i:i + step])
                out.append((piece, count(piece)))
    return out


def chunk(sections: Iterable[Section], *, max_tokens: int = 200, overlap_tokens: int = 40,
          count_tokens: Callable[[str], int] | None = None) -> list[Chunk]:
    """Chunks of every section; consecutive sections of one document under one heading (pages) are joined first."""
    if max_tokens < 16:
        raise InputError(f"max_tokens={max_tokens} is too small to hold a sentence; use 64–256 for MiniLM")
    if not 0 <= overlap_tokens < max_tokens // 2:
        raise InputError(f"overlap_tokens={overlap_tokens} must be ≥ 0 and under half of max_tokens={max_tokens}")
    count = count_tokens or minilm_token_counter()
    window = max(8, overlap_tokens)
    groups: list[tuple[str, str, list[tuple[str, int, int | None]]]] = []  # doc, heading, [(unit, tokens, page)]
    for section in sections:
        units = [(u, n, section.page) for u, n in _units(section.text, max_tokens, window, count)]
        if groups and groups[-1][0] == section.doc and groups[-1][1] == section.heading:
            groups[-1][2].extend(units)
        else:
            groups.append((section.doc, section.heading, units))
    chunks: list[Chunk] = []
    ordinal: dict[str, int] = {}
    for doc, heading, units in groups:
        start = 0
        while start < len(units):
            end, total = start, 0
            while end < len(units) and (end == start or total + units[end][1] <= max_tokens):
                total += units[end][1]
                end += 1
            n = ordinal.get(doc, 0)
            ordinal[doc] = n + 1
            chunks.append(Chunk(f"{doc}#{n:04d}", doc, heading, units[start][2],
                                "\n\n".join(u for u, _, _ in units[start:end]), total))
            if end >= len(units):
                break
            back, kept = end, 0  # overlap: the last units that fit, but always move forward
            while back - 1 > start and kept + units[back - 1][1] <= overlap_tokens:
                back -= 1
                kept += units[back][1]
            start = back
    return chunks


def contains(chunks: Sequence[Chunk], passage: str) -> list[int]:
    """Indexes of the chunks whose text holds ``passage`` (both normalised)."""
    needle = normalise(passage)
    return [i for i, c in enumerate(chunks) if needle in normalise(c.text)]
