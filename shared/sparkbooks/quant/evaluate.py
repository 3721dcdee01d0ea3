"""What a number format does to a real language model: its next-token distributions, against a baseline.

The model is the stand-in we ship, SmolLM2-135M-Instruct (a Q4_1 GGUF), dequantised to float32:
the baseline is therefore *Q4_1-derived*, not the BF16 original. Each recipe quantises the
decoder's linear layers — embeddings and the (tied) lm_head stay as they are, as NVIDIA's recipes
keep sensitive layers in BF16 — and is scored on held-out text by

* **KL(baseline ‖ recipe)** per token: how far the next-token distribution moved;
* the **perplexity ratio** against the baseline on the same tokens;
* **top-1 agreement**: the recipe's most likely next token is the baseline's (``llama-perplexity
  --kl-divergence``'s "same top" rate);
* the **99 % and 99.9 % percentiles of per-token KL** on ``llama-perplexity --kl-divergence``'s protocol: pooled
  over the second half of every window only (positions ≥ length/2, whose predictions see at least half a window of
  context; early, short-context tokens would inflate the tail). The mean hides the rare tokens a format wrecks.

Intervals are percentile bootstraps over documents (tokens of one document are not independent).

:func:`intelligence_verdict` (in :mod:`.intelligence`) judges "without losing intelligence" by NVIDIA's own
tolerance — task accuracy within one point of the unquantised model — so the verdict can come out either way.
The stand-in model and its token windows are :mod:`.stand_in_lm`. Both modules' names are importable from here.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import InputError
from ..intervals import bootstrap_interval
from .formats import FORMATS, NUMBER_FORMATS, int4_asym, nvfp4_mse, relative_error
from .intelligence import (NVIDIA_TOLERANCE, AccuracyClaims, BaselineGrid, IntelligenceVerdict, Ratio, accuracy_claims,
                           intelligence_verdict, paired_ratio)
from .stand_in_lm import StandInLM, load_stand_in_lm, stand_in_folder, token_windows

__all__ = [
    "AccuracyClaims",
    "BaselineGrid",
    "IntelligenceVerdict",
    "LMComparison",
    "NVIDIA_TOLERANCE",
    "QuantRecipe",
    "QuantisedModel",
    "RECIPES",
    "Ratio",
    "StandInLM",
    "accuracy_claims",
    "baseline_grid",
    "compare_recipes",
    "intelligence_verdict",
    "load_stand_in_lm",
    "paired_ratio",
    "plot_comparison",
    "quantise_model",
    "stand_in_folder",
    "token_kl",
    "token_windows",
]


@dataclass(frozen=True)
class QuantRecipe:
    """A quantisation recipe: the weight format, how block scales are chosen, and whether activations are quantised."""

    name: str
    fmt: str
    scales: str = "round-to-nearest"  # or "MSE search" (NVFP4 only: per-block scale search)
    activations: bool = False  # W4A4: every linear layer's input quantised too, with dynamic scales

    def weight_quantiser(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.fmt not in FORMATS:
            raise InputError(f"No fake quantiser for {self.fmt!r}; formats: {', '.join(FORMATS)}.")
        if self.scales == "MSE search":
            if self.fmt != "nvfp4":
                raise InputError("The MSE scale search is implemented for NVFP4 only.")
            return nvfp4_mse
        return FORMATS[self.fmt].quantise

    def activation_quantiser(self) -> Callable[[Any], Any]:
        """The quantiser of each linear layer's input: torch in, torch out, on the input's device (NVFP4)."""
        if self.fmt != "nvfp4":
            raise InputError(f"Quantised activations are implemented for NVFP4 only; got {self.fmt!r}.")
        from .nvfp4_torch import nvfp4  # noqa: PLC0415

        return nvfp4


#: FP8 is the yardstick: the format the industry already calls near-lossless.
RECIPES: tuple[QuantRecipe, ...] = (
    QuantRecipe("FP8", "fp8"),
    QuantRecipe("NVFP4", "nvfp4"),
    QuantRecipe("NVFP4 + MSE scales", "nvfp4", scales="MSE search"),
    QuantRecipe("MXFP4", "mxfp4"),
    QuantRecipe("INT4 g128", "int4"),
    QuantRecipe("NVFP4 W4A4", "nvfp4", activations=True),
)


@dataclass(frozen=True)
class QuantisedModel:
    """A fake-quantised copy of a model and the relative weight error of each layer (a DataFrame)."""

    model: Any
    errors: Any


def _decoder_linears(model) -> list[tuple[str, Any]]:
    """The layers every recipe quantises: each decoder ``nn.Linear`` — not the input embeddings, not the lm_head."""
    import torch  # noqa: PLC0415

    kept = {id(model.get_input_embeddings().weight)}
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head") and id(module.weight) not in kept]


def baseline_grid(model, *, group: int = 32, rows: int | None = 64) -> BaselineGrid:
    """How far ``model``'s decoder linear layers lie from asymmetric INT4 in groups of ``group`` (GGUF Q4_1's grid).

    ≈ 0 for the shipped stand-in (dequantised from Q4_1): its "unquantised" baseline is a 4-bit model, and
    :func:`intelligence_verdict` then says "not decided". A float model gives ~0.1. The first ``rows`` output rows
    of every layer are checked (the grid is a property of each group: a sample answers it; ``None``: all).
    """
    weights = [module.weight.detach().cpu().numpy()[:rows] for _, module in _decoder_linears(model)]
    if not weights:
        raise InputError("The model has no linear layers to check.")

    def squares(w: np.ndarray) -> tuple[float, float]:
        return float(np.sum((w - int4_asym(w, group=group)) ** 2, dtype=np.float64)), float(np.sum(w**2, dtype=np.float64))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # array passes release the GIL
        sums = list(pool.map(squares, weights))
    error = float(np.sqrt(sum(d for d, _ in sums) / sum(n for _, n in sums)))
    sample = "" if rows is None else f", first {rows} rows of each layer"
    return BaselineGrid(error, len(weights), f"asymmetric INT4 in groups of {group} (GGUF Q4_1's grid{sample})")


def quantise_model(model, recipe: QuantRecipe) -> QuantisedModel:
    """A deep copy of ``model`` with every decoder ``nn.Linear`` quantised by ``recipe``; the original is untouched.

    The input embeddings and the lm_head (tied to them in SmolLM2) are left alone. With
    ``recipe.activations`` each quantised layer also fake-quantises its input on every call.
    """
    import pandas as pd  # noqa: PLC0415
    import torch  # noqa: PLC0415

    quantise = recipe.weight_quantiser()
    activation_quantiser = recipe.activation_quantiser() if recipe.activations else None
    clone = copy.deepcopy(model)

    def quantise_input(_module, args):  # on the activation's device: no copy to the host per layer and call
        x = args[0]
        return (activation_quantiser(x.detach()).to(dtype=x.dtype), *args[1:])

    layers = _decoder_linears(clone)
    weights = [module.weight.detach().cpu().numpy().copy() for _, module in layers]  # copy_ below would change a view
    # once per layer, on the host; array passes release the GIL: layers quantise in parallel, each exactly as alone
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        quantised = list(pool.map(quantise, weights))
    rows = []
    with torch.no_grad():
        for (name, module), weight, q in zip(layers, weights, quantised):
            module.weight.copy_(torch.from_numpy(q))
            if recipe.activations:
                module.register_forward_pre_hook(quantise_input)
            rows.append({"layer": name, "recipe": recipe.name, "relative_error": relative_error(weight, q)})
    if not rows:
        raise InputError("The model has no linear layers to quantise.")
    return QuantisedModel(clone, pd.DataFrame(rows))


def token_kl(base, logq, *, p=None):
    """KL(base ‖ q) per position, from log-probabilities over the vocabulary (last axis), in nats.

    The one formula the recipes are scored with — ``llama-perplexity --kl-divergence``'s, which
    ``benchmarks/quant_kld_crosscheck.py`` checks it against. ``p`` (``base.exp()``) may be passed when already computed.
    """
    return ((base.exp() if p is None else p) * (base - logq)).sum(-1)


@dataclass(frozen=True)
class LMComparison:
    """``summary``: one row per recipe with intervals; ``per_doc``: per (recipe, document) means over the scored
    positions (≥ ``scored_from`` of each window, llama-perplexity's) — ``kl``, ``nll`` and
    ``base_nll``, ``top1`` (agreement with the baseline's most likely token), ``acc`` and ``base_acc`` (the most likely
    token is the real next one: next-token accuracy, the recipe's and the baseline's); ``layer_errors``;
    ``token_kl``: per recipe, the KL of every token llama-perplexity would score (positions ≥ ``scored_from`` of each
    window), which the percentiles are taken over."""

    summary: Any
    per_doc: Any
    layer_errors: Any
    tokens: int
    token_kl: dict[str, np.ndarray] | None = None
    scored_from: int = 0


def compare_recipes(model, tokens, recipes: Sequence[QuantRecipe] = RECIPES, *, batch_size: int = 4, n_boot: int = 2000,
                    seed: int = 0) -> LMComparison:
    """Score each recipe against the unquantised ``model`` on ``tokens`` (documents × length).

    Every recipe sees the same tokens; the baseline's distribution is computed once per batch. Every figure — means,
    intervals, percentiles, perplexity, top-1 and accuracy — is taken on the positions ``llama-perplexity
    --kl-divergence`` scores: the second half of each window (≥ length/2, each with at least half a window of context),
    the protocol ``benchmarks/quant_kld_crosscheck.py`` checks against llama.cpp's own tool. (Early positions, with
    little context, have far higher KL, so a mean over every position is not llama-perplexity's figure.)
    """
    import pandas as pd  # noqa: PLC0415
    import torch  # noqa: PLC0415

    if len(tokens) < 2:
        raise InputError("Need at least 2 documents for intervals.")
    variants = {r.name: quantise_model(model, r) for r in recipes}
    first = tokens.shape[1] // 2  # llama-perplexity: first = n_ctx / 2; logits at i predict token i + 1
    rows = []
    per_token: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            chunk = tokens[start:start + batch_size]
            following = chunk[:, first + 1:]  # the tokens the scored positions predict
            target = following.unsqueeze(-1)
            base = torch.log_softmax(model(chunk).logits[:, first:-1].float(), dim=-1)
            base_nll = -base.gather(-1, target).squeeze(-1).mean(1)
            base_top = base.argmax(-1)
            base_acc = (base_top == following).float().mean(1)  # the real next token, NVIDIA's yardstick
            p = base.exp()
            for name, variant in variants.items():
                logq = torch.log_softmax(variant.model(chunk).logits[:, first:-1].float(), dim=-1)
                kl_tokens = token_kl(base, logq, p=p)
                per_token[name].append(kl_tokens.flatten().cpu().numpy())
                kl = kl_tokens.mean(1)
                nll = -logq.gather(-1, target).squeeze(-1).mean(1)
                top1 = (logq.argmax(-1) == base_top).float().mean(1)
                acc = (logq.argmax(-1) == following).float().mean(1)
                for i in range(len(chunk)):
                    rows.append({"recipe": name, "doc": start + i, "kl": float(kl[i]), "nll": float(nll[i]),
                                 "base_nll": float(base_nll[i]), "top1": float(top1[i]), "acc": float(acc[i]),
                                 "base_acc": float(base_acc[i])})
            del base, p
    per_doc = pd.DataFrame(rows)
    pooled = {name: np.concatenate(parts) for name, parts in per_token.items()}
    errors = pd.concat([v.errors for v in variants.values()], ignore_index=True)
    summary = []
    for recipe in recipes:
        d = per_doc[per_doc["recipe"] == recipe.name]
        pair = d[["nll", "base_nll"]].to_numpy()
        ratio = lambda a: float(np.exp(a[:, 0].mean() - a[:, 1].mean()))  # noqa: E731 - perplexity ratio
        summary.append({
            "recipe": recipe.name, "bits_per_weight": NUMBER_FORMATS[recipe.fmt].bits_per_weight,
            "activations": recipe.fmt if recipe.activations else "baseline", "scales": recipe.scales,
            "kl": d["kl"].mean(), **dict(zip(("kl_low", "kl_high"), bootstrap_interval(d["kl"].to_numpy(), np.mean, n_boot=n_boot, seed=seed))),
            "ppl_ratio": ratio(pair), **dict(zip(("ppl_ratio_low", "ppl_ratio_high"), bootstrap_interval(pair, ratio, n_boot=n_boot, seed=seed))),
            "kl_p99": float(np.percentile(pooled[recipe.name], 99)), "kl_p999": float(np.percentile(pooled[recipe.name], 99.9)),
            "top1": d["top1"].mean(), **dict(zip(("top1_low", "top1_high"), bootstrap_interval(d["top1"].to_numpy(), np.mean, n_boot=n_boot, seed=seed))),
            "accuracy": d["acc"].mean(), "base_accuracy": d["base_acc"].mean(),
            "weight_error_median": errors.loc[errors["recipe"] == recipe.name, "relative_error"].median(),
        })
    tokens_scored = int(tokens.shape[0] * (tokens.shape[1] - 1 - first))
    return LMComparison(pd.DataFrame(summary).set_index("recipe"), per_doc, errors, tokens_scored, pooled, first)


def plot_comparison(summary):
    """KL to the baseline (log scale) and top-1 agreement per recipe, with 95% intervals."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    y = range(len(summary))
    for ax, col, title in ((left, "kl", "KL(baseline ‖ recipe) per token, nats"), (right, "top1", "top-1 agreement with the baseline")):
        err = [summary[col] - summary[f"{col}_low"], summary[f"{col}_high"] - summary[col]]
        ax.barh(list(y), summary[col], xerr=err, color=["#5b5b5b" if r == "FP8" else "#76b900" for r in summary.index])
        ax.set_yticks(list(y), summary.index)
        ax.invert_yaxis()
        ax.set_title(title)
    left.set_xscale("log")
    fig.tight_layout()
    return fig
