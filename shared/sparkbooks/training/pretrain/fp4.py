"""NVFP4 training GEMMs as fake quantisation in torch: round-to-nearest, and NVIDIA's pretraining recipe.

Every linear layer's three GEMMs quantise their inputs to NVFP4 (E2M1 values, an E4M3 scale per
block of 16, one FP32 scale per tensor) and multiply in float32 — the numerics of an FP4 tensor
core, simulated; the speed of one is not. On Blackwell, Transformer Engine runs the real kernels.

* forward  ``y  = Q(x) · Q(W)ᵀ``          (blocks along the input dimension K)
* dgrad    ``dx = Q(dy) · Q(W)``           (blocks along the output dimension N)
* wgrad    ``dW = Q(dyᵀ) · Q(xᵀ)``         (blocks along the tokens M)

:class:`Recipe` switches on the ingredients of "Pretraining Large Language Models with NVFP4"
(NVIDIA, arXiv:2509.25149, 2025), one at a time:

* ``weight_2d`` — weights scaled per 16×16 tile, so forward and dgrad see the *same* quantised W
  (1×16 blocks quantise W along K for forward and along N for dgrad: two different weights);
* ``hadamard`` — a random Hadamard transform (16×16, random signs) on both wgrad inputs along the
  token dimension, which spreads a block's outliers; ``Hᵀ H = I`` so without quantisation it changes nothing.
  As in Transformer Engine, one sign vector is shared by every module and **fixed for the whole run**: TE's
  ``nvfp4.rst`` ("a single random sign vector is shared across all linear layers throughout training … this vector
  is fixed") and ``nvfp4_tensor.py::get_wgrad_sign_vector``, whose hard-coded 16 signs are :data:`TE_SIGNS`
  (``diag(s)`` applied before ``H``, the same transform as TE's ``x @ (S·H)`` on rows). ``convert(..., signs="seeded")``
  draws a different fixed vector from the seed instead (a run-level draw, still never redrawn);
* ``stochastic`` — gradients rounded stochastically (unbiased), weights and activations to nearest;
* ``keep_last`` — the last decoder blocks stay in high precision. An ablation should hold this share fixed
  across its variants (``convert(..., keep_last=k)``), or it measures the share as well as the recipe:
  :func:`high_precision_share` states it over all matmul weights, :func:`block_share` over the decoder blocks' alone
  (NVIDIA's ≈ 16 % is that share: the embeddings and the LM head stay in BF16 besides).

:func:`nvfp4` is :func:`sparkbooks.quant.nvfp4_torch.nvfp4`, the one NVFP4 implementation, which nvfp4-fit's
:func:`sparkbooks.quant.nvfp4` also runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...exceptions import InputError
from ...quant.nvfp4_torch import BLOCK, nvfp4

__all__ = ["NVFP4Linear", "RECIPES", "REMOVES", "Recipe", "Signs", "TE_NVFP4_TRAINING_SM", "TE_SIGNS", "block_share", "convert",
           "hadamard", "high_precision_share", "nvfp4", "quantisation_off", "te_trains_nvfp4_on"]


@dataclass(frozen=True)
class Recipe:
    """Which ingredients of the NVFP4 training recipe are on (all off = plain round-to-nearest)."""

    name: str
    weight_2d: bool = False
    hadamard: bool = False
    stochastic: bool = False
    keep_last: int = 0


#: The ablation: plain NVFP4 (round-to-nearest, nothing kept), each ingredient added in turn, the full recipe, and
#: the full recipe with one ingredient removed (``nvfp4_no_*``), as the paper's own ablation does (arXiv:2509.25149,
#: Figure 4: from a partly trained checkpoint, "systematically remove one methodology component at a time: stochastic
#: rounding (SR), Random Hadamard Transforms (RHT), two-dimensional scaling (2D), and fewer blocks in BF16").
#: ``keep_last`` > 0 marks the recipe's fourth ingredient, blocks kept in high precision (how many: the ablation's).
RECIPES = {
    "nvfp4_rtn": Recipe("nvfp4_rtn"),
    "nvfp4_2d": Recipe("nvfp4_2d", weight_2d=True),
    "nvfp4_2d_rht": Recipe("nvfp4_2d_rht", weight_2d=True, hadamard=True),
    "nvfp4_2d_rht_sr": Recipe("nvfp4_2d_rht_sr", weight_2d=True, hadamard=True, stochastic=True),
    "nvfp4_recipe": Recipe("nvfp4_recipe", weight_2d=True, hadamard=True, stochastic=True, keep_last=1),
    "nvfp4_no_2d": Recipe("nvfp4_no_2d", hadamard=True, stochastic=True, keep_last=1),
    "nvfp4_no_rht": Recipe("nvfp4_no_rht", weight_2d=True, stochastic=True, keep_last=1),
    "nvfp4_no_sr": Recipe("nvfp4_no_sr", weight_2d=True, hadamard=True, keep_last=1),
    "nvfp4_no_kept": Recipe("nvfp4_no_kept", weight_2d=True, hadamard=True, stochastic=True),
}
#: The leave-one-out arms, the ingredient each removes.
REMOVES = {"nvfp4_no_2d": "2-D weight scales", "nvfp4_no_rht": "the random Hadamard transform",
           "nvfp4_no_sr": "stochastic rounding", "nvfp4_no_kept": "the blocks kept in high precision"}


def hadamard(size: int = BLOCK) -> torch.Tensor:
    """The orthonormal Sylvester Hadamard matrix of order ``size`` (a power of two)."""
    h = torch.ones(1, 1)
    while h.shape[0] < size:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / h.shape[0] ** 0.5


def _rht_tokens(t: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Apply H·diag(signs) to every group of 16 rows (tokens) of ``t`` (rows padded with zeros)."""
    rows = t.shape[0]
    pad = (-rows) % BLOCK
    t = torch.nn.functional.pad(t, (0, 0, 0, pad))
    groups = t.reshape(-1, BLOCK, t.shape[1])
    rotated = torch.einsum("ij,gjc->gic", hadamard(BLOCK).to(t) * signs, groups)
    return rotated.reshape(-1, t.shape[1])


