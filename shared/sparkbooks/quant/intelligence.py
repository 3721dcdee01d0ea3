"""Whether a recipe keeps a model's intelligence, by NVIDIA's own tolerance and a paired interval; paired ratios of means.

Both read the per-document scores of :func:`sparkbooks.quant.evaluate.compare_recipes`; neither needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..exceptions import InputError
from ..intervals import bootstrap_interval

if TYPE_CHECKING:  # the comparison is only read here; importing evaluate at run time would be a cycle
    from .evaluate import LMComparison

__all__ = ["AccuracyClaims", "BaselineGrid", "GRID_TOLERANCE", "IntelligenceVerdict", "MIN_BOOTSTRAP_UNITS",
           "NVIDIA_TOLERANCE", "Ratio", "accuracy_claims", "intelligence_verdict", "paired_ratio"]


#: NVIDIA's tolerance for a 4-bit checkpoint, and where it is written. NVIDIA judges NVFP4 by task accuracy against
#: BF16: Nemotron 3 Nano 30B-A3B NVFP4 scores 77.4 on MMLU-Pro against the BF16 model's 78.3 — within one point.
NVIDIA_TOLERANCE = {
    "points": 0.01,
    "text": "task accuracy within one point of the unquantised model",
    "source": "huggingface.co/nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 (MMLU-Pro 77.4 vs BF16 78.3, "
              "huggingface.co/nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16)",
}


@dataclass(frozen=True)
class IntelligenceVerdict:
    """Whether a recipe keeps a model's accuracy within a stated tolerance, decided by a paired interval.

    ``outcome`` is ``"reproduced"`` (the interval of the accuracy change lies above −tolerance),
    ``"refuted"`` (it lies below) or ``"not decided"`` (it straddles the line); ``word`` is the outcome with the
    evidence it rests on, e.g. ``"refuted (135M PTQ stand-in)"`` — never a verdict on NVIDIA's own checkpoints.
    ``units`` is how many documents the bootstrap resamples.
    """

    claim: str
    word: str
    outcome: str
    units: int
    accuracy_change: float
    low: float
    high: float
    tolerance: float
    evidence: str

    def __str__(self) -> str:
        return f"{self.word}: {self.evidence}"


#: A baseline whose linear layers a 4-bit grid reproduces closer than this (relative error) is a 4-bit model, not a float
#: one. BF16 rounding alone moves a 4-bit model ~1.4e-3 off its grid (the dequantised stand-in loaded in BF16, as
#: ModelOpt loads models); a float model sits ~0.1 off it (4-bit rounding error). 5e-3 separates the two.
GRID_TOLERANCE = 5e-3


@dataclass(frozen=True)
class BaselineGrid:
    """How far the baseline's linear layers lie from a 4-bit grid (:func:`sparkbooks.quant.evaluate.baseline_grid`)."""

    error: float  # ‖W − Q(W)‖ / ‖W‖ over all layers, Q the grid's quantiser
    layers: int
    grid: str  # e.g. "asymmetric INT4 in groups of 32 (GGUF Q4_1's grid)"

    @property
    def on_grid(self) -> bool:
        """The baseline is already quantised: a 4-bit recipe would be measured against a 4-bit model."""
        return self.error < GRID_TOLERANCE


class AccuracyClaims(NamedTuple):
    """The references NVFP4's accuracy is claimed against, and why one is left out (empty: none is)."""

    references: list[str]
    left_out: str


def accuracy_claims(baseline: BaselineGrid | None) -> AccuracyClaims:
    """The references NVFP4's accuracy may be *claimed* against (``"fp8"``, ``"baseline"``), and why one is left out.

    A claim's verdict comes from its interval alone, so against a baseline already on a 4-bit grid it would say
    "does not hold" beside :func:`intelligence_verdict`'s "not decided" for the same comparison: that claim is
    not made, and the reason says why. FP8 stays — both recipes start from the same weights.

    >>> accuracy_claims(BaselineGrid(0.0, 210, "Q4_1's grid")).references
    ['fp8']
    >>> accuracy_claims(BaselineGrid(0.1, 210, "Q4_1's grid"))
    AccuracyClaims(references=['fp8', 'baseline'], left_out='')
    """
    if baseline is None or not baseline.on_grid:
        return AccuracyClaims(["fp8", "baseline"], "")
    return AccuracyClaims(["fp8"], f"no claim against the unquantised baseline: {baseline.grid} reproduces its "
                                   f"{baseline.layers} linear layers with relative error {baseline.error:.2g} (< "
                                   f"{GRID_TOLERANCE:g}), so it is a 4-bit model and decides nothing about 4-bit loss; "
                                   "that comparison is left open in the verdict above")


#: Fewer resampled units than this and a percentile bootstrap interval is known to undercover: the evidence says so.
MIN_BOOTSTRAP_UNITS = 30


