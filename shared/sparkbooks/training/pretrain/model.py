"""The model, its arithmetic and the machine's: sizes, parameters, FLOPs per token, a measured peak, the 250k claim.

* :data:`SIZES` — decoder-only Llama configurations (transformers' ``LlamaConfig``: the architecture of
  the models this project fine-tunes and serves, no extra dependency);
* :func:`flops_per_token` — training FLOPs per token, 6·N for the matmul weights (the LM head counts,
  the input embedding is a lookup and does not) plus 12·L·d·T for attention's scores and weighted sum
  (PaLM, Chowdhery et al. 2022, appendix B): the numerator of MFU;
* :func:`matmul_peak` — the machine's own peak, timed in this process (a square matmul), not a spec sheet;
* :func:`spec_peak` — the same machine's *nominal* peak (a GPU's spec-sheet figure, a CPU's cores × clock ×
  FLOPs per cycle): :func:`headline_mfu` divides by it, the literature's convention (nanoGPT, torchtitan and
  nanochat divide by a datasheet peak), and keeps MFU over the timed peak as context — a timing moves with load;
* :func:`largest_model` — from tokens/s = MFU · peak / (6 N): the most parameters a machine can train
  at a given rate; :func:`claim_table` sizes "250,000 tokens/s" on NVIDIA's *measured* DGX Station rates
  (:data:`MEASURED_RATES`), and marks every row without a measurement as an assumption.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import NamedTuple

from ...exceptions import InputError
from ...hardware import CPUFREQ, fp32_flops_per_cycle, nominal_clock

__all__ = ["CLAIM_SOURCE", "COMPUTE_CAPABILITY", "MEASURED_RATES", "MeasuredRate", "ModelSize", "NANOCHAT_STATION", "Peak",
           "SIZES", "SpecPeak", "Utilisation", "build", "claim_table", "flops_per_token", "headline_mfu",
           "largest_model", "matmul_peak", "nanochat_cross_check", "parameter_counts", "raise_to_timed", "spec_peak"]


@dataclass(frozen=True)
class ModelSize:
    """A Llama-style decoder: width, depth, heads, MLP width."""

    hidden: int
    layers: int
    heads: int
    mlp: int


#: Named sizes: ``tiny`` is the cpu profile's, ``micro`` its NVFP4 ablation's (ten runs from scratch must fit the
#: cpu minutes), ``large`` the benchmark's biggest; ``gpu`` a start on a Spark.
SIZES = {
    "micro": ModelSize(hidden=64, layers=2, heads=2, mlp=192),
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
    """A timed matmul's throughput: the best timing (the peak) and the range over repeats."""

    flops: float
    low: float
    high: float
    n: int
    dtype: str
    device: str

    def __str__(self) -> str:
        return (f"{self.flops / 1e9:,.0f} GFLOP/s {self.dtype} on {self.device} "
                f"(best of {self.n} timings, range {self.low / 1e9:,.0f}–{self.high / 1e9:,.0f})")


