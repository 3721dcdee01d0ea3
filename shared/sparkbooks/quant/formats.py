"""Low-precision number formats as fake quantisation: quantise, then dequantise back to float32.

Implemented from the format definitions, with round-to-nearest-even like the hardware:

* **NVFP4** — E2M1 values in blocks of 16, one FP8 E4M3 scale per block, one FP32 scale per tensor
  (NVIDIA Blackwell). 4 + 8/16 = 4.5 bits per weight.
* **MXFP4** — E2M1 values in blocks of 32, one power-of-two E8M0 scale per block (OCP Microscaling
  v1.0). 4 + 8/32 = 4.25 bits per weight.
* **FP8 E4M3** — one FP32 scale per tensor (max 448). 8 bits per weight.
* **INT4** — symmetric integers in [-8, 7], one FP16 scale per group of 128 (the usual weight-only
  reference). 4 + 16/128 = 4.125 bits per weight.

Blocks run along the last axis (the input dimension of a linear layer's weight).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..exceptions import InputError, require

__all__ = [
    "E2M1_VALUES",
    "FORMATS",
    "Format",
    "NUMBER_FORMATS",
    "bits_per_weight",
    "fp8_e4m3",
    "int4",
    "int4_asym",
    "mxfp4",
    "nvfp4",
    "nvfp4_mse",
    "relative_error",
    "round_to_float",
]

E2M1_MAX, E4M3_MAX = 6.0, 448.0
#: Every non-negative value an E2M1 (FP4) element can hold.
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise InputError("Cannot quantise NaN or infinite values: clean the tensor first.")
    return x


def round_to_float(x: np.ndarray, *, mantissa_bits: int, min_exponent: int, max_value: float) -> np.ndarray:
    """Round to the nearest value of a small float format (subnormals included), saturating at ``max_value``.

    ``min_exponent`` is the exponent of the smallest normal number (E2M1: 0, E4M3: -6).

    >>> round_to_float(np.array([0.3, 1.25, 2.5, 5.0, 7.0]), mantissa_bits=1, min_exponent=0, max_value=6.0).tolist()
    [0.5, 1.0, 2.0, 4.0, 6.0]
    """
    x = np.asarray(x, dtype=np.float32)
    mag = np.abs(x)
    _, exponent = np.frexp(mag)  # mag = m · 2^e with m in [0.5, 1): floor(log2 mag) = e − 1; exact and fast
    quantum = np.ldexp(np.float32(1.0), np.maximum(exponent - 1, min_exponent) - mantissa_bits)
    rounded = np.rint(mag / quantum) * quantum  # rint: ties to even, like the hardware; powers of two divide exactly
    return np.copysign(np.minimum(rounded, max_value), x).astype(np.float32)


def _e2m1(x: np.ndarray) -> np.ndarray:
    return round_to_float(x, mantissa_bits=1, min_exponent=0, max_value=E2M1_MAX)


def _e4m3(x: np.ndarray) -> np.ndarray:
    return round_to_float(x, mantissa_bits=3, min_exponent=-6, max_value=E4M3_MAX)


def _blocks(x: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    if x.ndim == 0:
        x = x.reshape(1)
    pad = (-x.shape[-1]) % size
    if pad:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], pad), dtype=x.dtype)], axis=-1)
    return x.reshape(*x.shape[:-1], -1, size), pad


def _unblock(blocks: np.ndarray, pad: int, shape: tuple[int, ...]) -> np.ndarray:
    flat = blocks.reshape(*blocks.shape[:-2], -1)
    return (flat[..., : flat.shape[-1] - pad] if pad else flat).reshape(shape)


def nvfp4(x: np.ndarray, *, block: int = 16) -> np.ndarray:
    """NVFP4 fake quantisation: per-tensor FP32 scale, per-block E4M3 scale, E2M1 values.

    The tensor scale maps the largest block scale onto E4M3's range, so block scales use it fully.
    The arithmetic is :func:`sparkbooks.quant.nvfp4_torch.nvfp4`'s (on the CPU), the one implementation.

    >>> nvfp4(np.array([0.0, 1.0, 2.0, 3.0, 6.0, -6.0, 0.25, 5.0] * 2)).tolist()[:8]
    [0.0, 1.0, 2.0, 3.0, 6.0, -6.0, 0.0, 4.0]
    """
    return nvfp4_mse(x, block=block, grid=(1.0,))  # one candidate scale: amax / 6, as stored (E4M3 × FP32)


def nvfp4_mse(x: np.ndarray, *, block: int = 16, grid: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7)) -> np.ndarray:
    """NVFP4 with a per-block scale search: each block keeps the scale (amax/6 × α, α in ``grid``) with the least squared error.

    A smaller scale clips the block's largest value but resolves the rest finer — the usual
    calibration step of post-training recipes (ModelOpt's, AWQ-style searches), here per block.
    ``grid=(1.0,)`` is plain :func:`nvfp4`. The result is still valid NVFP4: E4M3 block scales,
    one FP32 tensor scale, E2M1 values.

    Raises
    ------
    InputError
        NaN or infinite values.
    MissingDependencyError
        torch is not installed (``pip install -e '.[models]'``).
    """
    x = _check(x)
    require("torch", extra="models")
    import torch  # noqa: PLC0415

    from .nvfp4_torch import nvfp4 as quantise  # noqa: PLC0415

    return quantise(torch.from_numpy(np.ascontiguousarray(x)), block=block, grid=tuple(grid)).numpy()


def mxfp4(x: np.ndarray, *, block: int = 32) -> np.ndarray:
    """MXFP4 fake quantisation: a power-of-two (E8M0) scale per block of 32, E2M1 values.

    Scale = 2^(floor(log2(block amax)) − 2), 2 being E2M1's largest exponent (6 = 1.5 · 2²).
    Values above 6 × scale saturate, as the OCP spec allows.

    >>> mxfp4(np.array([1.0, 7.0] + [0.0] * 30)).tolist()[:2]
    [1.0, 6.0]
    """
    x = _check(x)
    blocks, pad = _blocks(x, block)
    block_amax = np.max(np.abs(blocks), axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.where(block_amax > 0, block_amax, 1.0))) - 2
    scale = np.exp2(np.clip(exponent, -127, 127))
    q = np.where(block_amax > 0, _e2m1(blocks / scale) * scale, 0.0)
    return _unblock(q.astype(np.float32), pad, x.shape)


def fp8_e4m3(x: np.ndarray) -> np.ndarray:
    """FP8 E4M3 with one FP32 scale per tensor (amax maps to 448).

    >>> fp8_e4m3(np.array([448.0, 1.0, 0.3])).tolist()
    [448.0, 1.0, 0.3125]
    """
    x = _check(x)
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    if amax == 0.0:
        return np.zeros_like(x)
    scale = amax / E4M3_MAX
    return (_e4m3(x / scale) * scale).astype(np.float32)


def int4(x: np.ndarray, *, group: int = 128) -> np.ndarray:
    """Symmetric INT4 per group: scale = group amax / 7, integers clipped to [-8, 7].

    >>> int4(np.array([7.0, 3.4, -7.0, 0.4])).tolist()
    [7.0, 3.0, -7.0, 0.0]
    """
    x = _check(x)
    blocks, pad = _blocks(x, group)
    scale = (np.max(np.abs(blocks), axis=-1, keepdims=True) / 7.0).astype(np.float16).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.where(scale > 0, np.clip(np.rint(blocks / safe), -8, 7) * scale, 0.0)
    return _unblock(q.astype(np.float32), pad, x.shape)


def int4_asym(x: np.ndarray, *, group: int = 32) -> np.ndarray:
    """Asymmetric INT4 per group — GGUF Q4_1's grid: 16 levels from the group's minimum to its maximum.

    A model dequantised from Q4_1 already lies on this grid, so it comes back unchanged (relative error ≈ 0):
    the test of whether a "float" baseline is really a 4-bit one.

    >>> int4_asym(np.array([0.0, 1.0, 1.4, 15.0]), group=4).tolist()
    [0.0, 1.0, 1.0, 15.0]
    """
    x = _check(x)
    blocks, pad = _blocks(x, group)
    low = blocks.min(axis=-1, keepdims=True)
    step = (blocks.max(axis=-1, keepdims=True) - low) / 15.0
    safe = np.where(step > 0, step, 1.0)
    q = np.where(step > 0, low + np.clip(np.rint((blocks - low) / safe), 0, 15) * step, blocks)
    return _unblock(q.astype(np.float32), pad, x.shape)


@dataclass(frozen=True)
class Format:
    """A weight format: its storage cost (block scales included) and, where implemented here, its fake-quantiser."""

    name: str
    bits_per_weight: float
    quantise: Callable[[np.ndarray], np.ndarray] | None
    description: str


#: The one table of number formats: what the memory planner charges per weight, and what fakes each.
NUMBER_FORMATS: dict[str, Format] = {
    "bf16": Format("bf16", 16.0, None, "BF16, no scales"),
    "fp8": Format("fp8", 8.0, fp8_e4m3, "FP8 E4M3, per-tensor FP32 scale"),
    "nvfp4": Format("nvfp4", 4 + 8 / 16, nvfp4, "E2M1, FP8 E4M3 scale per 16, FP32 per tensor"),
    "mxfp4": Format("mxfp4", 4 + 8 / 32, mxfp4, "E2M1, E8M0 power-of-two scale per 32"),
    "int4": Format("int4", 4 + 16 / 128, int4, "INT4 symmetric, FP16 scale per 128"),
    "int4_g32": Format("int4_g32", 4 + 16 / 32, None, "INT4, BF16 scale per 32 (Kimi K2 Thinking's native QAT format)"),
    "q8_0": Format("q8_0", 8 + 16 / 32, None, "GGUF Q8_0: 32 int8 + one f16 scale"),
    "q4_1": Format("q4_1", 4 + 32 / 32, None, "GGUF Q4_1: 32 4-bit + f16 scale + f16 minimum"),
    "q4_k": Format("q4_k", 4.5, None, "GGUF Q4_K: 256 4-bit in 8 groups, 6-bit scale and minimum per group, f16 pair "
                                       "per 256 (a Q4_K_M file mixes in some Q6_K: its average is higher)"),
}
#: The formats that can be fake-quantised here (a quantiser is implemented).
FORMATS: dict[str, Format] = {name: f for name, f in NUMBER_FORMATS.items() if f.quantise is not None}


def bits_per_weight(name: str) -> float:
    """Storage bits per weight of format ``name``, block scales included.

    Raises
    ------
    InputError
        Unknown format; the message lists the known ones.
    """
    try:
        return NUMBER_FORMATS[name].bits_per_weight
    except KeyError:
        raise InputError(f"Unknown format {name!r}; formats: {', '.join(NUMBER_FORMATS)}.") from None


def relative_error(original: np.ndarray, quantised: np.ndarray) -> float:
    """‖W − Q(W)‖ / ‖W‖ (Frobenius)."""
    norm = float(np.linalg.norm(original))
    return float(np.linalg.norm(np.asarray(original) - np.asarray(quantised)) / norm) if norm else 0.0
