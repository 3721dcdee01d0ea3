"""Scoring extractions against the answer key, and plotting pages beside what was extracted from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import FIELDS, match
from .generate import Document

__all__ = ["Score", "gain_over", "plot_extractions", "score"]


@dataclass(frozen=True)
class Score:
    """``table``: one row per document (valid, seconds, each field exact / normalised); ``summary``: per field and all fields."""

    table: Any
    summary: Any


def score(predictions: list[dict | None], documents: list[Document], seconds: list[float]) -> Score:
    """Per-document table and per-field summary: exact / normalised match, schema-valid rate, seconds per document.

    ``predictions[i]`` is the schema-valid object extracted from ``documents[i]``, or ``None``
    when the backend returned nothing valid (every field then counts as wrong).
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for pred, doc, secs in zip(predictions, documents, seconds, strict=True):
        row = {"valid": pred is not None, "seconds": secs}
        for field in FIELDS:
            agreed = match(field, (pred or {}).get(field), doc.truth[field])
            row[f"{field}_exact"], row[f"{field}_normalised"] = agreed.exact, agreed.normalised
        rows.append(row)
    table = pd.DataFrame(rows)
    summary = pd.DataFrame({"exact": [table[f"{f}_exact"].mean() for f in FIELDS],
                            "normalised": [table[f"{f}_normalised"].mean() for f in FIELDS]}, index=list(FIELDS))
    summary.loc["all fields"] = [table[[f"{f}_exact" for f in FIELDS]].to_numpy().mean(),
                                 table[[f"{f}_normalised" for f in FIELDS]].to_numpy().mean()]
    return Score(table, summary)




def gain_over(method: Score, reference: Score, *, seed: int = 0):
    """Per field and for all fields: each method's normalised accuracy and ``method − reference`` with a 95% interval.

    The interval is a paired bootstrap over documents (the fields of one page are not independent);
    a gain is real only when the interval excludes 0.
    """
    import pandas as pd  # noqa: PLC0415

    from ..intervals import paired_bootstrap  # noqa: PLC0415

    rows = {}
    for field in [*FIELDS, "all fields"]:
        columns = [f"{f}_normalised" for f in FIELDS] if field == "all fields" else [f"{field}_normalised"]
        a = method.table[columns].mean(axis=1).tolist()
        b = reference.table[columns].mean(axis=1).tolist()
        gain, low, high = paired_bootstrap(a, b, seed=seed)
        rows[field] = {"method": sum(a) / len(a), "reference": sum(b) / len(b), "gain": gain, "low": low, "high": high}
    return pd.DataFrame(rows).T


def plot_extractions(documents: list[Document], predictions: list[dict | None], *, n: int = 4):
    """The first ``n`` pages beside the JSON extracted from them; wrong fields marked ✗ with the right answer."""
    import json  # noqa: PLC0415

    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(n, 2, figsize=(11, 3.3 * n), gridspec_kw={"width_ratios": [1.3, 1]}, squeeze=False)
    for (left, right), doc, pred in zip(axes, documents, predictions, strict=False):
        left.imshow(doc.pil(), cmap="gray")
        left.set_axis_off()
        lines = []
        for field in FIELDS:
            value = (pred or {}).get(field)
            ok = match(field, value, doc.truth[field]).normalised
            lines.append(f"{'✓' if ok else '✗'} {field}: {json.dumps(value, ensure_ascii=False)}"
                         + ("" if ok else f"\n     answer: {json.dumps(doc.truth[field], ensure_ascii=False)}"))
        right.text(0, 0.95, "\n".join(lines) if pred is not None else "✗ no schema-valid JSON", va="top", family="monospace",
                   fontsize=10)
        right.set_axis_off()
    fig.tight_layout()
    return fig
