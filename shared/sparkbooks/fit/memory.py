"""Will it fit? Weights + KV cache (+ state) for a model, a number format and a context length.

The arithmetic is deliberately plain so a reader can redo it by hand:

* weights  = parameters × bits per weight / 8 (block scales included in the bits), with the
  parameters real low-bit checkpoints keep in BF16 (embeddings, attention, …) charged 16 bits;
* KV cache = 2 (K and V) × attention layers × KV heads × head dim × tokens × sequences × KV bytes;
* recurrent state (Mamba layers) = layers × state elements × bytes, per sequence, independent of length.

A device has fast GPU memory (HBM, or GB10's unified LPDDR5X) and, on a DGX Station, CPU memory
reachable by offload. A verdict says which one a model needs, and a decode speed bound follows
from the bytes read per token and each tier's bandwidth.

Architecture numbers carry their public source; :func:`arch_from_gguf` reads them from a GGUF header.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import InputError
from ..quant.formats import NUMBER_FORMATS, bits_per_weight

__all__ = [
    "BITS_PER_WEIGHT",
    "CLAIM_DEVICES",
    "DEVICES",
    "DGX_SPARK",
    "DGX_STATION",
    "DGX_STATION_HBM",
    "Device",
    "GgufModel",
    "ModelArch",
    "NEMOTRON_3_NANO",
    "TWO_SPARKS",
    "Verdict",
    "active_weight_bytes",
    "arch_from_gguf",
    "decode_tokens_per_s",
    "fit_table",
    "kv_cache_bytes",
    "state_bytes",
    "verdict",
    "verdict_table",
    "weight_bytes",
]

GiB = 2**30

#: Bits per weight including block-scale overhead, from the one table of formats (:data:`sparkbooks.quant.NUMBER_FORMATS`).
BITS_PER_WEIGHT: dict[str, float] = {name: f.bits_per_weight for name, f in NUMBER_FORMATS.items()}


@dataclass(frozen=True)
class ModelArch:
    """The architecture numbers that decide memory, with where they come from."""

    name: str
    total_params: float
    active_params: float
    n_layers: int
    n_attention_layers: int
    n_kv_heads: int
    head_dim: int
    max_context: int
    source: str
    n_state_layers: int = 0
    state_elements_per_layer: int = 0
    state_bytes_per_element: float = 2.0  # 4 where the SSM cache is FP32 (mamba_ssm_cache_dtype)
    attention: str = "GQA"
    mla_latent_dim: int = 0  # MLA caches one compressed latent (kv_lora_rank + rope dims) per layer
    indexer_dim: int = 0  # DeepSeek sparse attention keeps an extra indexer key per token per layer
    n_window_layers: int = 0  # layers that only keep the last `window` tokens (sliding / chunked)
    window: int = 0
    kv_known: bool = True  # False: the attention layout is not public in our sources; the verdict says "KV unknown"
    bf16_params: float = 0.0  # kept in BF16 by low-bit checkpoints (embeddings, attention, …); the rest takes the format
    bf16_source: str = "every parameter at the format (no published mixed-precision layout)"

    @property
    def kv_elements_per_layer_token(self) -> int:
        per = self.mla_latent_dim if self.mla_latent_dim else 2 * self.n_kv_heads * self.head_dim
        return per + self.indexer_dim

    @property
    def kv_elements_per_token(self) -> int:
        """Elements cached per token of context at full length (all attention layers)."""
        return self.n_attention_layers * self.kv_elements_per_layer_token


# Nemotron 3 Nano 30B-A3B (NemotronH hybrid): 52 layers = 23 Mamba-2 + 23 MoE + 6 GQA attention
# ("MEMEM*EMEMEM*…" pattern), 2 KV groups × 128 channels, Mamba-2 with 64 heads × 64 dims × 128 state,
# 8 groups, conv kernel 4. Parameters: 31.6B total, 3.2B active (3.6B with embeddings).
# Its NVFP4 checkpoint keeps the 6 attention layers, the 6 Mamba layers feeding them and the
# (untied) embeddings in BF16: 2·131,072·2,688 + 6·23.4M + 6·38.7M = 1.077B parameters.
NEMOTRON_3_NANO = ModelArch(
    name="Nemotron 3 Nano 30B-A3B",
    total_params=31.6e9,
    active_params=3.6e9,
    n_layers=52,
    n_attention_layers=6,
    n_kv_heads=2,
    head_dim=128,
    max_context=262_144,
    source=("NVIDIA Nemotron 3 Nano technical report and model card (31.6B total / 3.2B active + embeddings); "
            "layer pattern and dims from Megatron-Bridge Nemotron3NanoProvider (hybrid_layer_pattern, "
            "num_query_groups=2, kv_channels=128, mamba_num_heads=64, mamba_head_dim=64, mamba_state_dim=128)"),
    n_state_layers=23,
    # SSM state 64 heads × 64 × 128 + conv state (4096 + 2·8·128) × (4 − 1)
    state_elements_per_layer=64 * 64 * 128 + (64 * 64 + 2 * 8 * 128) * 3,
    bf16_params=1.077e9,
    bf16_source=("NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 model card: attention layers and the Mamba layers feeding "
                 "them stay BF16 — embeddings 2·131,072·2,688 + 6 × 23.4M attention + 6 × 38.7M Mamba = 1.077B"),
)


@dataclass(frozen=True)
class Device:
    """Memory a model server can use on one machine: fast GPU memory and, where there is one, an offload tier.

    ``usable_bytes`` is what the GPU allocates from (what vLLM's ``--gpu-memory-utilization``
    covers): HBM on a GB300, the unified LPDDR5X on a GB10. ``offload_bytes`` is CPU memory the GPU
    reaches over NVLink-C2C by offloading (``--cpu-offload-gb``) or unified-memory allocation, at
    ``offload_bandwidth`` — far slower than ``bandwidth``.
    """

    name: str
    usable_bytes: float
    note: str = ""
    bandwidth: float = 0.0
    offload_bytes: float = 0.0
    offload_bandwidth: float = 0.0


DGX_SPARK = Device("DGX Spark", 119.7 * GiB, "GB10: 128 GB LPDDR5X shared with the CPU; CUDA sees ~119.7 GiB; 273 GB/s",
                   bandwidth=273e9)
TWO_SPARKS = Device("2× DGX Spark", 2 * 119.7 * GiB,
                    "two GB10s over ConnectX-7, tensor-parallel (each reads half the weights); link latency not counted",
                    bandwidth=2 * 273e9)
DGX_STATION_HBM = Device("DGX Station (HBM)", 288e9, "GB300 GPU memory only: 288 GB HBM3e at 8 TB/s", bandwidth=8e12)
DGX_STATION = Device("DGX Station (HBM + LPDDR5X)", 288e9,
                     "288 GB HBM3e at 8 TB/s, then 496 GB LPDDR5X over NVLink-C2C at 396 GB/s by offload",
                     bandwidth=8e12, offload_bytes=496e9, offload_bandwidth=396e9)
DEVICES: tuple[Device, ...] = (DGX_SPARK, DGX_STATION_HBM, DGX_STATION)
#: The machines NVIDIA's claims name: one Spark, two Sparks linked, a Station on its HBM and with its CPU memory.
CLAIM_DEVICES: tuple[Device, ...] = (DGX_SPARK, TWO_SPARKS, DGX_STATION_HBM, DGX_STATION)


def weight_bytes(arch: ModelArch, fmt: str, *, mixed: bool = True) -> float:
    """Bytes of weights in ``fmt``; with ``mixed`` the parameters real checkpoints keep in BF16 cost 16 bits.

    >>> round(weight_bytes(NEMOTRON_3_NANO, "bf16") / 1e9, 1)
    63.2
    >>> round(weight_bytes(NEMOTRON_3_NANO, "nvfp4", mixed=False) / 1e9, 2), round(weight_bytes(NEMOTRON_3_NANO, "nvfp4") / 1e9, 2)
    (17.77, 19.32)
    """
    bits = bits_per_weight(fmt)
    high = min(arch.bf16_params, arch.total_params) if mixed and bits < 16 else 0.0
    return high * 2 + (arch.total_params - high) * bits / 8


def _kept_params(arch: ModelArch, fmt: str, *, mixed: bool = True) -> float:
    return min(arch.bf16_params, arch.total_params) if mixed and bits_per_weight(fmt) < 16 else 0.0


def active_weight_bytes(arch: ModelArch, fmt: str, *, mixed: bool = True) -> float:
    """Weight bytes read per decoded token; the BF16-kept part (attention, embeddings, shared MLPs) is always active."""
    kept = min(_kept_params(arch, fmt, mixed=mixed), arch.active_params)
    return kept * 2 + (arch.active_params - kept) * bits_per_weight(fmt) / 8


def kv_cache_bytes(arch: ModelArch, *, context: int, sequences: int = 1, kv_bytes: float = 2.0) -> float:
    """KV cache for ``sequences`` sequences of ``context`` tokens (``kv_bytes`` 2 = BF16/F16, 1 = FP8).

    Windowed layers (sliding or chunked attention) hold at most ``window`` tokens.

    >>> kv_cache_bytes(NEMOTRON_3_NANO, context=1)  # 2 × 6 layers × 2 heads × 128 × 2 bytes
    6144.0
    """
    full = arch.n_attention_layers - arch.n_window_layers
    tokens = full * context + arch.n_window_layers * min(context, arch.window)
    return float(arch.kv_elements_per_layer_token) * tokens * sequences * kv_bytes


def state_bytes(arch: ModelArch, *, sequences: int = 1, state_bytes_per_element: float | None = None) -> float:
    """Recurrent (Mamba) state: fixed per sequence, whatever the context length."""
    per = arch.state_bytes_per_element if state_bytes_per_element is None else state_bytes_per_element
    return float(arch.n_state_layers) * arch.state_elements_per_layer * sequences * per


def fit_table(arch: ModelArch, *, formats: Sequence[str] = ("bf16", "fp8", "nvfp4"),
              contexts: Iterable[int] = (8_192, 32_768, 131_072), sequences: int = 1, kv_bytes: float = 2.0,
              utilization: float = 0.8, devices: Sequence[Device] = DEVICES):
    """One row per (format, context): GiB needed and the headroom left on each device's GPU memory.

    ``utilization`` is the share of device memory given to the server (vLLM's
    ``--gpu-memory-utilization``); the rest stays with the OS, CUDA context and activations.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for fmt in formats:
        for context in contexts:
            weights = weight_bytes(arch, fmt)
            kv = kv_cache_bytes(arch, context=context, sequences=sequences, kv_bytes=kv_bytes)
            state = state_bytes(arch, sequences=sequences)
            need = weights + kv + state
            row = {"format": fmt, "context": context, "weights_GiB": weights / GiB, "kv_GiB": kv / GiB,
                   "state_GiB": state / GiB, "total_GiB": need / GiB}
            for dev in devices:
                row[f"{dev.name} headroom_GiB"] = (dev.usable_bytes * utilization - need) / GiB
            rows.append(row)
    return pd.DataFrame(rows).round(2)


