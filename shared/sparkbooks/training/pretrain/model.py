"""The model, its arithmetic and the machine's: sizes, parameters, FLOPs per token, a measured peak, the 250k claim.

* :data:`SIZES` — decoder-only Llama configurations (transformers' ``LlamaConfig``: the architecture of
  the models this project fine-tunes and serves, no extra dependency);
* :func:`flops_per_token` — training FLOPs per token, 6·N for the matmul weights (the LM head counts,
  the input embedding is a lookup and does not) plus 12·L·d·T for attention's scores and weighted sum
  (PaLM, Chowdhery et al. 2022, appendix B): the numerator of MFU;
* :func:`matmul_peak` — the machine's own peak, timed in this process (a square matmul), not a spec sheet;
* :func:`largest_model` — from tokens/s = MFU · peak / (6 N): the most parameters a machine can train
  at a given rate, per format and MFU (:data:`sparkbooks.fit.models.MACHINE_PEAKS`).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from ...exceptions import InputError

__all__ = ["ModelSize", "Peak", "SIZES", "build", "claim_table", "flops_per_token", "largest_model", "matmul_peak",
           "parameter_counts"]


@dataclass(frozen=True)
class ModelSize:
    """A Llama-style decoder: width, depth, heads, MLP width."""

    hidden: int
    layers: int
    heads: int
    mlp: int


#: Named sizes: ``tiny`` is the cpu profile's, ``large`` the benchmark's biggest; ``gpu`` a start on a Spark.
SIZES = {
    "tiny": ModelSize(hidden=128, layers=4, heads=4, mlp=384),
    "small": ModelSize(hidden=256, layers=4, heads=4, mlp=768),
    "medium": ModelSize(hidden=384, layers=6, heads=6, mlp=1024),
    "large": ModelSize(hidden=512, layers=8, heads=8, mlp=1536),
    "gpu": ModelSize(hidden=1024, layers=16, heads=16, mlp=2816),
}


def _size(size: str | ModelSize) -> ModelSize:
    if isinstance(size, ModelSize):
        return size
    if size not in SIZES:
        raise InputError(f"Unknown model size {size!r}: use one of {', '.join(SIZES)}.")
    return SIZES[size]


def config(size: str | ModelSize, *, vocab_size: int, seq_len: int):
    """The ``LlamaConfig`` of ``size`` (untied embeddings, RoPE, SwiGLU, RMSNorm; SDPA attention)."""
    from transformers import LlamaConfig  # noqa: PLC0415

    s = _size(size)
    if s.hidden % s.heads:
        raise InputError(f"hidden ({s.hidden}) must be a multiple of heads ({s.heads}).")
    return LlamaConfig(vocab_size=vocab_size, hidden_size=s.hidden, intermediate_size=s.mlp,
                       num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
                       max_position_embeddings=seq_len, tie_word_embeddings=False, attn_implementation="sdpa",
                       bos_token_id=None, eos_token_id=None, pad_token_id=None)


def build(size: str | ModelSize, *, vocab_size: int, seq_len: int, seed: int):
    """A freshly initialised ``LlamaForCausalLM`` (seeded)."""
    import torch  # noqa: PLC0415
    from transformers import LlamaForCausalLM  # noqa: PLC0415

    torch.manual_seed(seed)
    return LlamaForCausalLM(config(size, vocab_size=vocab_size, seq_len=seq_len))


def parameter_counts(size: str | ModelSize, *, vocab_size: int) -> dict[str, int]:
    """Parameters: total, the input embedding, and those in matmuls (everything but the embedding and norms)."""
    s = _size(size)
    per_layer = 4 * s.hidden * s.hidden + 3 * s.hidden * s.mlp
    norms = (2 * s.layers + 1) * s.hidden
    embedding = vocab_size * s.hidden
    matmul = s.layers * per_layer + vocab_size * s.hidden  # + the LM head
    return {"total": embedding + matmul + norms, "embedding": embedding, "matmul": matmul}


def flops_per_token(size: str | ModelSize, *, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token: 6·N_matmul + 12·L·d·T (forward + backward; attention over the whole window)."""
    s = _size(size)
    return 6 * parameter_counts(s, vocab_size=vocab_size)["matmul"] + 12 * s.layers * s.hidden * seq_len


@dataclass(frozen=True)
class Peak:
    """A timed matmul's throughput: median and range over repeats."""

    flops: float
    low: float
    high: float
    n: int
    dtype: str
    device: str

    def __str__(self) -> str:
        return (f"{self.flops / 1e9:,.0f} GFLOP/s {self.dtype} on {self.device} "
                f"(median of {self.n} timings, range {self.low / 1e9:,.0f}–{self.high / 1e9:,.0f})")


def matmul_peak(*, n: int = 1024, repeats: int = 7, dtype: str = "float32", device: str = "cpu",
                min_seconds: float = 0.05) -> Peak:
    """Time ``repeats`` batches of square ``n``×``n`` matmuls; the median FLOP/s is this machine's peak for MFU.

    Each timing runs enough matmuls to last ``min_seconds`` (calibrated on one), so a fast GPU is
    not timed on a single millisecond kernel.
    """
    import torch  # noqa: PLC0415

    dt = getattr(torch, dtype)
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def timed(count: int) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(count):
            a @ b
        sync()
        return time.perf_counter() - start

    timed(3)  # warm-up: allocation, kernel selection
    inner = max(1, math.ceil(min_seconds / max(timed(1), 1e-9)))
    rates = [2 * n ** 3 * inner / timed(inner) for _ in range(repeats)]
    return Peak(statistics.median(rates), min(rates), max(rates), repeats, dtype, device)


def largest_model(tokens_per_s: float, peak_flops: float, mfu: float) -> float:
    """The parameter count N with 6·N·tokens/s = MFU·peak (attention's FLOPs ignored: an upper bound)."""
    return mfu * peak_flops / (6 * tokens_per_s)


def claim_table(tokens_per_s: float = 250_000, mfus: tuple[float, ...] = (0.3, 0.4, 0.5)):
    """The largest model trainable at ``tokens_per_s`` for each machine, format and MFU (billions of parameters)."""
    import pandas as pd  # noqa: PLC0415

    from ...fit.models import MACHINE_PEAKS  # noqa: PLC0415

    rows = []
    for machine in MACHINE_PEAKS:
        for fmt, peak in machine.dense_flops.items():
            row = {"machine": machine.name, "format": fmt, "dense peak (PFLOP/s)": peak / 1e15}
            for mfu in mfus:
                row[f"MFU {mfu:.0%}"] = largest_model(tokens_per_s, peak, mfu) / 1e9
            rows.append(row)
    return pd.DataFrame(rows)
