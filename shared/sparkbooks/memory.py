"""Will it fit? Weights + KV cache (+ state) for a model, a number format and a context length.

The arithmetic is deliberately plain so a reader can redo it by hand:

* weights  = total parameters × bits per weight / 8 (block scales included in the bits);
* KV cache = 2 (K and V) × attention layers × KV heads × head dim × tokens × sequences × KV bytes;
* recurrent state (Mamba layers) = layers × state elements × bytes, per sequence, independent of length.

Architecture numbers carry their public source; :func:`arch_from_gguf` reads them from a GGUF header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .exceptions import InputError
from .quant import NUMBER_FORMATS, bits_per_weight

__all__ = [
    "BITS_PER_WEIGHT",
    "CLAIM_DEVICES",
    "DEVICES",
    "DGX_SPARK",
    "Device",
    "GgufModel",
    "ModelArch",
    "NEMOTRON_3_NANO",
    "Verdict",
    "arch_from_gguf",
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
    attention: str = "GQA"
    mla_latent_dim: int = 0  # MLA caches one compressed latent (kv_lora_rank + rope dims) per layer
    indexer_dim: int = 0  # DeepSeek sparse attention keeps an extra indexer key per token per layer
    n_window_layers: int = 0  # layers that only keep the last `window` tokens (sliding / chunked)
    window: int = 0
    kv_known: bool = True  # False: the attention layout is not public in our sources; KV left out

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
)


@dataclass(frozen=True)
class Device:
    """Memory a model server can use on one machine."""

    name: str
    usable_bytes: float
    note: str = ""


DGX_SPARK = Device("DGX Spark", 119.7 * GiB, "GB10: 128 GB LPDDR5X shared with the CPU; CUDA sees ~119.7 GiB")
DEVICES: tuple[Device, ...] = (
    DGX_SPARK,
    Device("DGX Station (HBM)", 288e9, "GB300 GPU memory: 288 GB HBM3e at 8 TB/s"),
    Device("DGX Station (coherent)", 784e9, "288 GB HBM3e + 496 GB LPDDR5X, coherent over NVLink-C2C"),
)
#: The machines NVIDIA's claims name: one Spark, two Sparks linked (model split across both), a Station.
CLAIM_DEVICES: tuple[Device, ...] = (
    DGX_SPARK,
    Device("2× DGX Spark", 2 * 119.7 * GiB, "two GB10s over ConnectX-7, model split across both"),
    Device("DGX Station", 784e9, "288 GB HBM3e + 496 GB LPDDR5X coherent"),
)


def weight_bytes(arch: ModelArch, fmt: str) -> float:
    """Bytes of weights when every parameter is stored in ``fmt``.

    >>> round(weight_bytes(NEMOTRON_3_NANO, "bf16") / 1e9, 1)
    63.2
    """
    return arch.total_params * bits_per_weight(fmt) / 8


def kv_cache_bytes(arch: ModelArch, *, context: int, sequences: int = 1, kv_bytes: float = 2.0) -> float:
    """KV cache for ``sequences`` sequences of ``context`` tokens (``kv_bytes`` 2 = BF16/F16, 1 = FP8).

    Windowed layers (sliding or chunked attention) hold at most ``window`` tokens.

    >>> kv_cache_bytes(NEMOTRON_3_NANO, context=1)  # 2 × 6 layers × 2 heads × 128 × 2 bytes
    6144.0
    """
    full = arch.n_attention_layers - arch.n_window_layers
    tokens = full * context + arch.n_window_layers * min(context, arch.window)
    return float(arch.kv_elements_per_layer_token) * tokens * sequences * kv_bytes


def state_bytes(arch: ModelArch, *, sequences: int = 1, state_bytes_per_element: float = 2.0) -> float:
    """Recurrent (Mamba) state: fixed per sequence, whatever the context length."""
    return float(arch.n_state_layers) * arch.state_elements_per_layer * sequences * state_bytes_per_element


def fit_table(arch: ModelArch, *, formats: Sequence[str] = ("bf16", "fp8", "nvfp4"),
              contexts: Iterable[int] = (8_192, 32_768, 131_072), sequences: int = 1, kv_bytes: float = 2.0,
              utilization: float = 0.8, devices: Sequence[Device] = DEVICES):
    """One row per (format, context): GiB needed and the headroom left on each device.

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
                budget = dev.usable_bytes * utilization
                row[f"{dev.name} headroom_GiB"] = (budget - need) / GiB
            rows.append(row)
    return pd.DataFrame(rows).round(2)


