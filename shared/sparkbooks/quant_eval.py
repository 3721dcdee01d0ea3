"""What a number format does to a real model: per-layer weight error and task-level agreement."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .quant import FORMATS, relative_error

__all__ = [
    "FormatComparison",
    "QuantisedModel",
    "compare_formats",
    "embedding_agreement",
    "neighbours",
    "plot_quality",
    "quantise_linear_layers",
    "recall_at_k",
    "same_label_rate",
]


@dataclass(frozen=True)
class QuantisedModel:
    """A fake-quantised copy of a model and the relative weight error of each layer (a DataFrame)."""

    model: Any
    errors: Any


@dataclass(frozen=True)
class FormatComparison:
    """One row per format (FP32 first) of task-level agreement, and one row per (format, layer) of weight error."""

    summary: Any
    layer_errors: Any


def quantise_linear_layers(model, fmt: str) -> QuantisedModel:
    """A deep copy of a torch ``model`` whose every ``nn.Linear`` weight is fake-quantised to ``fmt``.

    ``errors`` has one row per layer (name, shape, relative Frobenius error). Biases, norms and
    embeddings stay in FP32, as in real weight-only quantisation recipes.
    """
    import pandas as pd  # noqa: PLC0415
    import torch  # noqa: PLC0415

    quantise = FORMATS[fmt].quantise
    clone = copy.deepcopy(model)
    rows = []
    with torch.no_grad():
        for name, module in clone.named_modules():
            if isinstance(module, torch.nn.Linear):
                weight = module.weight.detach().cpu().numpy().copy()  # the copy_ below would change a view
                q = quantise(weight)
                module.weight.copy_(torch.from_numpy(q))
                rows.append({"layer": name, "shape": "×".join(map(str, weight.shape)), "format": fmt,
                             "relative_error": relative_error(weight, q)})
    return QuantisedModel(clone, pd.DataFrame(rows))


def embedding_agreement(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cosine similarity between matching rows of two embedding matrices."""
    a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    b = other / np.linalg.norm(other, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def neighbours(embeddings: np.ndarray, queries: Sequence[int], *, k: int = 10) -> np.ndarray:
    """Indices of the ``k`` nearest documents (cosine) for each query row, the query itself excluded."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sims = unit[list(queries)] @ unit.T
    sims[np.arange(len(queries)), list(queries)] = -np.inf
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of the reference top-k neighbours that the other model also returns in its top-k."""
    k = reference.shape[1]
    return float(np.mean([len(set(r) & set(o)) / k for r, o in zip(reference, other)]))


def same_label_rate(top: np.ndarray, labels: Sequence[str], queries: Sequence[int]) -> float:
    """Share of retrieved neighbours that carry the query's label (here: the same news account)."""
    labels = np.asarray(labels)
    return float(np.mean(labels[top] == labels[list(queries)][:, None]))


def compare_formats(model, texts: Sequence[str], labels: Sequence[str], *, formats: Sequence[str], queries: Sequence[int],
                    k: int = 10, batch_size: int = 64):
    """Quantise ``model`` to each format and measure it against the unquantised model on ``texts``.

    ``summary`` has one row per format (FP32 first) with bits/weight, mean/min cosine similarity
    of embeddings, recall@k against FP32's neighbours, and the share of neighbours from the
    query's own label; ``layer_errors`` has one row per (format, layer).
    """
    import pandas as pd  # noqa: PLC0415

    texts = list(texts)
    reference = model.encode(texts, batch_size=batch_size, show_progress_bar=False)
    ref_top = neighbours(reference, queries, k=k)
    rows = [{"format": "fp32", "bits_per_weight": 32.0, "cosine_mean": 1.0, "cosine_min": 1.0,
             f"recall@{k}": 1.0, "same_source": same_label_rate(ref_top, labels, queries)}]
    errors = []
    for fmt in formats:
        done = quantise_linear_layers(model, fmt)
        quantised, layer_errors = done.model, done.errors
        emb = quantised.encode(texts, batch_size=batch_size, show_progress_bar=False)
        cos = embedding_agreement(reference, emb)
        top = neighbours(emb, queries, k=k)
        rows.append({"format": fmt, "bits_per_weight": FORMATS[fmt].bits_per_weight, "cosine_mean": float(cos.mean()),
                     "cosine_min": float(cos.min()), f"recall@{k}": recall_at_k(ref_top, top),
                     "same_source": same_label_rate(top, labels, queries)})
        errors.append(layer_errors)
    return FormatComparison(pd.DataFrame(rows).set_index("format"), pd.concat(errors, ignore_index=True))


def plot_quality(summary, layer_errors, *, k: int = 10):
    """Left: relative weight error per linear layer and format. Right: recall@k and cosine per format."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    for fmt, group in layer_errors.groupby("format", sort=False):
        left.plot(range(len(group)), group["relative_error"], marker=".", label=fmt)
    left.set(xlabel="linear layer (model order)", ylabel="‖W − Q(W)‖ / ‖W‖", title="Weight error per layer", yscale="log")
    left.legend()
    quantised = summary.drop(index="fp32")
    x = range(len(quantised))
    right.bar([i - 0.2 for i in x], quantised[f"recall@{k}"], width=0.4, color="#76b900", label=f"recall@{k} vs FP32")
    right.bar([i + 0.2 for i in x], quantised["cosine_mean"], width=0.4, color="#5b5b5b", label="mean cosine vs FP32")
    right.set_xticks(list(x), quantised.index)
    right.set(ylim=(0.5, 1.0), title="Task-level agreement")
    right.legend(loc="lower left")
    fig.tight_layout()
    return fig