def intelligence_verdict(comparison: LMComparison, *, recipe: str = "NVFP4 + MSE scales", points: float | None = None,
                         evidence_of: str = "135M PTQ stand-in", baseline: BaselineGrid | None = None, n_boot: int = 2000,
                         seed: int = 0) -> IntelligenceVerdict:
    """"Without losing intelligence", judged by NVIDIA's tolerance (:data:`NVIDIA_TOLERANCE`) on next-token accuracy.

    The change in next-token accuracy (recipe − unquantised baseline, on the same tokens) gets a 95 %
    paired bootstrap interval over documents. Reproduced when the whole interval lies above
    −``points``; refuted when it lies below; otherwise not decided — so the verdict can go either way.
    The evidence also gives Δperplexity, the KL percentiles and the same-top-token rate. ``evidence_of`` names what
    was measured (default: post-training quantisation of the 135M stand-in) and goes into the word, so a line that
    quotes the verdict cannot pass it off as one on NVIDIA's checkpoints; the evidence names the bootstrap's unit.

    ``baseline`` (:class:`BaselineGrid`): where the "unquantised" model already lies on a 4-bit grid — a model
    dequantised from Q4_1 — the outcome is **not decided**, whatever the interval says, and the evidence opens with
    why: NVIDIA (ModelOpt ``hf_ptq.py``) quantises from BF16 weights, and llama-perplexity compares against F16 logits.
    """
    from ..intervals import paired_bootstrap  # noqa: PLC0415

    points = NVIDIA_TOLERANCE["points"] if points is None else points
    d = comparison.per_doc[comparison.per_doc["recipe"] == recipe].sort_values("doc")
    if d.empty:
        raise InputError(f"{recipe!r} was not scored; recipes: {', '.join(comparison.summary.index)}.")
    diff = paired_bootstrap(list(d["acc"]), list(d["base_acc"]), n_boot=n_boot, seed=seed)
    change, low, high = float(d["acc"].mean() - d["base_acc"].mean()), diff.low, diff.high
    outcome = "reproduced" if low >= -points else "refuted" if high < -points else "not decided"
    grid_note = ""
    if baseline is not None and baseline.on_grid:  # re-quantising a 4-bit grid measures the grid mismatch, not 4-bit loss
        grid_note = (f"not decided — the baseline is not a float model: {baseline.grid} reproduces its {baseline.layers} "
                     f"linear layers with relative error {baseline.error:.2g} (< {GRID_TOLERANCE:g}), so the recipe is "
                     f"measured against a 4-bit model (the interval alone would say {outcome}); ")
        outcome = "not decided"
    units = len(d)
    unit_note = (f"paired bootstrap over {units} documents" + (
        f" — fewer than {MIN_BOOTSTRAP_UNITS}, so the interval may undercover" if units < MIN_BOOTSTRAP_UNITS else ""))
    row = comparison.summary.loc[recipe]
    evidence = grid_note + (f"{recipe} vs the unquantised model on {comparison.tokens:,} held-out tokens: next-token accuracy "
                f"{100 * change:+.2f} points (95% CI {100 * low:+.2f} to {100 * high:+.2f}, {unit_note}; tolerance −{100 * points:.0f} "
                f"point, {NVIDIA_TOLERANCE['text']}, after NVIDIA's model card); perplexity {100 * (row['ppl_ratio'] - 1):+.1f}%; "
                f"KL mean {row['kl']:.4f}, 99% {row['kl_p99']:.3f}, 99.9% {row['kl_p999']:.3f} nats; "
                f"same top token {100 * row['top1']:.1f}%")
    word = f"{outcome} ({evidence_of})" if evidence_of else outcome
    return IntelligenceVerdict("… without losing intelligence", word, outcome, units, change, low, high, points,
                               f"{evidence_of}: {evidence}" if evidence_of else evidence)


@dataclass(frozen=True)
class Ratio:
    """A ratio of means and its 95% bootstrap interval."""

    value: float
    low: float
    high: float


def paired_ratio(per_doc, recipe: str, reference: str, *, metric: str = "kl", n_boot: int = 2000,
                 seed: int = 0) -> Ratio:
    """``mean(metric | recipe) / mean(metric | reference)`` with a 95% interval from resampling the same documents."""
    a = per_doc[per_doc["recipe"] == recipe].sort_values("doc")[metric].to_numpy()
    b = per_doc[per_doc["recipe"] == reference].sort_values("doc")[metric].to_numpy()
    if len(a) != len(b) or not len(a):
        raise InputError(f"{recipe!r} and {reference!r} were not scored on the same documents.")
    pairs = np.column_stack([a, b])
    low, high = bootstrap_interval(pairs, lambda x: float(x[:, 0].mean() / x[:, 1].mean()), n_boot=n_boot, seed=seed)
    return Ratio(float(a.mean() / b.mean()), low, high)
