"""Documents to text sections: PDF (pypdf, page numbers and outline headings), HTML (BeautifulSoup), Markdown (markdown-it).

:func:`ingest` never lets one bad file stop a batch: an encrypted or corrupt PDF, an empty file, an
unsupported type or text that is not UTF-8 is skipped with its reason in :attr:`Ingestion.report`.

A document's id is its path relative to the ingested folder (``a/notes.txt``), not its file name: a
folder is read recursively, and two ``notes.txt`` in two sub-folders are two documents, cited apart
and re-indexed apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..chunking import Section
from ...exceptions import DocumentUnreadableError as UnreadableDocument
from ...exceptions import InputError, MissingDependencyError

__all__ = ["Ingestion", "SUPPORTED", "SkippedFileWarning", "doc_id", "extract", "folder_files", "ingest"]


class SkippedFileWarning(UserWarning):
    """A file of the folder was skipped (unreadable, a symbolic link, …); the message names it and says why."""

SUPPORTED = (".pdf", ".html", ".htm", ".md", ".markdown", ".txt")


@dataclass
class Ingestion:
    """Sections from every readable file and one report row per file (status ``ok`` or ``skipped`` with a reason)."""

    sections: list[Section] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    @property
    def report(self):
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame(self.rows, columns=["file", "type", "status", "reason", "sections", "pages", "chars", "seconds"])

    @property
    def skipped(self) -> dict[str, str]:
        return {r["file"]: r["reason"] for r in self.rows if r["status"] == "skipped"}


def _need(module: str):
    """Import a reader library, or say which extra brings it."""
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{module} is not installed: `pip install -e '.[rag]'` (brings pypdf, "
                                     "beautifulsoup4 and markdown-it-py).") from None


def _text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableDocument("empty file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                 "convert it with `iconv -f <encoding> -t utf-8`") from None


def _pdf(path: Path, doc: str) -> list[Section]:
    pypdf = _need("pypdf")
    PdfReadError = pypdf.errors.PdfReadError  # noqa: N806

    if path.stat().st_size == 0:
        raise UnreadableDocument("empty file")
    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted:
            raise UnreadableDocument("encrypted PDF: decrypt it first (e.g. `qpdf --decrypt --password=… in.pdf out.pdf`)")
        starts = _outline(reader)
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            sections.extend(_split_page(doc, number, text, starts))
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, UnreadableDocument):
            raise
        raise UnreadableDocument(f"corrupt PDF ({type(exc).__name__}: {exc})") from None
    if not any(s.text.strip() for s in sections):
        raise UnreadableDocument("PDF has no text layer (scanned?): run OCR first, e.g. `ocrmypdf in.pdf out.pdf`")
    return sections


def _outline(reader) -> list[tuple[int, str]]:
    """(1-based page, title) for every outline entry, in document order."""
    found: list[tuple[int, str]] = []

    def walk(items) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                found.append((reader.get_destination_page_number(item) + 1, str(item.title)))

    walk(reader.outline or [])
    return found


def _split_page(doc: str, page: int, text: str, starts: list[tuple[int, str]]) -> list[Section]:
    """Cut a page's text where outline headings start on it; text before the first is under the previous heading."""
    before = [title for p, title in starts if p < page]
    heading = before[-1] if before else ""
    out, cursor = [], 0
    for p, title in starts:
        if p != page:
            continue
        at = text.find(title, cursor)
        if at < 0:
            continue
        if text[cursor:at].strip():
            out.append(Section(doc, heading, text[cursor:at], page))
        heading, cursor = title, at + len(title)
    if text[cursor:].strip():
        out.append(Section(doc, heading, text[cursor:], page))
    return out


def _sections(name: str, blocks: Iterable[tuple[bool, str]], *, heading: str = "", kind: str) -> list[Section]:
    """Sections from a stream of ``(is_heading, text)`` blocks: each heading opens one, text joins the open one."""
    sections, parts = [], []
    for is_heading, text in blocks:
        if is_heading:
            if parts:
                sections.append(Section(name, heading, "\n\n".join(parts)))
            heading, parts = text, []
        else:
            parts.append(text)
    if parts:
        sections.append(Section(name, heading, "\n\n".join(parts)))
    if not sections:
        raise UnreadableDocument(f"{kind} without any text")
    return sections


