"""A model's architecture numbers — the ones that decide its memory — by hand with their source, or read from a GGUF header.

:class:`ModelArch` carries each number's public source; :data:`NEMOTRON_3_NANO` is the playbook's model;
:func:`arch_from_gguf` reads the numbers (and the stored weight bytes) from a GGUF file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..exceptions import InputError

__all__ = ["GgufModel", "ModelArch", "NEMOTRON_3_NANO", "arch_from_gguf"]


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
    #: kept in FP8 by a 4-bit checkpoint (Nemotron 3 Ultra NVFP4: shared experts and Mamba linears); derivation in bf16_source
    fp8_params: float = 0.0
    #: the input embedding table of an untied model: decoding looks up one row per token, it never reads the table
    #: (tied: 0, the output head reads the same table every token)
    embedding_params: float = 0.0
    #: False where the published active count already leaves the input embedding out (gpt-oss: 5.13B = experts +
    #: attention + router + unembedding), so the decode bound must not subtract it a second time
    active_counts_embedding: bool = True

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
    embedding_params=131_072 * 2_688,
    bf16_source=("NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 model card: attention layers and the Mamba layers feeding "
                 "them stay BF16 — embeddings 2·131,072·2,688 + 6 × 23.4M attention + 6 × 38.7M Mamba = 1.077B"),
)


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
