"""NVFP4 fake quantisation on torch tensors, on whatever device they live: the one implementation.

E2M1 values in blocks of 16 along the last dimension, one FP8 E4M3 scale per block, one FP32 scale
per tensor, rounded to nearest even like the hardware. :func:`sparkbooks.quant.nvfp4` (nvfp4-fit,
NumPy in and out) and the simulated training GEMMs of :mod:`sparkbooks.training.pretrain.fp4` both
call :func:`nvfp4`. Every division by a constant goes through a tensor on the input's device: CUDA
turns a division by a Python number into a multiplication by its reciprocal, one rounding more, and
the result would then depend on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..exceptions import InputError

__all__ = ["BLOCK", "E2M1_MAX", "E4M3_MAX", "e2m1", "e4m3", "nvfp4", "round_to_float"]

E2M1_MAX, E4M3_MAX, BLOCK = 6.0, 448.0, 16


def round_to_float(x: torch.Tensor, *, mantissa_bits: int, min_exponent: int, max_value: float,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """Round onto a small float grid (subnormals included, saturating at ``max_value``); ``noise`` in [0, 1) rounds
    stochastically. ``min_exponent`` is the exponent of the smallest normal number (E2M1: 0, E4M3: −6)."""
    mag = x.abs()
    _, exponent = torch.frexp(mag)  # mag = m · 2^e with m in [0.5, 1): floor(log2 mag) = e − 1
    quantum = torch.ldexp(torch.ones_like(mag), torch.clamp(exponent - 1, min=min_exponent) - mantissa_bits)
    scaled = mag / quantum  # a power of two: exact
    rounded = torch.floor(scaled + noise) if noise is not None else torch.round(scaled)  # round: ties to even
    return torch.copysign(torch.clamp(rounded * quantum, max=max_value), x)


def e4m3(x: torch.Tensor) -> torch.Tensor:
    """Round onto FP8 E4M3's grid (largest finite value 448)."""
    return round_to_float(x, mantissa_bits=3, min_exponent=-6, max_value=E4M3_MAX)


def e2m1(v: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Round onto E2M1's grid (0, ½, 1, 1½, 2, 3, 4, 6 and negatives): spacing ½ below 2, 1 below 4, 2 above.

    The same result as :func:`round_to_float` with one mantissa bit, in half the time (the activations
    and gradients of every simulated GEMM pass through here).
    """
    a = v.abs()
    spacing = torch.where(a < 2, 0.5, torch.where(a < 4, 1.0, 2.0))
    scaled = v / spacing
    rounded = torch.floor(scaled.add_(noise)) if noise is not None else torch.round(scaled)
    return rounded.mul_(spacing).clamp_(-E2M1_MAX, E2M1_MAX)


def _numpy_sum(d: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension in NumPy's pairwise order (eight running sums, then a tree), so that a scale
    search picks what NumPy's picked when two candidates' errors differ in the last bit."""
    n = d.shape[-1]
    if n > 128:
        half = n // 2 - (n // 2) % 8
        return _numpy_sum(d[..., :half]) + _numpy_sum(d[..., half:])
    if n < 8:
        total = torch.zeros_like(d[..., 0])
        for i in range(n):
            total = total + d[..., i]
        return total
    whole = n - n % 8
    r = d[..., :whole].reshape(*d.shape[:-1], whole // 8, 8)
    acc = r[..., 0, :]
    for i in range(1, whole // 8):
        acc = acc + r[..., i, :]
    total = ((acc[..., 0] + acc[..., 1]) + (acc[..., 2] + acc[..., 3])) + ((acc[..., 4] + acc[..., 5]) + (acc[..., 6] + acc[..., 7]))
    for i in range(whole, n):
        total = total + d[..., i]
    return total


def nvfp4(x: torch.Tensor, *, block: int = BLOCK, tile: int = 1, grid: Sequence[float] = (1.0,), stochastic: bool = False,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """NVFP4 fake quantisation (quantise, then dequantise to float32), blocks of 16 along the last dimension.

    Parameters
    ----------
    x
        Any shape; a 0-d or 1-d tensor is one row. Non-finite values pass through unchanged.
    block
        Values per scale along the last dimension (NVFP4: 16).
    tile
        ``16`` scales 16×16 tiles of a 2-D tensor instead of 1×16 rows (the training recipe's weights).
    grid
        Candidate block scales ``amax/6 × α``: each block keeps the one with the least squared error (a
        calibration search, as post-training recipes do). ``(1.0,)`` is plain NVFP4.
    stochastic
        Round each value up with probability equal to its distance from the grid point below (``generator``
        draws the noise, on ``x``'s device).

    Returns
    -------
    A float32 tensor of ``x``'s shape on ``x``'s device.
    """
    if tile != 1 and x.ndim != 2:
        raise InputError(f"Tiles of {tile}×16 need a 2-D tensor; got shape {tuple(x.shape)}.")
    if stochastic and len(grid) != 1:
        raise InputError("Stochastic rounding goes with one candidate scale (grid=(1.0,)), not a scale search.")
    x = x.float()
    if x.numel() == 0:
        return x.clone()
    rows2d = x if x.ndim == 2 else x.reshape(1, 1) if x.ndim == 0 else x.reshape(-1, x.shape[-1])
    amax = rows2d.abs().max()
    if amax == 0 or not torch.isfinite(amax):
        return torch.zeros_like(x) if amax == 0 else x
    rows, cols = rows2d.shape
    pad_r, pad_c = (-rows) % tile, (-cols) % block
    padded = torch.nn.functional.pad(rows2d, (0, pad_c, 0, pad_r)) if pad_r or pad_c else rows2d
    R, C = padded.shape
    blocks = padded.reshape(R // tile, tile, C // block, block)
    constant = lambda v: torch.tensor(v, dtype=torch.float32, device=x.device)  # noqa: E731 - see the docstring
    six = constant(E2M1_MAX)
    tensor_scale = amax / constant(E2M1_MAX * E4M3_MAX)
    block_amax = blocks.abs().amax(dim=(1, 3), keepdim=True)
    noise = torch.rand(blocks.shape, generator=generator, device=x.device) if stochastic else None
    best = best_err = None
    for alpha in grid:
        target = block_amax if alpha == 1.0 else block_amax * alpha
        scale = e4m3(target / six / tensor_scale) * tensor_scale
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.where(scale > 0, e2m1(blocks / safe, noise).mul_(scale), 0.0)  # a block whose scale underflows: +0
        if len(grid) == 1:
            best = q
            break
        d = (q - blocks) ** 2
        err = _numpy_sum(d)[..., None] if tile == 1 else d.sum(dim=(1, 3), keepdim=True)
        if best is None:
            best, best_err = q, err
        else:
            better = err < best_err
            best, best_err = torch.where(better, q, best), torch.minimum(err, best_err)
    out = best.reshape(R, C)[:rows, :cols]
    return out if x.ndim == 2 else out.reshape(x.shape)
