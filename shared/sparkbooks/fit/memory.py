"""Will it fit? Weights + KV cache (+ state) for a model, a number format and a context length.

The arithmetic is deliberately plain so a reader can redo it by hand:

* weights  = parameters × bits per weight / 8 (block scales included in the bits), with the
  parameters real low-bit checkpoints keep in BF16 (embeddings, attention, …) charged 16 bits;
* KV cache = 2 (K and V) × attention layers × KV heads × head dim × tokens × sequences × KV bytes;
* recurrent state (Mamba layers) = layers × state elements × bytes, per sequence, independent of length.

A device has fast GPU memory (HBM, or GB10's unified LPDDR5X) and, on a DGX Station, CPU memory
reachable by offload. A verdict says which one a model needs, and a decode speed bound follows
from the bytes read per token and each tier's bandwidth.

Architecture numbers carry their public source (:mod:`.architecture`, which also reads them from a GGUF
header); the machines and their memory tiers are :mod:`.machines`. Both modules' names are importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..quant.formats import NUMBER_FORMATS, bits_per_weight
from .architecture import NEMOTRON_3_NANO, GgufModel, ModelArch, arch_from_gguf
from .machines import CLAIM_DEVICES, DEVICES, DGX_SPARK, DGX_STATION, DGX_STATION_HBM, TWO_SPARKS, Device, GiB

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
    "utilization_sensitivity",
    "verdict",
    "verdict_table",
    "weight_bytes",
]

#: Bits per weight including block-scale overhead, from the one table of formats (:data:`sparkbooks.quant.NUMBER_FORMATS`).
BITS_PER_WEIGHT: dict[str, float] = {name: f.bits_per_weight for name, f in NUMBER_FORMATS.items()}


def weight_bytes(arch: ModelArch, fmt: str, *, mixed: bool = True) -> float:
    """Bytes of weights in ``fmt``; with ``mixed`` the parameters real checkpoints keep in BF16 cost 16 bits (and those
    a 4-bit checkpoint keeps in FP8, ``fp8_params``, 8 bits).

    >>> round(weight_bytes(NEMOTRON_3_NANO, "bf16") / 1e9, 1)
    63.2
    >>> round(weight_bytes(NEMOTRON_3_NANO, "nvfp4", mixed=False) / 1e9, 2), round(weight_bytes(NEMOTRON_3_NANO, "nvfp4") / 1e9, 2)
    (17.77, 19.32)
    """
    bits = bits_per_weight(fmt)
    high = min(arch.bf16_params, arch.total_params) if mixed and bits < 16 else 0.0
    middle = min(arch.fp8_params, arch.total_params - high) if mixed and bits < 8 else 0.0  # FP8-kept, 1 byte each
    return high * 2 + middle + (arch.total_params - high - middle) * bits / 8


def _kept_params(arch: ModelArch, fmt: str, *, mixed: bool = True) -> float:
    return min(arch.bf16_params, arch.total_params) if mixed and bits_per_weight(fmt) < 16 else 0.0


def active_weight_bytes(arch: ModelArch, fmt: str, *, mixed: bool = False) -> float:
    """Weight bytes one decoded token reads: the active parameters, the input embedding of an untied model excepted.

    The embedding is a lookup (one row per token), never a read of the table (where the published active count
    already leaves it out, ``active_counts_embedding`` is False and nothing is subtracted). Without ``mixed`` (the
    decode bound) every read parameter is charged at the format: the fewest bytes an engine could read — real ones read
    more (llama.cpp's gpt-oss GGUF keeps the non-expert weights near Q8_0; vLLM runs a checkpoint's FP8 layers in FP8),
    so the bound stays an upper bound, not a prediction; with ``mixed`` they are read as the checkpoint ships them.

    >>> round(active_weight_bytes(NEMOTRON_3_NANO, "bf16") / 1e9, 2)  # (3.6B − 0.35B embedding lookup) × 2 bytes
    6.5
    """
    bits = bits_per_weight(fmt)
    read = max(arch.active_params - (arch.embedding_params if arch.active_counts_embedding else 0.0), 0.0)
    kept = max(min(_kept_params(arch, fmt, mixed=mixed), arch.active_params) - arch.embedding_params, 0.0)
    # a checkpoint's FP8 tier (Ultra's shared experts and Mamba linears: always active) is read at one byte
    fp8 = min(arch.fp8_params, read - kept) if mixed and bits < 8 else 0.0
    return kept * 2 + fp8 + (read - kept - fp8) * bits / 8


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
              utilization: float | None = None, devices: Sequence[Device] = DEVICES):
    """One row per (format, context): GiB needed and the headroom left on each device's GPU memory.

    ``utilization`` is the share of device memory given to the server (vLLM's
    ``--gpu-memory-utilization``); the rest stays with the OS, CUDA context and activations.
    None: each machine's own (:attr:`Device.utilization`: Spark 0.8, Station 0.9).
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
                share = dev.utilization if utilization is None else utilization
                row[f"{dev.name} headroom_GiB"] = (dev.usable_bytes * share - need) / GiB
            rows.append(row)
    return pd.DataFrame(rows).round(2)


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

    Each decode step reads the active weights once for the batch (:func:`active_weight_bytes`: at the format, the
    input embedding a lookup), and every sequence's KV cache and state. Offloaded bytes are expert weights moved to
    the CPU tier (the BF16-kept layers stay in GPU memory); the active experts are read from it in proportion to the
    share moved. Checked against measured single-Spark decode rates by :func:`sparkbooks.fit.models.decode_check`.

    >>> round(decode_tokens_per_s(NEMOTRON_3_NANO, "bf16", DGX_SPARK, context=0))  # 273 GB/s ÷ 6.5 GB
    42
    """
    if device.bandwidth <= 0:
        return math.nan
    bits = bits_per_weight(fmt)
    # experts: the part that spills when the model is offloaded; the rest is placed in GPU memory first
    routed = (arch.active_params - min(_kept_params(arch, fmt), arch.active_params)) * bits / 8
    kept = active_weight_bytes(arch, fmt) - routed
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
            utilization: float | None = None) -> Verdict:
    """Where weights + KV cache + state go on the device at ``context``, the headroom, and a decode bound.

    The server gets ``utilization`` of each tier (None: the machine's own, :attr:`Device.utilization`).
    An unknown KV cache never "fits": the verdict
    is ``KV unknown`` unless the weights alone already fail.
    """
    utilization = device.utilization if utilization is None else utilization
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
                  kv_bytes: float = 2.0, utilization: float | None = None):
    """One row per (model, format): weights, KV at ``context``, and per device the verdict, headroom and decode bound.

    ``utilization`` None: each machine's own share (Spark 0.8, Station 0.9)."""
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


def utilization_sensitivity(models: Sequence[ModelArch], device: Device, *, formats: Mapping[str, str] | None = None,
                            context: int, sequences: int = 1, kv_bytes: float = 2.0,
                            utilizations: Sequence[float] = (0.8, 0.9, 0.95)):
    """One row per model: its verdict on ``device`` at each share of memory given to the server.

    ``formats`` maps a model name to the format judged (default NVFP4). A verdict that changes along a row depends on
    a server setting, not on the model: ``flips`` says so.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for arch in models:
        fmt = (formats or {}).get(arch.name, "nvfp4")
        verdicts = [verdict(arch, fmt, device, context=context, sequences=sequences, kv_bytes=kv_bytes, utilization=u)
                    for u in utilizations]
        rows.append({"model": arch.name, "format": fmt, **{f"utilization {u:.2f}": str(v) for u, v in zip(utilizations, verdicts)},
                     "flips": len({v.word for v in verdicts}) > 1})
    return pd.DataFrame(rows)
