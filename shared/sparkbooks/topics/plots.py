"""Figures of a topic model: the documents' map, the merge tree, topics over time."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..exceptions import InputError

if TYPE_CHECKING:
    from .model import TopicModel

__all__ = ["MAX_MAP_BYTES", "MAX_MAP_POINTS", "hierarchy_figure", "show", "topic_map", "topics_over_time"]


def _page_bytes(char: str) -> int:
    """Bytes one character of hover text costs in the page: HTML-escaped, then written by plotly's JSON as ASCII
    (``\\uXXXX``: 6 bytes outside ASCII, 12 for a character outside the BMP such as an emoji)."""
    return sum(1 if ord(c) < 128 else 6 if ord(c) < 0x10000 else 12 for c in html.escape(char))


def _wrap(text: str, width: int = 60, limit: int = 240) -> str:
    """``text`` wrapped for a hover box and cut to ``limit`` bytes *in the page* (not characters): accented, CJK or
    emoji text costs up to 12 bytes a character there, and counting characters let such pages outgrow the cap."""
    import textwrap  # noqa: PLC0415

    if not (text.isascii() and not any(c in text for c in "&<>\"'")):  # the plain-ASCII case costs 1 byte a char
        spent, cut = 0, len(text)
        for i, char in enumerate(text):
            spent += _page_bytes(char)
            if spent > limit - 6:  # room for the "…" (6 bytes as \\u2026)
                cut = i
                break
        text = text if cut == len(text) else text[:cut] + "…"
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))


#: Documents drawn on the map at most: plotly.js inline (≈ 4.8 MB) plus ≈ 300 bytes per point with its hover text
#: keeps the page under :data:`MAX_MAP_BYTES` whatever the corpus size (NVIDIA's own 1M-review demo samples 1 %).
MAX_MAP_POINTS = 15_000
MAX_MAP_BYTES = 10_000_000


def topic_map(coords: np.ndarray, labels: np.ndarray, names: dict[int, str], *, hover: Sequence[str],
              top: int = 20, title: str = "Documents by topic", max_points: int | None = MAX_MAP_POINTS, seed: int = 0):
    """An interactive plotly scatter of the 2-D layout, coloured by topic, with each document on hover.

    The ``top`` largest topics get their own colour and legend entry; smaller topics are drawn
    as "other topics" and outliers in light grey, so the legend stays readable. Above ``max_points``
    documents a seeded uniform sample is drawn (the legend still counts every document, the title says so),
    so the page stays under :data:`MAX_MAP_BYTES` at a million documents.
    """
    import plotly.graph_objects as go  # noqa: PLC0415

    labels = np.asarray(labels)
    if len(coords) != len(labels) or len(hover) != len(labels):
        raise InputError(f"{len(coords)} points, {len(labels)} labels and {len(hover)} hover texts: one each per document.")
    drawn = np.arange(len(labels))
    if max_points is not None and len(labels) > max_points:
        drawn = np.sort(np.random.default_rng(seed).choice(len(labels), max_points, replace=False))
        title = f"{title} — a seeded sample of {max_points:,} of {len(labels):,} drawn"
    sizes = {k: int(np.sum(labels == k)) for k in names}
    shown = sorted(names, key=lambda k: (-sizes[k], k))[:top]
    rest_all = ~np.isin(labels, shown) & (labels >= 0)
    groups = [(f"{k}: {names[k]}", labels == k, None) for k in shown]
    groups += [("other topics", rest_all, "#9e9e9e"), ("outliers", labels < 0, "#dddddd")]
    figure = go.Figure()
    kind = go.Scattergl if len(drawn) > 20_000 else go.Scatter  # SVG is exact and light up to ~20k points
    for name, mask, colour in groups:
        if not mask.any():
            continue
        idx = drawn[mask[drawn]]
        figure.add_trace(kind(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=f"{name} ({int(mask.sum()):,})",
                              text=[_wrap(hover[i]) for i in idx], hovertemplate="%{text}<extra>" + _wrap(name, 40) + "</extra>",
                              marker={"size": 4, "opacity": 0.75 if colour is None else 0.4,
                                      **({"color": colour} if colour else {})}))
    figure.update_layout(title=title, height=620, template="plotly_white", legend={"font": {"size": 10}, "itemsizing": "constant"},
                         xaxis={"visible": False}, yaxis={"visible": False}, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def show(figure):
    """The figure as self-contained HTML (plotly.js inline): interactive in JupyterLab and in the static guide, offline."""
    from IPython.display import HTML  # noqa: PLC0415

    return HTML(figure.to_html(include_plotlyjs=True, full_html=False, config={"displaylogo": False}))


def hierarchy_figure(model: TopicModel, names: dict[int, str] | None = None, *, ax=None):
    """The merge tree of a reduced model's original topics (a dendrogram, cosine distance), each leaf named
    (``names`` of the original topics, else their first three keywords) with the topic it joined; a dashed
    line marks where the reduction cut the tree."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from scipy.cluster.hierarchy import dendrogram  # noqa: PLC0415

    if getattr(model, "hierarchy_", None) is None:
        raise InputError("hierarchy_figure needs a model returned by TopicModel.reduce().")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, max(3.0, 0.22 * len(model.parent_topics_))))
    labels = [f"{t}: {(names or {}).get(t) or ', '.join(model.parent_words_[t][:3])} → {model.merged_[t]}"
              for t in model.parent_topics_]
    dendrogram(model.hierarchy_, orientation="right", labels=labels, ax=ax, color_threshold=0,
               above_threshold_color="grey", leaf_font_size=7)
    heights = np.sort(model.hierarchy_[:, 2])
    made = len(model.parent_topics_) - len(set(model.merged_.values()))  # merges that the reduction made
    cut = heights[0] / 2 if made == 0 else heights[-1] * 1.02 if made == len(heights) else heights[made - 1:made + 1].mean()
    ax.axvline(cut, ls="--", c="tab:red", lw=1)
    ax.set_xlabel("cosine distance between topic centroids (average linkage)")
    return ax


def topics_over_time(labels: np.ndarray, dates, names: dict[int, str], *, top: int = 8, freq: str = "Q",
                     min_docs: int = 30):
    """Share of each period's documents in each of the ``top`` largest topics (periods × topics).

    Periods with fewer than ``min_docs`` documents are left out: a share of a handful is noise.
    """
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame({"topic": np.asarray(labels), "date": pd.to_datetime(dates)}).dropna()
    shown = frame.loc[frame["topic"] >= 0, "topic"].value_counts().index[:top]
    period = frame["date"].dt.to_period(freq).dt.start_time
    counts = pd.crosstab(period, frame["topic"])
    totals = counts.sum(axis=1)
    shares = counts.div(totals, axis=0).loc[totals >= min_docs, list(shown)]
    return shares.rename(columns={k: f"{k}: {names.get(k, k)}" for k in shown})