def _html(path: Path, doc: str) -> list[Section]:
    soup = _need("bs4").BeautifulSoup(_text(path), "html.parser")
    for junk in soup(["script", "style", "nav", "footer"]):
        junk.decompose()

    def blocks() -> Iterator[tuple[bool, str]]:
        for node in soup.find_all(["h1", "h2", "h3", "h4", "p", "pre", "li", "td"]):
            if node.name.startswith("h"):
                yield True, node.get_text(" ", strip=True)
            elif not node.find_parent(["li", "td"]) or node.name in ("li", "td"):
                yield False, node.get_text() if node.name == "pre" else node.get_text(" ", strip=True)

    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    return _sections(doc, blocks(), heading=title, kind="HTML")


def _markdown(path: Path, doc: str) -> list[Section]:
    tokens = _need("markdown_it").MarkdownIt("commonmark").parse(_text(path))

    def blocks() -> Iterator[tuple[bool, str]]:
        for n, token in enumerate(tokens):
            if token.type == "heading_open":
                yield True, tokens[n + 1].content
            elif token.type == "inline" and tokens[n - 1].type != "heading_open":
                yield False, token.content  # the raw source text: markdown emphasis would eat __dunder__ names
            elif token.type in ("fence", "code_block"):
                yield False, token.content.rstrip("\n")

    return _sections(doc, blocks(), kind="Markdown")


def _plain(path: Path, doc: str) -> list[Section]:
    return [Section(doc, path.stem, _text(path))]


_READERS = {".pdf": _pdf, ".html": _html, ".htm": _html, ".md": _markdown, ".markdown": _markdown, ".txt": _plain}


def extract(path: Path, *, doc: str | None = None) -> list[Section]:
    """The text sections of one file (``doc``: the document id, its file name by default); raises
    :class:`~sparkbooks.exceptions.DocumentUnreadableError` with the reason."""
    path = Path(path)
    doc = doc or path.name
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableDocument(f"unsupported type {path.suffix or '(no extension)'!r}: "
                                 f"supported are {', '.join(SUPPORTED)}")
    if path.stat().st_size == 0:
        raise UnreadableDocument("empty file")
    return reader(path, doc)


def doc_id(path: Path, root: Path) -> str:
    """The document id of ``path``: its path relative to ``root``, with ``/`` separators (``a/notes.txt``)."""
    path = Path(path).expanduser()  # the folder resolved, not the file: a symbolic link keeps its own name
    return (path.parent.resolve() / path.name).relative_to(Path(root).expanduser().resolve()).as_posix()


def folder_files(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (recursively, sorted); a missing or empty folder is an :class:`InputError` that says so."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"documents={str(folder)!r}: {'not a folder' if root.exists() else 'no such folder'} — "
                         "pass a folder of PDF, HTML, Markdown or text files")
    found = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())  # links listed, to be skipped by name
    if not found:
        raise InputError(f"documents={str(folder)!r} holds no files")
    return found


def ingest(paths: Iterable[Path], *, root: str | Path | None = None) -> Ingestion:
    """Extract every file; a file that fails is reported and skipped, never fatal to the batch.

    Document ids (and the report's ``file`` column) are paths relative to ``root``: the ingested folder.
    Without ``root``, the deepest folder that holds every file (a flat folder's ids are its file names).
    """
    import os  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    paths = sorted(Path(p) for p in paths)
    if root is None:
        root = os.path.commonpath([str(p.resolve().parent) for p in paths]) if paths else "."
    done = Ingestion()
    for path in paths:
        start = time.perf_counter()
        try:
            doc = doc_id(path, Path(root))
        except ValueError:
            raise InputError(f"{path} is not inside the ingested folder {root}") from None
        try:
            if path.is_symlink():  # its target may lie outside the folder (or nowhere): never followed
                raise UnreadableDocument(f"symbolic link to {os.readlink(path)} (not followed): copy the file into the folder")
            sections = extract(path, doc=doc)
        except (UnreadableDocument, OSError) as exc:
            reason = str(exc) if isinstance(exc, UnreadableDocument) else f"{type(exc).__name__}: {exc.strerror or exc}"
            warnings.warn(f"skipped {doc}: {reason}", SkippedFileWarning, stacklevel=2)
            done.rows.append({"file": doc, "type": path.suffix.lower().lstrip("."), "status": "skipped",
                              "reason": reason, "sections": 0, "pages": 0, "chars": 0,
                              "seconds": time.perf_counter() - start})
            continue
        done.sections.extend(sections)
        done.rows.append({"file": doc, "type": path.suffix.lower().lstrip("."), "status": "ok", "reason": "",
                          "sections": len(sections), "pages": len({s.page for s in sections if s.page}),
                          "chars": sum(len(s.text) for s in sections), "seconds": time.perf_counter() - start})
    return done
