"""The playbook's real corpus: the Python Language Reference topics (``pydoc_data.topics``) as Markdown, HTML and PDF.

Every CPython ships these 79 help topics (465 kB of prose, grammar and examples; PSF licence). The
files under ``playbooks/rag/corpus/`` were written once by :func:`build` from Python 3.11's copy and
are committed with their sha256 in ``MANIFEST.json``, so the frozen questions' gold passages hold
whatever Python a reader runs. Three formats, so every extractor reads real files: simple statements
in one paginated PDF (with an outline), the built-in types as HTML pages, everything else as Markdown.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...exceptions import ChecksumMismatchError, SourceError
from ...fileio import write_bytes_atomic, write_text_atomic

__all__ = ["CORPUS_DIR", "Topic", "build", "files", "parse_topic", "topic_format"]

CORPUS_DIR = Path(__file__).resolve().parents[4] / "playbooks" / "rag" / "corpus"
PDF_NAME = "simple-statements.pdf"
#: The simple statements (Language Reference chapter 7) go into the one PDF, in this order.
PDF_TOPICS = ("assert", "assignment", "augassign", "pass", "del", "return", "yield", "raise", "break", "continue",
              "import", "global", "nonlocal")
_UNDERLINE = re.compile(r"^([*=\-^~])\1{2,}$")


@dataclass
class Topic:
    """One help topic: its title and (heading, blocks) sections; a block is prose or preformatted."""

    key: str
    title: str
    sections: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # (heading, [(kind, text)])


def topic_format(key: str) -> str:
    """Which file format a topic is written in: ``pdf``, ``html`` or ``md``."""
    if key in PDF_TOPICS:
        return "pdf"
    return "html" if key.startswith(("types", "bltin-")) else "md"


def parse_topic(key: str, text: str) -> Topic:
    """Split pydoc's plain text into title, sub-headings (underlined lines) and blocks (blank-line separated)."""
    lines = text.strip("\n").splitlines()
    title = lines[0].strip()
    body = lines[2:] if len(lines) > 1 and _UNDERLINE.match(lines[1].strip()) else lines[1:]
    topic = Topic(key, title, [(title, [])])
    block: list[str] = []

    def flush() -> None:
        if block:
            previous = topic.sections[-1][1][-1][1] if topic.sections[-1][1] else ""
            indented = all(ln.startswith("   ") for ln in block)
            # reST literal blocks ("is equivalent to:" + indented code) are preformatted; an indented note or
            # list-item continuation is prose.
            literal = indented and previous.endswith(":") and previous.strip() not in ("Note:", "Warning:", "See also:")
            indent = min(len(ln) - len(ln.lstrip()) for ln in block)
            lines = [ln[indent:] for ln in block]
            topic.sections[-1][1].append(("pre" if literal else "p", "\n".join(lines)))
            block.clear()

    i = 0
    while i < len(body):
        line = body[i]
        nxt = body[i + 1].strip() if i + 1 < len(body) else ""
        if line.strip() and not line.startswith(" ") and _UNDERLINE.match(nxt) and len(nxt) >= len(line.strip()) - 1:
            flush()
            topic.sections.append((line.strip(), []))
            i += 2
            continue
        if line.strip():
            block.append(line)
        else:
            flush()
        i += 1
    flush()
    topic.sections = [(h, blocks) for h, blocks in topic.sections if blocks or h == title]
    return topic


def _markdown(topic: Topic) -> str:
    out = []
    for n, (heading, blocks) in enumerate(topic.sections):
        out.append(("# " if n == 0 else "## ") + heading)
        for kind, text in blocks:
            out.append(f"```\n{text}\n```" if kind == "pre" else text)
    return "\n\n".join(out) + "\n"