#: Transformer Engine's Hadamard sign vector (``transformer_engine/pytorch/tensor/nvfp4_tensor.py::get_wgrad_sign_vector``,
#: the same in ``custom_recipes/reference_nvfp4.py``): hard-coded, shared by every layer, never redrawn.
TE_SIGNS = (1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -1.0)

#: Compute capabilities on which Transformer Engine documents NVFP4 *training* (``docs/features/low_precision_training/
#: nvfp4/nvfp4.rst``, "Supported devices": "Training: SM 10.0, SM 10.3 · Inference: SM 10.0+"; TE commit d0067d0d).
TE_NVFP4_TRAINING_SM: tuple[tuple[int, int], ...] = ((10, 0), (10, 3))
TE_SUPPORT_SOURCE = ("Transformer Engine nvfp4.rst, 'Supported devices': Training SM 10.0, SM 10.3; Inference SM 10.0+ "
                     "(its runtime check, quantization.py::_compute_nvfp4_support, only asks for compute capability "
                     "≥ 10.0, so it does not refuse sm_12x: untested, not unsupported-by-error)")


def te_trains_nvfp4_on(capability: tuple[int, int]) -> bool:
    """Whether Transformer Engine documents NVFP4 training on a GPU of ``capability`` (GB10 / DGX Spark: (12, 1) → False)."""
    return tuple(capability) in TE_NVFP4_TRAINING_SM


class Signs:
    """The random Hadamard signs every :class:`NVFP4Linear` of a model shares, fixed for the whole run (as in TE).

    ``source="te"``: Transformer Engine's hard-coded vector (:data:`TE_SIGNS`); ``"seeded"``: one vector drawn from
    ``seed`` when the model is converted. Either way it never changes during training.
    """

    def __init__(self, source: str = "te", *, seed: int = 0):
        if source == "te":
            self.value = torch.tensor(TE_SIGNS)
        elif source == "seeded":
            draw = torch.rand(BLOCK, generator=torch.Generator().manual_seed(seed))
            self.value = torch.where(draw < 0.5, -1.0, 1.0)
        else:
            raise InputError(f"Unknown Hadamard sign source {source!r}: use 'te' (Transformer Engine's fixed vector) "
                             f"or 'seeded' (one vector drawn from the seed, fixed for the run).")
        self.source = source

    def current(self) -> torch.Tensor:
        return self.value


class _NVFP4Matmul(torch.autograd.Function):
    # Autocast is off inside: the quantised operands are multiplied in float32, as the tensor core accumulates
    # (under BF16 autocast a float32 matmul would be cast back to BF16 and round the simulated values again).
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, recipe: Recipe, generator: torch.Generator | None,
                signs: Signs | None):
        with torch.autocast(device_type=x.device.type, enabled=False):
            wq = nvfp4(weight, tile=BLOCK if recipe.weight_2d else 1)
            ctx.save_for_backward(x, weight, wq)
            ctx.recipe, ctx.generator, ctx.signs = recipe, generator, signs
            return nvfp4(x) @ wq.t()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, wq = ctx.saved_tensors
        recipe, generator = ctx.recipe, ctx.generator
        sr = dict(stochastic=recipe.stochastic, generator=generator)
        with torch.autocast(device_type=x.device.type, enabled=False):
            # dgrad: reduce over N — the gradient in blocks along N, the weight along N (the same tiles if 2-D).
            w_n = wq if recipe.weight_2d else nvfp4(weight.t()).t()
            grad_x = nvfp4(grad_out, **sr) @ w_n
            # wgrad: reduce over the tokens M — both operands in blocks along M, rotated first if asked.
            g, a = grad_out.float(), x.float()
            if recipe.hadamard:  # the run's fixed signs, the same in every module
                signs = (ctx.signs or Signs()).current().to(x.device)
                g, a = _rht_tokens(g, signs), _rht_tokens(a, signs)
            grad_w = nvfp4(g.t().contiguous(), **sr) @ nvfp4(a.t().contiguous()).t()
        return grad_x.to(x.dtype), grad_w.to(weight.dtype), None, None, None


