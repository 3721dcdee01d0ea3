"""Architecture numbers of the frontier models NVIDIA names for DGX Spark and DGX Station, with sources.

Only what decides memory is kept: total and active parameters, attention layers, the cached
width per token (GQA heads × head dim, or MLA's compressed latent), windowed layers, and
Mamba state. Where the attention layout is not public in the sources used here, ``kv_known``
is False and the KV cache is left out of the verdict (said so in the table).
"""

from __future__ import annotations

from .exceptions import InputError
from .memory import NEMOTRON_3_NANO, ModelArch

__all__ = ["FRONTIER", "by_name"]

_MLA = 512 + 64  # DeepSeek-V3-style MLA caches kv_lora_rank 512 + RoPE key 64 per layer per token

FRONTIER: tuple[ModelArch, ...] = (
    NEMOTRON_3_NANO,
    ModelArch(
        name="Nemotron 3 Super 120B-A12B", total_params=120e9, active_params=12e9, n_layers=0,
        n_attention_layers=0, n_kv_heads=0, head_dim=0, max_context=0, kv_known=False, attention="hybrid Mamba",
        source="NVIDIA model id nvidia/nemotron-3-super-120b-a12b (120B total, 12B active); layer layout not in our sources",
    ),
    ModelArch(
        name="Nemotron 3 Ultra 550B-A55B", total_params=550e9, active_params=55e9, n_layers=0,
        n_attention_layers=0, n_kv_heads=0, head_dim=0, max_context=0, kv_known=False, attention="hybrid Mamba",
        source="NVIDIA model id NVIDIA-Nemotron-3-Ultra-550B-A55B (550B total, 55B active); layer layout not in our sources",
    ),
    ModelArch(
        name="gpt-oss-120b", total_params=116.8e9, active_params=5.1e9, n_layers=36, n_attention_layers=36,
        n_kv_heads=8, head_dim=64, max_context=131_072, n_window_layers=18, window=128, attention="GQA, alternating 128-token window",
        source="OpenAI gpt-oss model card: 36 layers, 116.8B total / 5.1B active, 64 query / 8 KV heads of 64, "
               "dense and 128-token banded layers alternate; ships MoE weights in MXFP4 (~60.8 GiB checkpoint)",
    ),
    ModelArch(
        name="Qwen3-235B-A22B", total_params=235e9, active_params=22e9, n_layers=94, n_attention_layers=94,
        n_kv_heads=4, head_dim=128, max_context=131_072, source="Qwen/Qwen3-235B-A22B config.json: 94 layers, 64 query / 4 KV heads, head_dim 128",
    ),
    ModelArch(
        name="Llama 4 Maverick 17B-128E", total_params=400e9, active_params=17e9, n_layers=48, n_attention_layers=48,
        n_kv_heads=8, head_dim=128, max_context=1_048_576, n_window_layers=36, window=8_192,
        attention="GQA, chunked (8k) in 3 of 4 layers",
        source="Meta Llama 4 model card and config: 400B total / 17B active, 48 layers, 8 KV heads of 128, "
               "attention_chunk_size 8192 on the RoPE layers (3 of every 4)",
    ),
    ModelArch(
        name="DeepSeek-V3.2", total_params=671e9, active_params=37e9, n_layers=61, n_attention_layers=61,
        n_kv_heads=1, head_dim=0, max_context=163_840, mla_latent_dim=_MLA, indexer_dim=128, attention="MLA + sparse indexer",
        source="deepseek-ai/DeepSeek-V3.2 config: 61 layers, MLA kv_lora_rank 512 + qk_rope_head_dim 64, "
               "lightning-indexer keys of 128 per token; 671B main model (685B with the MTP module), 37B active",
    ),
    ModelArch(
        name="Mistral Large 3 675B", total_params=675e9, active_params=41e9, n_layers=61, n_attention_layers=61,
        n_kv_heads=1, head_dim=0, max_context=262_144, mla_latent_dim=_MLA, attention="MLA",
        source="Mistral AI: 675B total / 41B active; DeepSeek-V3 architecture (MLA) per Mistral's model-card discussion "
               "(cited in mlx-vlm#630) — 61 layers and the 512+64 latent assumed from that architecture",
    ),
    ModelArch(
        name="Kimi K2 Thinking", total_params=1.04e12, active_params=32e9, n_layers=61, n_attention_layers=61,
        n_kv_heads=1, head_dim=0, max_context=262_144, mla_latent_dim=_MLA, attention="MLA",
        source="Moonshot AI Kimi K2 model card: 1.04T total / 32B active, 61 layers, MLA (DeepSeek-V3 architecture, "
               "kv_lora_rank 512); Thinking ships MoE weights as native INT4 (QAT)",
    ),
)


def by_name(name: str) -> ModelArch:
    """The catalogue entry called ``name``; an unknown name lists the known ones."""
    for arch in FRONTIER:
        if arch.name == name:
            return arch
    raise InputError(f"No model {name!r}. Models: {', '.join(a.name for a in FRONTIER)}.")