def _html(topic: Topic) -> str:
    out = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(topic.title)}</title>"
           "</head>\n<body>"]
    for n, (heading, blocks) in enumerate(topic.sections):
        tag = "h1" if n == 0 else "h2"
        out.append(f"<{tag}>{html.escape(heading)}</{tag}>")
        for kind, text in blocks:
            out.append(f"<pre>{html.escape(text)}</pre>" if kind == "pre" else f"<p>{html.escape(text)}</p>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _pdf(topics: list[Topic], font_dir: Path) -> bytes:
    """One paginated PDF with an outline entry per topic and sub-heading (fpdf2, DejaVu fonts embedded)."""
    import datetime as dt  # noqa: PLC0415

    from fpdf import FPDF  # noqa: PLC0415

    pdf = FPDF(format="A4")
    pdf.set_creation_date(dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc))  # byte-identical rebuilds
    pdf.set_title("The Python Language Reference: simple statements")
    pdf.set_author("Python Software Foundation (pydoc_data.topics, Python 3.11)")
    pdf.add_font("DejaVu", "", str(font_dir / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(font_dir / "DejaVuSans-Bold.ttf"))
    pdf.add_font("DejaVuMono", "", str(font_dir / "DejaVuSansMono.ttf"))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    for topic in topics:
        for n, (heading, blocks) in enumerate(topic.sections):
            pdf.set_font("DejaVu", "B", 14 if n == 0 else 11)
            pdf.start_section(heading, level=0 if n == 0 else 1)
            pdf.multi_cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
            for kind, text in blocks:
                if kind == "pre":
                    pdf.set_font("DejaVuMono", "", 8)
                    pdf.multi_cell(0, 4, text, new_x="LMARGIN", new_y="NEXT")
                else:
                    pdf.set_font("DejaVu", "", 10)
                    pdf.multi_cell(0, 5, " ".join(text.split()), align="L", new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
        pdf.ln(4)
    return bytes(pdf.output())


def build(dest: Path = CORPUS_DIR, *, font_dir: Path = Path("/usr/share/fonts/truetype/dejavu")) -> dict[str, str]:
    """Write the corpus and its manifest from this Python's ``pydoc_data`` (run once, on Python 3.11); returns the manifest."""
    import sys  # noqa: PLC0415

    from pydoc_data.topics import topics as raw  # noqa: PLC0415

    parsed = {key: parse_topic(key, text) for key, text in sorted(raw.items())}
    dest.mkdir(parents=True, exist_ok=True)
    written: dict[str, bytes] = {}
    for key, topic in parsed.items():
        fmt = topic_format(key)
        if fmt == "md":
            written[f"{key}.md"] = _markdown(topic).encode()
        elif fmt == "html":
            written[f"{key}.html"] = _html(topic).encode()
    written[PDF_NAME] = _pdf([parsed[k] for k in PDF_TOPICS], font_dir)
    for name, data in written.items():
        write_bytes_atomic(dest / name, data)
    manifest = {"origin": f"pydoc_data.topics of Python {sys.version.split()[0]} (PSF licence), written by "
                          "sparkbooks.retrieval.rag.pydoc_corpus.build",
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(written.items())}}
    write_text_atomic(dest / "MANIFEST.json", json.dumps(manifest, indent=1) + "\n")
    return manifest["files"]


def files(folder: Path = CORPUS_DIR, *, verify: bool = True) -> list[Path]:
    """The committed corpus files, each checked against ``MANIFEST.json`` (a changed file is refused)."""
    manifest_path = folder / "MANIFEST.json"
    if not manifest_path.exists():
        raise SourceError(f"No corpus manifest at {manifest_path}: run from a full clone of the repository.")
    expected = json.loads(manifest_path.read_text())["files"]
    paths = []
    for name, digest in expected.items():
        path = folder / name
        if not path.exists():
            raise SourceError(f"Corpus file {path} is missing: restore it with `git checkout -- {path}`.")
        if verify:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != digest:
                raise ChecksumMismatchError(str(path), digest, actual)
        paths.append(path)
    return paths