class NVFP4Linear(torch.nn.Module):
    """A linear layer whose GEMMs run in simulated NVFP4 (the weight stays a float32 master copy)."""

    def __init__(self, linear: torch.nn.Linear, recipe: Recipe, generator: torch.Generator | None = None,
                 signs: Signs | None = None):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.recipe, self.generator = recipe, generator
        self.signs = signs if signs is not None else Signs()
        self.quantise = True  # False inside quantisation_off: the master weights, unquantised

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantise:
            return torch.nn.functional.linear(x, self.weight, self.bias)
        shape = x.shape
        y = _NVFP4Matmul.apply(x.reshape(-1, shape[-1]), self.weight, self.recipe, self.generator, self.signs)
        y = y.reshape(*shape[:-1], -1)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]} → {self.weight.shape[0]}, {self.recipe.name}"


def convert(model: torch.nn.Module, recipe: Recipe, *, seed: int = 0, keep_last: int | None = None,
            signs: str = "te") -> list[str]:
    """Swap the linear layers of a Llama-style model's decoder blocks for :class:`NVFP4Linear`; return their names.

    The embeddings and the LM head stay in high precision (as in the paper), and so do the last
    ``keep_last`` blocks (default: ``recipe.keep_last``; give every variant of an ablation the same number).
    One seeded generator, on the model's device (convert after ``.to(device)``), drives stochastic rounding.
    The Hadamard signs, shared by every converted layer and fixed for the run, are Transformer Engine's
    (``signs="te"``) or drawn once from ``seed`` (``signs="seeded"``).
    """
    layers = model.model.layers
    keep = recipe.keep_last if keep_last is None else keep_last
    if not 0 <= keep <= len(layers):
        raise InputError(f"keep_last must be in 0…{len(layers)} (the model's blocks); got {keep}.")
    device = next(model.parameters()).device  # the generator must live where the tensors are (a CUDA one on a GPU)
    generator = torch.Generator(device=device).manual_seed(seed)
    shared = Signs(signs, seed=seed)
    converted = []
    for index, block in enumerate(layers):
        if index >= len(layers) - keep:
            continue
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(module, child_name, NVFP4Linear(child, recipe, generator, shared))
                    converted.append(f"layers.{index}.{name + '.' if name else ''}{child_name}")
    return converted


class quantisation_off:  # noqa: N801 (a context manager read like a function)
    """``with quantisation_off(model):`` every :class:`NVFP4Linear` multiplies its float32 master weights unquantised.

    Scoring the same weights both ways separates damage done by NVFP4 *training* (the master weights learnt
    worse) from the forward pass's own rounding at evaluation time.
    """

    def __init__(self, model: torch.nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, NVFP4Linear)]

    def __enter__(self):
        for layer in self.layers:
            layer.quantise = False
        return self

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            layer.quantise = True


def high_precision_share(model: torch.nn.Module) -> float:
    """The share of the model's matmul weights (decoder blocks and LM head) that stays out of NVFP4.

    Training FLOPs per token are 6 per matmul weight, so this is also the share of the matmul FLOPs
    (attention's score products aside) that runs in high precision.
    """
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Linear, NVFP4Linear)))
    low = sum(m.weight.numel() for m in model.modules() if isinstance(m, NVFP4Linear))
    return 1 - low / total


def block_share(model: torch.nn.Module) -> float:
    """The share of the decoder blocks' linear weights that stays out of NVFP4 (the LM head and embeddings aside).

    This is the share NVIDIA's recipe states — the paper ≈ 16 % of its linear layers, the Station playbook the last
    4 of 32 blocks — *on top of* the embeddings and the output head, which stay in BF16 anyway.
    """
    blocks = model.model.layers
    total = sum(m.weight.numel() for m in blocks.modules() if isinstance(m, (torch.nn.Linear, NVFP4Linear)))
    low = sum(m.weight.numel() for m in blocks.modules() if isinstance(m, NVFP4Linear))
    return 1 - low / total