def matmul_peak(*, n: int = 1024, repeats: int = 7, dtype: str = "float32", device: str = "cpu",
                min_seconds: float = 0.05) -> Peak:
    """Time ``repeats`` batches of square ``n``×``n`` matmuls; the best FLOP/s is this machine's timed peak for MFU.

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
    # the peak is the best timing: other processes on shared cores only ever slow a timing down
    return Peak(max(rates), min(rates), max(rates), repeats, dtype, device)


class Utilisation(NamedTuple):
    """MFU over the nominal peak (the headline) and over the timed one (context)."""

    value: float  # achieved model FLOP/s over ``peak``
    peak: float  # the denominator: the nominal peak, or the timed one where no nominal peak is known
    basis: str  # "nominal" or "timed"
    timed: float  # achieved over the timed peak: moves with whatever else held the cores while it was timed
    loaded: bool  # the timed peak fell below half the nominal one: timed while other work held the device


def headline_mfu(achieved_flops: float, *, timed_peak: float, nominal_peak: float | None) -> Utilisation:
    """MFU against the nominal peak, which does not move with load; the timed peak only as context.

    A peak timed on shared cores can fall several-fold below the quiet figure and inflate MFU towards 100 %; nanoGPT
    (``flops_promised``), torchtitan and nanochat (``get_peak_flops``) divide by a datasheet figure instead. Only where
    no nominal peak is known (a GPU outside :data:`GPU_SPEC_BF16`) is the timed one the denominator, and ``basis`` says so.
    """
    if achieved_flops < 0 or timed_peak <= 0 or (nominal_peak is not None and nominal_peak <= 0):
        raise InputError(f"MFU needs achieved FLOP/s ≥ 0 and positive peaks; got {achieved_flops}, {timed_peak}, "
                         f"{nominal_peak}.")
    peak, basis = (nominal_peak, "nominal") if nominal_peak else (timed_peak, "timed")
    return Utilisation(achieved_flops / peak, peak, basis, achieved_flops / timed_peak,
                       bool(nominal_peak) and timed_peak < 0.5 * nominal_peak)


def largest_model(tokens_per_s: float, peak_flops: float, mfu: float) -> float:
    """The parameter count N with 6·N·tokens/s = MFU·peak (attention's FLOPs ignored: an upper bound)."""
    return mfu * peak_flops / (6 * tokens_per_s)


@dataclass(frozen=True)
class SpecPeak:
    """A nominal (not timed) peak and how it was obtained."""

    flops: float
    basis: str


#: Dense BF16 spec-sheet peaks of GPUs, by a substring of the upper-cased device name (the longest match wins; SXM
#: unless named; no 2:4 sparsity). PCIe and NVL cards run lower clocks; an HGX B300 is 2.25 PFLOP/s, a Grace-paired GB300
#: 2.5 (NVIDIA's Blackwell datasheet): torchtitan and nanochat use the same figures.
GPU_SPEC_BF16 = {"GH200": 989.4e12, "H100": 989.4e12, "H100 PCIE": 756e12, "H100 NVL": 835e12, "H200": 989.4e12,
                 "H200 NVL": 835e12, "GB300": 2.5e15, "B300": 2.25e15, "GB200": 2.5e15, "B200": 2.25e15,
                 "GB10": 0.125e15, "A100": 312e12}
#: Entries that are not on a spec sheet, and what they are instead (fit.models.MACHINE_PEAKS gives the same figure).
GPU_SPEC_DERIVED = {"GB10": ("derived, not published: ¼ of the 0.5 PFLOP/s dense NVFP4 behind NVIDIA's '1 petaFLOP "
                             "FP4' (stated with sparsity); NVIDIA publishes no BF16 figure for GB10 — an upper bound")}


def spec_peak(*, device: str = "cpu", gpu_name: str | None = None, cores: int | None = None,
              cpuinfo: str | None = None, cpufreq: str | None = CPUFREQ) -> SpecPeak | None:
    """The nominal peak of one device: a GPU's dense BF16 spec-sheet figure, or a CPU's float32 nominal peak.

    CPU: cores × clock × FP32 FLOPs per cycle per core (:func:`sparkbooks.hardware.fp32_flops_per_cycle`: AMD cores
    by microarchitecture — Zen 4 splits AVX-512 over two 256-bit pipes, 32 — others from the vector width); the clock
    from :func:`sparkbooks.hardware.nominal_clock` (a fixed figure where the system gives one, not the moment's frequency).
    ``None`` where the device is not known (a GPU not in :data:`GPU_SPEC_BF16`, a CPU without a clock).
    """
    import os  # noqa: PLC0415

    if device.startswith("cuda"):
        name = gpu_name or ""
        for key in sorted(GPU_SPEC_BF16, key=len, reverse=True):
            if key in name.upper():
                label = GPU_SPEC_DERIVED.get(key, "spec sheet")
                return SpecPeak(GPU_SPEC_BF16[key], f"{name}: dense BF16 {GPU_SPEC_BF16[key] / 1e12:,.0f} TFLOP/s ({label})")
        return None
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return None
    clock = nominal_clock(cpuinfo, cpufreq=cpufreq)
    if clock is None:
        return None
    cores = cores or os.cpu_count() or 1
    per_cycle, source = fp32_flops_per_cycle(cpuinfo)
    return SpecPeak(cores * clock.ghz * 1e9 * per_cycle, f"{cores} cores × {clock.ghz:.2f} GHz ({clock.source}) × "
                    f"{per_cycle} FP32 FLOP/cycle ({source})")


def raise_to_timed(spec: SpecPeak, *, fp32_flops: float, bf16_flops: float | None = None,
                   cpuinfo: str | None = None) -> SpecPeak:
    """A CPU's nominal FP32 peak, never below what its cores were timed doing.

    A VM lists its host's base clock; cores that boost above it time faster than the nominal peak allows. Floors: the
    timed FP32 matmul itself, and — on AVX-512 BF16 cores without AMX, whose BF16 dot products do twice FP32's FLOPs
    per cycle — half the timed BF16 matmul. A raised peak says so and the clock it implies; MFU over it is not inflated
    by a clock set too low.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            cpuinfo = ""
    floors = {"the timed FP32 matmul": fp32_flops}
    if bf16_flops and "avx512_bf16" in cpuinfo and "amx_bf16" not in cpuinfo:
        floors["half the timed BF16 matmul (AVX-512 BF16: 2× FP32's FLOPs per cycle)"] = bf16_flops / 2
    source, floor = max(floors.items(), key=lambda kv: kv[1])
    if floor <= spec.flops:
        return spec
    return SpecPeak(floor, f"{spec.basis}, raised to {floor / 1e9:,.0f} GFLOP/s by {source}: the cores run ≥ "
                           f"{floor / spec.flops:.2f}× the listed clock (boost)")


@dataclass(frozen=True)
class MeasuredRate:
    """A pretraining rate a vendor measured: model FLOP/s achieved, and that as a share of the dense peak."""

    machine: str
    format: str
    flops: float
    mfu: float
    workload: str
    source: str
    params: float = 8.03e9  # the measured model's parameters (Llama 3.1 8B)
    seq_len: int = 4096  # the measured run's sequence length

    def bound_note(self, params: float) -> str:
        """Why this rate is only an upper bound for a model of ``params`` parameters smaller than the measured one."""
        if params >= self.params:
            return ""
        return (f"upper bound: MFU measured on a {self.params / 1e9:.1f} B model at sequence {self.seq_len:,}; a "
                f"{params / 1e9:.2f} B model's narrower GEMMs run at lower MFU")


# NVIDIA's words carry the rates only ("~1399" and "~2347 Model TFLOP/s/GPU", mock data, sequence 4,096, global batch
# 64); the MFU shares below (rate over the 2.5 / 15 PFLOP/s dense GB300 peaks of fit.models) are this module's ratios.
_STATION_README = ("NVIDIA, station-nvfp4-pretraining playbook README (DGX Station GB300): Llama 3.1 8B pretraining "
                   "measured at ≈ 1,399 TFLOP/s in BF16 and ≈ 2,347 TFLOP/s in NVFP4 with the last 4 layers in BF16 "
                   "(model TFLOP/s per GPU, mock data, sequence 4,096, global batch 64)")
#: NVIDIA's own measured pretraining rates on a DGX Station: what the claim table is calibrated on.
MEASURED_RATES: tuple[MeasuredRate, ...] = (
    MeasuredRate("DGX Station (GB300)", "bf16", 1_399e12, 0.56, "Llama 3.1 8B, BF16", _STATION_README),
    MeasuredRate("DGX Station (GB300)", "nvfp4", 2_347e12, 0.156, "Llama 3.1 8B, NVFP4, last 4 layers BF16",
                 _STATION_README),
)
#: Compute capability of each machine in the claim table (GB300 = SM 10.3; GB10 = SM 12.1, NVIDIA's CUDA GPU list).
COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {"DGX Station (GB300)": (10, 3), "DGX Spark (GB10)": (12, 1)}
#: Where "250,000 tokens/s" most likely comes from.
CLAIM_SOURCE = ("NVIDIA station-nanochat playbook: nanochat pretraining of a ≈ 1 B-parameter model in FP8 on a "
                "DGX Station — the likely source of the \"250k tokens/s\" figure")
#: NVIDIA's station-nanochat README (dgx-spark-playbooks 6942395): its own words, no tokens/s among them.
NANOCHAT_STATION = {"params": 1e9, "data_to_params": 8, "hours": 16.0,
                    "source": ("NVIDIA station-nanochat README (dgx-spark-playbooks 6942395): \"a ~1B parameter (d24) "
                               "Transformer model with FP8 precision\", \"target data:param ratio of 8\", \"Full d24 "
                               "training takes on the order of 16+ hours on a single GB300 Ultra\" (tokenizer, "
                               "pretraining, SFT); it states no tokens/s")}


def nanochat_cross_check() -> dict[str, float | str]:
    """The tokens/s station-nanochat's own words imply: 8 × 1 B tokens over its 16+ hours (the whole pipeline).

    An average, not a measured rate: the hours also hold the tokenizer and SFT (the pretraining rate is higher) and are
    "16+" (it is lower) — an order-of-magnitude check on "250k tokens/s", nothing finer.
    """
    n = NANOCHAT_STATION
    tokens = n["data_to_params"] * n["params"]
    return {"tokens": tokens, "hours": n["hours"], "tokens_per_s": tokens / (n["hours"] * 3600),
            "hours_at_claim": tokens / 250_000 / 3600, "source": n["source"]}


def _mfu_for(fmt: str, peaks: dict[str, float]) -> tuple[float, float, str]:
    """The MFU range assumed for a format without a measurement on this machine, from the Station's measured ones."""
    measured = {r.format: r for r in MEASURED_RATES}
    if fmt in measured:
        return measured[fmt].mfu, measured[fmt].mfu, f"the Station's measured {fmt.upper()} MFU carried over"
    if fmt == "fp8" and "bf16" in measured and "bf16" in peaks:  # no slower than BF16's rate, no better than its MFU
        bf16 = measured["bf16"].mfu
        return (bf16 * peaks["bf16"] / peaks[fmt], bf16,
                "from the Station's measured BF16 FLOP/s (FP8 no slower) to its measured BF16 MFU")
    return 0.3, 0.5, "30–50 % (the large-run literature)"


def claim_table(tokens_per_s: float = 250_000):
    """The largest model trainable at ``tokens_per_s`` per machine and format, in billions of parameters.

    Rows with a measurement (:data:`MEASURED_RATES`) use NVIDIA's measured FLOP/s (``basis`` "measured");
    every other row is an **assumption**: the Station's measured MFU for that format carried over (the Spark),
    or, for FP8 (no published rate), a range from BF16's measured FLOP/s to BF16's MFU. N = rate / (6 · tokens/s),
    attention's FLOPs ignored, so each figure is an upper bound — and a measured row's MFU comes from an 8 B model at
    sequence 4,096, higher than a ~1 B model's narrower GEMMs reach: its basis says so where N is smaller.
    """
    import pandas as pd  # noqa: PLC0415

    from ...fit.models import MACHINE_PEAKS  # noqa: PLC0415
    from . import fp4  # noqa: PLC0415 (torch: imported only here)

    measured = {(r.machine, r.format): r for r in MEASURED_RATES}
    rows = []
    for machine in MACHINE_PEAKS:
        for fmt, peak in machine.dense_flops.items():
            hit = measured.get((machine.name, fmt))
            if hit is not None:
                low = high = hit.flops / peak
                basis = f"measured: {hit.workload} ({hit.flops / 1e12:,.0f} TFLOP/s)"
                note = hit.bound_note(largest_model(tokens_per_s, peak, high))
                basis += f"; {note}" if note else ""
            else:
                low, high, how = _mfu_for(fmt, machine.dense_flops)
                basis = f"assumption: MFU {how}"
            sm = COMPUTE_CAPABILITY.get(machine.name)
            if fmt == "nvfp4" and sm is not None and not fp4.te_trains_nvfp4_on(sm):
                basis += (f"; no documented NVFP4 training path: Transformer Engine lists NVFP4 training for SM "
                          f"{' / '.join(f'{a}.{b}' for a, b in fp4.TE_NVFP4_TRAINING_SM)} only, this machine is "
                          f"sm_{sm[0]}{sm[1]} — a rate if NVFP4 training ran here, unverified")
            rows.append({"machine": machine.name, "format": fmt, "dense peak (PFLOP/s)": peak / 1e15,
                         "MFU low": low, "MFU high": high,
                         "largest model low (B)": largest_model(tokens_per_s, peak, low) / 1e9,
                         "largest model high (B)": largest_model(tokens_per_s, peak, high) / 1e9,
                         "calibrated": hit is not None, "basis": basis})
    return pd.DataFrame(rows)
