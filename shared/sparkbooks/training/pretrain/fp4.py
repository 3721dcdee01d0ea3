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
  token dimension, which spreads a block's outliers; ``Hᵀ H = I`` so without quantisation it changes nothing;
* ``stochastic`` — gradients rounded stochastically (unbiased), weights and activations to nearest;
* ``keep_last`` — the last decoder blocks stay in high precision.

:func:`nvfp4` is :func:`sparkbooks.quant.nvfp4_torch.nvfp4`, the one NVFP4 implementation, which nvfp4-fit's
:func:`sparkbooks.quant.nvfp4` also runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...quant.nvfp4_torch import BLOCK, nvfp4

__all__ = ["NVFP4Linear", "RECIPES", "Recipe", "convert", "hadamard", "nvfp4"]


@dataclass(frozen=True)
class Recipe:
    """Which ingredients of the NVFP4 training recipe are on (all off = plain round-to-nearest)."""

    name: str
    weight_2d: bool = False
    hadamard: bool = False
    stochastic: bool = False
    keep_last: int = 0


#: The ablation: plain NVFP4, each ingredient added in turn, the full recipe.
RECIPES = {
    "nvfp4_rtn": Recipe("nvfp4_rtn"),
    "nvfp4_2d": Recipe("nvfp4_2d", weight_2d=True),
    "nvfp4_2d_rht": Recipe("nvfp4_2d_rht", weight_2d=True, hadamard=True),
    "nvfp4_2d_rht_sr": Recipe("nvfp4_2d_rht_sr", weight_2d=True, hadamard=True, stochastic=True),
    "nvfp4_recipe": Recipe("nvfp4_recipe", weight_2d=True, hadamard=True, stochastic=True, keep_last=1),
}


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


class _NVFP4Matmul(torch.autograd.Function):
    # Autocast is off inside: the quantised operands are multiplied in float32, as the tensor core accumulates
    # (under BF16 autocast a float32 matmul would be cast back to BF16 and round the simulated values again).
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, recipe: Recipe, generator: torch.Generator | None):
        with torch.autocast(device_type=x.device.type, enabled=False):
            wq = nvfp4(weight, tile=BLOCK if recipe.weight_2d else 1)
            ctx.save_for_backward(x, weight, wq)
            ctx.recipe, ctx.generator = recipe, generator
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
            if recipe.hadamard:
                signs = torch.where(torch.rand(BLOCK, generator=generator, device=x.device) < 0.5, -1.0, 1.0)
                g, a = _rht_tokens(g, signs), _rht_tokens(a, signs)
            grad_w = nvfp4(g.t().contiguous(), **sr) @ nvfp4(a.t().contiguous()).t()
        return grad_x.to(x.dtype), grad_w.to(weight.dtype), None, None


class NVFP4Linear(torch.nn.Module):
    """A linear layer whose GEMMs run in simulated NVFP4 (the weight stays a float32 master copy)."""

    def __init__(self, linear: torch.nn.Linear, recipe: Recipe, generator: torch.Generator | None = None):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.recipe, self.generator = recipe, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = _NVFP4Matmul.apply(x.reshape(-1, shape[-1]), self.weight, self.recipe, self.generator)
        y = y.reshape(*shape[:-1], -1)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]} → {self.weight.shape[0]}, {self.recipe.name}"


def convert(model: torch.nn.Module, recipe: Recipe, *, seed: int = 0) -> list[str]:
    """Swap the linear layers of a Llama-style model's decoder blocks for :class:`NVFP4Linear`; return their names.

    The embeddings and the LM head stay in high precision (as in the paper), and so do the last
    ``recipe.keep_last`` blocks. One seeded generator, on the model's device (convert after ``.to(device)``),
    drives the random signs and stochastic rounding.
    """
    layers = model.model.layers
    device = next(model.parameters()).device  # the generator must live where the tensors are (a CUDA one on a GPU)
    generator = torch.Generator(device=device).manual_seed(seed)
    converted = []
    for index, block in enumerate(layers):
        if index >= len(layers) - recipe.keep_last:
            continue
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(module, child_name, NVFP4Linear(child, recipe, generator))
                    converted.append(f"layers.{index}.{name + '.' if name else ''}{child_name}")
    return converted