@dataclass(frozen=True)
class GgufModel:
    """What a GGUF header says: the architecture numbers and the weight bytes as stored (quantised)."""

    arch: ModelArch
    weight_bytes: float


def arch_from_gguf(path: Path, *, name: str | None = None) -> GgufModel:
    """Architecture numbers and the exact weight bytes, read from a GGUF file's header.

    Hybrid files (per-layer ``head_count_kv`` arrays, as ``nemotron_h`` writes) count only the
    layers with KV heads as attention and the ``ssm.*`` layers as state. Sliding-window files are
    refused unless the header says which layers slide: the cache size depends on it.
    """
    from gguf import GGUFReader  # noqa: PLC0415 - optional, pure-Python GGUF parser

    reader = GGUFReader(str(path))

    def field(key: str):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch_name = field("general.architecture")
    if arch_name is None:
        raise InputError(f"{Path(path).name} has no general.architecture key: not a model GGUF.")
    layers = int(field(f"{arch_name}.block_count"))
    heads_field = field(f"{arch_name}.attention.head_count")
    heads = max(heads_field) if isinstance(heads_field, list) else int(heads_field)
    embed = int(field(f"{arch_name}.embedding_length"))
    head_dim = int(field(f"{arch_name}.attention.key_length") or embed // heads)
    kv_field = field(f"{arch_name}.attention.head_count_kv")
    per_layer_kv = kv_field if isinstance(kv_field, list) else [int(kv_field or heads)] * layers
    attention_kv = sorted({int(h) for h in per_layer_kv if int(h) > 0})
    if len(attention_kv) > 1:
        raise InputError(f"{Path(path).name}: attention layers have different KV head counts {attention_kv}; "
                         "describe it with ModelArch by hand.")
    window = field(f"{arch_name}.attention.sliding_window")
    if window:
        raise InputError(f"{Path(path).name} uses a {int(window)}-token sliding window on some layers and the header "
                         "does not say which; the KV cache depends on it. Describe the model with "
                         "ModelArch(n_window_layers=…, window=…) from its config.json.")
    n_attention = sum(1 for h in per_layer_kv if int(h) > 0)
    state_layers, state_elements = 0, 0
    if field(f"{arch_name}.ssm.state_size") is not None:
        d_state = int(field(f"{arch_name}.ssm.state_size"))
        d_inner = int(field(f"{arch_name}.ssm.inner_size"))
        groups = int(field(f"{arch_name}.ssm.group_count") or 1)
        kernel = int(field(f"{arch_name}.ssm.conv_kernel"))
        ffn = field(f"{arch_name}.feed_forward_length")
        ffn = ffn if isinstance(ffn, list) else [int(ffn or 0)] * layers
        # A recurrent layer has neither KV heads nor a feed-forward block (llama.cpp's nemotron_h rule).
        state_layers = sum(1 for h, f in zip(per_layer_kv, ffn) if int(h) == 0 and int(f) == 0)
        state_elements = d_inner * d_state + (d_inner + 2 * groups * d_state) * (kernel - 1)
    params = float(sum(int(t.n_elements) for t in reader.tensors))
    stored = float(sum(int(t.n_bytes) for t in reader.tensors))
    arch = ModelArch(
        name=name or str(field("general.name") or Path(path).stem),
        total_params=params, active_params=params, n_layers=layers, n_attention_layers=n_attention,
        n_kv_heads=attention_kv[0] if attention_kv else 0, head_dim=head_dim,
        max_context=int(field(f"{arch_name}.context_length") or 0), source=f"GGUF header of {Path(path).name}",
        n_state_layers=state_layers, state_elements_per_layer=state_elements,
        state_bytes_per_element=4.0 if state_layers else 2.0,  # llama.cpp keeps recurrent state in F32
    )
    return GgufModel(arch, stored)


SHORT_CONTEXT = 8_192


@dataclass(frozen=True)
class Verdict:
    """Whether a model fits a device, where, and how fast it could decode.

    ``word``: ``fits`` (GPU memory alone), ``fits with offload`` (spills into the CPU tier),
    ``short context only`` (fits at 8k tokens, not at the asked context), ``does not fit``, or
    ``KV unknown`` (the weights fit but the cache size is not public: never counted as fitting).
    ``headroom_gib`` is left of the budget used (GPU memory, plus the CPU tier when offloading);
    ``offloaded_gib`` what must live in the CPU tier; ``tokens_per_s`` a bandwidth bound on one
    sequence's decode speed (NaN when it does not fit).
    """

    word: str
    headroom_gib: float
    offloaded_gib: float = 0.0
    tokens_per_s: float = math.nan

    def __str__(self) -> str:
        room = "weights leave " if self.word == "KV unknown" else ""
        text = f"{self.word} ({room}{self.headroom_gib:+.0f} GiB"
        text += f", {self.offloaded_gib:.0f} GiB offloaded)" if self.offloaded_gib else ")"
        return text + (f" · ≤{self.tokens_per_s:,.0f} tok/s" if math.isfinite(self.tokens_per_s) else "")


def decode_tokens_per_s(arch: ModelArch, fmt: str, device: Device, *, context: int, sequences: int = 1,
                        kv_bytes: float = 2.0, offloaded_bytes: float = 0.0) -> float:
    """Upper bound on one sequence's decode speed from memory bandwidth (a roofline, not a measurement).

    Each decode step reads the active weights once for the batch, and every sequence's KV cache
    and state. Offloaded bytes are expert weights moved to the CPU tier (the BF16-kept layers
    stay in GPU memory); the active experts are read from it in proportion to the share moved.

    >>> round(decode_tokens_per_s(NEMOTRON_3_NANO, "bf16", DGX_SPARK, context=0))  # 273 GB/s ÷ 7.2 GB
    38
    """
    if device.bandwidth <= 0:
        return math.nan
    kept = min(_kept_params(arch, fmt), arch.active_params) * 2  # read every token, placed in GPU memory first
    routed = active_weight_bytes(arch, fmt) - kept  # experts: the part that spills when the model is offloaded
    cache = (kv_cache_bytes(arch, context=context, sequences=sequences, kv_bytes=kv_bytes) if arch.kv_known
             else 0.0) + state_bytes(arch, sequences=sequences)
    spillable = weight_bytes(arch, fmt) - _kept_params(arch, fmt) * 2
    slow_share = min(offloaded_bytes / spillable, 1.0) if offloaded_bytes and spillable else 0.0
    seconds = (kept + routed * (1 - slow_share) + cache) / device.bandwidth
    if slow_share:
        if device.offload_bandwidth <= 0:
            return math.nan
        seconds += routed * slow_share / device.offload_bandwidth
    return 1.0 / seconds


def verdict(arch: ModelArch, fmt: str, device: Device, *, context: int, sequences: int = 1, kv_bytes: float = 2.0,
            utilization: float = 0.8) -> Verdict:
    """Where weights + KV cache + state go on the device at ``context``, the headroom, and a decode bound.

    The server gets ``utilization`` of each tier. An unknown KV cache never "fits": the verdict
    is ``KV unknown`` unless the weights alone already fail.
    """
    fast = device.usable_bytes * utilization
    total = fast + device.offload_bytes * utilization
    base = weight_bytes(arch, fmt) + state_bytes(arch, sequences=sequences)

    def need(ctx: int) -> float:
        return base + kv_cache_bytes(arch, context=ctx, sequences=sequences, kv_bytes=kv_bytes)

    if not arch.kv_known:
        if base > total:
            return Verdict("does not fit", (total - base) / GiB)
        return Verdict("KV unknown", ((fast if base <= fast else total) - base) / GiB,
                       offloaded_gib=max(base - fast, 0.0) / GiB)
    needed = need(context)
    if needed <= fast:
        speed = decode_tokens_per_s(arch, fmt, device, context=context, sequences=sequences, kv_bytes=kv_bytes)
        return Verdict("fits", (fast - needed) / GiB, tokens_per_s=speed)
    if needed <= total:
        spilled = needed - fast
        speed = decode_tokens_per_s(arch, fmt, device, context=context, sequences=sequences, kv_bytes=kv_bytes,
                                    offloaded_bytes=spilled)
        return Verdict("fits with offload", (total - needed) / GiB, offloaded_gib=spilled / GiB, tokens_per_s=speed)
    if need(min(SHORT_CONTEXT, context)) <= total:
        return Verdict("short context only", (total - needed) / GiB)
    return Verdict("does not fit", (total - needed) / GiB)


def verdict_table(models: Sequence[ModelArch], *, formats: Sequence[str] = ("bf16", "fp8", "nvfp4", "mxfp4"),
                  devices: Sequence[Device] = DEVICES, context: int = 131_072, sequences: int = 1,
                  kv_bytes: float = 2.0, utilization: float = 0.8):
    """One row per (model, format): weights, KV at ``context``, and per device the verdict, headroom and decode bound."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for arch in models:
        for fmt in formats:
            kv = kv_cache_bytes(arch, context=context, sequences=sequences, kv_bytes=kv_bytes) if arch.kv_known else float("nan")
            row = {"model": arch.name, "format": fmt, "total_params_B": arch.total_params / 1e9,
                   "weights_GiB": weight_bytes(arch, fmt) / GiB, "kv_GiB": kv / GiB}
            for dev in devices:
                row[dev.name] = str(verdict(arch, fmt, dev, context=context, sequences=sequences, kv_bytes=kv_bytes,
                                            utilization=utilization))
            rows.append(row)
    return pd.DataFrame(rows).round(1)