@dataclass(frozen=True)
class GgufModel:
    """What a GGUF header says: the architecture numbers and the weight bytes as stored (quantised)."""

    arch: ModelArch
    weight_bytes: float


def arch_from_gguf(path: Path, *, name: str | None = None) -> GgufModel:
    """Architecture numbers and the exact weight bytes, read from a GGUF file's header."""
    from gguf import GGUFReader  # noqa: PLC0415 - optional, pure-Python GGUF parser

    reader = GGUFReader(str(path))

    def field(key: str):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch_name = field("general.architecture")
    heads = int(field(f"{arch_name}.attention.head_count"))
    embed = int(field(f"{arch_name}.embedding_length"))
    layers = int(field(f"{arch_name}.block_count"))
    head_dim = int(field(f"{arch_name}.attention.key_length") or embed // heads)
    params = float(sum(int(t.n_elements) for t in reader.tensors))
    stored = float(sum(int(t.n_bytes) for t in reader.tensors))
    arch = ModelArch(
        name=name or str(field("general.name") or Path(path).stem),
        total_params=params, active_params=params, n_layers=layers, n_attention_layers=layers,
        n_kv_heads=int(field(f"{arch_name}.attention.head_count_kv") or heads), head_dim=head_dim,
        max_context=int(field(f"{arch_name}.context_length") or 0), source=f"GGUF header of {Path(path).name}",
    )
    return GgufModel(arch, stored)


SHORT_CONTEXT = 8_192


@dataclass(frozen=True)
class Verdict:
    """Whether a model fits a device: ``fits``, ``short context only`` or ``does not fit``, and the headroom."""

    word: str
    headroom_gib: float


def verdict(arch: ModelArch, fmt: str, device: Device, *, context: int, sequences: int = 1, kv_bytes: float = 2.0,
            utilization: float = 0.8) -> Verdict:
    """Whether weights + KV cache + state fit the device's budget at ``context``, and the headroom in GiB.

    "short context only" means weights + cache fit at 8k tokens but not at ``context``.
    """
    budget = device.usable_bytes * utilization

    def need(ctx: int) -> float:
        kv = kv_cache_bytes(arch, context=ctx, sequences=sequences, kv_bytes=kv_bytes) if arch.kv_known else 0.0
        return weight_bytes(arch, fmt) + kv + state_bytes(arch, sequences=sequences)

    headroom = (budget - need(context)) / GiB
    if headroom >= 0:
        return Verdict("fits", headroom)
    if budget >= need(min(SHORT_CONTEXT, context)):
        return Verdict("short context only", headroom)
    return Verdict("does not fit", headroom)


def verdict_table(models: Sequence[ModelArch], *, formats: Sequence[str] = ("bf16", "fp8", "nvfp4", "mxfp4"),
                  devices: Sequence[Device] = DEVICES, context: int = 131_072, sequences: int = 1,
                  kv_bytes: float = 2.0, utilization: float = 0.8):
    """One row per (model, format): weights, KV at ``context``, and a verdict + headroom per device."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for arch in models:
        for fmt in formats:
            kv = kv_cache_bytes(arch, context=context, sequences=sequences, kv_bytes=kv_bytes) if arch.kv_known else float("nan")
            row = {"model": arch.name, "format": fmt, "total_params_B": arch.total_params / 1e9,
                   "weights_GiB": weight_bytes(arch, fmt) / GiB, "kv_GiB": kv / GiB}
            for dev in devices:
                v = verdict(arch, fmt, dev, context=context, sequences=sequences, kv_bytes=kv_bytes,
                            utilization=utilization)
                row[dev.name] = f"{v.word} ({v.headroom_gib:+.0f} GiB)"
            rows.append(row)
    return pd.DataFrame(rows).round(1)
