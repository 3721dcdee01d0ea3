"""Architecture numbers of the frontier models NVIDIA names for DGX Spark and DGX Station, with sources.

Only what decides memory is kept: total and active parameters, attention layers, the cached
width per token (GQA heads × head dim, or MLA's compressed latent), windowed layers, and
Mamba state, and what low-bit checkpoints keep in BF16. Where the attention layout is not public
in the sources used here, ``kv_known`` is False and the verdict says "KV unknown".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..exceptions import InputError
from .memory import NEMOTRON_3_NANO, GiB, ModelArch, weight_bytes

__all__ = ["FRONTIER", "GPT_OSS_20B", "MEASURED_DECODE", "MeasuredDecode", "NATIVE_FORMATS", "PUBLISHED_CHECKPOINTS",
           "PublishedCheckpoint", "QWEN25_CODER_7B", "QWEN3_CODER_30B_A3B", "by_name", "checkpoint_check", "decode_check"]

_MLA = 512 + 64  # DeepSeek-V3-style MLA caches kv_lora_rank 512 + RoPE key 64 per layer per token

# What stays BF16 when the routed experts take the low-bit format (the layout of gpt-oss's MXFP4 and
# Kimi K2 Thinking's INT4 checkpoints): embeddings, attention, dense and shared MLPs, norms, routers.
# Counted from each config; the derivation is in each entry's ``bf16_source``.
_ROUTED_ONLY = "routed experts at the format, the rest BF16 (as gpt-oss and Kimi K2 Thinking ship): "

FRONTIER: tuple[ModelArch, ...] = (
    NEMOTRON_3_NANO,
    ModelArch(
        name="Nemotron 3 Super 120B-A12B", total_params=120.6e9, active_params=12.7e9, n_layers=88,
        n_attention_layers=8, n_kv_heads=2, head_dim=128, max_context=1_048_576, attention="hybrid: 8 GQA + 40 Mamba-2",
        n_state_layers=40, state_elements_per_layer=128 * 64 * 128 + (8192 + 2 * 8 * 128) * 3, state_bytes_per_element=4.0,
        source=("NVIDIA Nemotron 3 Super model card (120B total / 12B active, 1M context) and config as summarised at "
                "glennklockwood.com/garden/Nemotron-3: 88 layers = 8 GQA + 40 Mamba-2 + 40 LatentMoE, hidden 4096, "
                "2 KV heads × 128 (8 KiB KV per token in BF16), Mamba 128 heads × 64 × state 128, 8 groups, conv 4, "
                "SSM cache FP32 (the conv state, BF16 in fact, is charged 4 bytes too: +2 MB)"),
        bf16_params=2.24e9, embedding_params=131_072 * 4_096,
        bf16_source=("assumed: Nano's published NVFP4 layout on Super's dims — embeddings 2·131,072·4,096 = 1.07B + "
                     "8 attention layers (~0.29B) + the 8 Mamba layers feeding them (8 × 110M)"),
    ),
    ModelArch(
        name="Nemotron 3 Ultra 550B-A55B", total_params=549.3e9, active_params=55e9, n_layers=108,
        n_attention_layers=12, n_kv_heads=2, head_dim=128, max_context=262_144, attention="hybrid: 12 GQA + 48 Mamba-2",
        n_state_layers=48, state_elements_per_layer=256 * 64 * 128 + (256 * 64 + 2 * 8 * 128) * 3, state_bytes_per_element=2.0,
        source=("config.json as quoted by willccbb/miles scripts/models/nemotron-3-ultra-550b-a55b.sh @176722dd and a "
                "'Learning with Code: Nemotron 3' write-up: 108 layers = 48 Mamba-2 + 48 LatentMoE + 12 GQA, hidden 8192, "
                "64 query / 2 KV heads × 128, Mamba 256 heads × 64 × state 128, 8 groups, conv 4, vocab 131,072 untied, "
                "512 routed experts (latent 2,048, expert width 5,120, top-22) + 1 shared (10,240), "
                "max_position_embeddings 262,144 (1M in NVIDIA's material); 550B total / 55B active (NVIDIA); SSM cache "
                "FP16 as NVIDIA's NVFP4 recipe serves it. Parameters counted from these dims: 549.3B without the MTP head"),
        bf16_params=5.62e9, fp8_params=28.29e9, embedding_params=131_072 * 8_192,
        bf16_source=("derived from the dims above and NVIDIA's 'Creating the Nemotron 3 Ultra NVFP4 checkpoint' blog "
                     "(2026-06-26: routed experts NVFP4; shared experts and Mamba mixer linears FP8 per-tensor; "
                     "embeddings, output layer, MTP layers BF16; attention and latent projections BF16 per secondary "
                     "summaries): BF16 = embeddings 2 · 131,072 · 8,192 = 2.15B + attention 12 × 138.4M = 1.66B + latent "
                     "projections 48 × 33.6M = 1.61B + routers 0.20B; FP8 = Mamba in/out projections 48 × 421.5M = "
                     "20.23B + shared experts 48 × 167.8M = 8.05B; NVFP4 = routed 48 × 512 × 2 · 2,048 · 5,120 = 515.4B"),
    ),
    ModelArch(
        name="gpt-oss-120b", total_params=116.83e9, active_params=5.13e9, n_layers=36, n_attention_layers=36,
        n_kv_heads=8, head_dim=64, max_context=131_072, n_window_layers=18, window=128, attention="GQA, alternating 128-token window",
        source="OpenAI gpt-oss model card: 36 layers, 116.8B total / 5.1B active (top-4 experts 3.58B + attention 0.96B + "
               "routers + unembedding 0.58B: the input embedding is not in it), 64 query / 8 KV heads of 64, "
               "dense and 128-token banded layers alternate; ships MoE weights in MXFP4 (60.8 GiB checkpoint)",
        bf16_params=2.16e9, embedding_params=201_088 * 2_880, active_counts_embedding=False,
        bf16_source=(_ROUTED_ONLY + "128 experts × 36 layers × 2,880·(5,760 + 2,880) = 114.67B in MXFP4; attention "
                     "36 × 26.5M = 0.96B, embedding + unembedding 2 · 201,088 · 2,880 = 1.16B, routers and biases"),
    ),
    ModelArch(
        name="Qwen3-235B-A22B", total_params=235e9, active_params=22e9, n_layers=94, n_attention_layers=94,
        n_kv_heads=4, head_dim=128, max_context=131_072, source="Qwen/Qwen3-235B-A22B config.json: 94 layers, 64 query / 4 KV heads, head_dim 128",
        bf16_params=7.95e9, embedding_params=151_936 * 4_096,
        bf16_source=(_ROUTED_ONLY + "routed 94 × 128 × 3·4,096·1,536 = 227.1B; attention 94 × 71.3M = 6.70B, "
                     "embeddings 2 · 151,936 · 4,096 = 1.24B"),
    ),
    ModelArch(
        name="Llama 4 Maverick 17B-128E", total_params=400e9, active_params=17e9, n_layers=48, n_attention_layers=48,
        n_kv_heads=8, head_dim=128, max_context=1_048_576, n_window_layers=36, window=8_192,
        attention="GQA, chunked (8k) in 3 of 4 layers",
        source="Meta Llama 4 model card and config: 400B total / 17B active, 48 layers, 8 KV heads of 128, "
               "attention_chunk_size 8192 on the RoPE layers (3 of every 4)",
        bf16_params=13.5e9, embedding_params=202_048 * 5_120,
        bf16_source=(_ROUTED_ONLY + "routed 24 MoE layers × 128 × 3·5,120·8,192 = 386.5B; the other 13.5B "
                     "(attention, dense and shared MLPs, embeddings) BF16"),
    ),
    ModelArch(
        name="DeepSeek-V3.2", total_params=671e9, active_params=37e9, n_layers=61, n_attention_layers=61,
        n_kv_heads=1, head_dim=0, max_context=163_840, mla_latent_dim=_MLA, indexer_dim=128, attention="MLA + sparse indexer",
        source="deepseek-ai/DeepSeek-V3.2 config: 61 layers, MLA kv_lora_rank 512 + qk_rope_head_dim 64, "
               "lightning-indexer keys of 128 per token; 671B main model (685B with the MTP module), 37B active",
        bf16_params=17.0e9, embedding_params=129_280 * 7_168,
        bf16_source=(_ROUTED_ONLY + "routed 58 × 256 × 3·7,168·2,048 = 653.9B; MLA 61 × 187M = 11.4B, 3 dense "
                     "MLPs 1.19B, shared experts 2.55B, embeddings 1.85B"),
    ),
    ModelArch(
        name="Mistral Large 3 675B", total_params=675e9, active_params=41e9, n_layers=61, n_attention_layers=61,
        n_kv_heads=1, head_dim=0, max_context=262_144, mla_latent_dim=_MLA, attention="MLA",
        source="Mistral AI: 675B total / 41B active; DeepSeek-V3 architecture (MLA) per Mistral's model-card discussion "
               "(cited in mlx-vlm#630) — 61 layers and the 512+64 latent assumed from that architecture",
        bf16_params=17.0e9, embedding_params=129_280 * 7_168,
        bf16_source="assumed: DeepSeek-V3's non-expert 17.0B (same architecture); " + _ROUTED_ONLY.rstrip(": "),
    ),
    ModelArch(
        name="Kimi K2 Thinking", total_params=1.04e12, active_params=32e9, n_layers=61, n_attention_layers=61,
        n_kv_heads=1, head_dim=0, max_context=262_144, mla_latent_dim=_MLA, attention="MLA",
        source="Moonshot AI Kimi K2 model card: 1.04T total / 32B active, 61 layers, MLA (DeepSeek-V3 architecture, "
               "kv_lora_rank 512); Thinking ships MoE weights as native INT4 (QAT), groups of 32 with BF16 scales",
        bf16_params=11.6e9, embedding_params=163_840 * 7_168,
        bf16_source=("published layout: routed experts INT4 (4.5 bits with scales), the rest BF16 — MLA with 64 heads "
                     "61 × 101M = 6.2B, dense MLP 0.40B, shared experts 2.64B, embeddings 2 · 163,840 · 7,168 = 2.35B"),
    ),
)

#: The format each model is published in, where it is low-bit (what its own checkpoint costs).
NATIVE_FORMATS: dict[str, str] = {"gpt-oss-120b": "mxfp4", "Kimi K2 Thinking": "int4_g32"}

GPT_OSS_20B = ModelArch(
    name="gpt-oss-20b", total_params=20.91e9, active_params=3.61e9, n_layers=24, n_attention_layers=24,
    n_kv_heads=8, head_dim=64, max_context=131_072, n_window_layers=12, window=128, attention="GQA, alternating 128-token window",
    source="OpenAI gpt-oss model card: 24 layers, 20.9B total / 3.6B active (the input embedding not counted), 32 "
           "experts; 12.8 GiB checkpoint",
    bf16_params=1.80e9, embedding_params=201_088 * 2_880, active_counts_embedding=False,
    bf16_source=(_ROUTED_ONLY + "32 experts × 24 layers × 2,880·8,640 = 19.11B in MXFP4; attention 0.64B, "
                 "embeddings 1.16B"),
)

# Two models outside the catalogue whose single-Spark decode rates llama.cpp publishes: a dense one and an MoE one.
QWEN25_CODER_7B = ModelArch(
    name="Qwen2.5-Coder-7B", total_params=7.61e9, active_params=7.61e9, n_layers=28, n_attention_layers=28,
    n_kv_heads=4, head_dim=128, max_context=131_072, embedding_params=152_064 * 3_584,
    source="Qwen/Qwen2.5-Coder-7B model card: 7.61B parameters (6.53B non-embedding: untied input and output "
           "embeddings 2 × 152,064 × 3,584), 28 layers, 28 query / 4 KV heads, head_dim 128 (3,584 / 28)",
)
QWEN3_CODER_30B_A3B = ModelArch(
    name="Qwen3-Coder-30B-A3B", total_params=30.5e9, active_params=3.3e9, n_layers=48, n_attention_layers=48,
    n_kv_heads=4, head_dim=128, max_context=262_144, embedding_params=151_936 * 2_048,
    source="Qwen/Qwen3-Coder-30B-A3B-Instruct model card: 30.5B total / 3.3B activated, 48 layers, 32 query / 4 KV "
           "heads (head_dim 128), 128 experts, 8 active; Qwen3-30B-A3B's card: 29.9B non-embedding (untied, "
           "2 × 151,936 × 2,048)",
)


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A published checkpoint's size, to check the weight arithmetic against."""

    arch: ModelArch
    fmt: str
    size: float
    unit: str  # "GiB" or "GB" (file size) or "B elements" (the Hub's safetensors element count, packed FP4 pairs count once)
    source: str


PUBLISHED_CHECKPOINTS: tuple[PublishedCheckpoint, ...] = (
    PublishedCheckpoint(FRONTIER[3], "mxfp4", 60.8, "GiB", "OpenAI gpt-oss model card, checkpoint size"),
    PublishedCheckpoint(GPT_OSS_20B, "mxfp4", 12.8, "GiB", "OpenAI gpt-oss model card, checkpoint size"),
    PublishedCheckpoint(NEMOTRON_3_NANO, "nvfp4", 18.2, "B elements",
                        "Hugging Face safetensors metadata of nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 (18.2B)"),
    # the checkpoint ships the MTP head too, in BF16: the same blog's BF16 size, 1,121 GB at 2 bytes a parameter, is
    # 560.5B — 11.2B more than the main model's 549.3B counted from its dims. The fit table leaves it out (serving
    # without speculative decoding does not load it; NVIDIA serves Ultra with MTP: +22.4 GB)
    PublishedCheckpoint(dataclasses.replace(FRONTIER[2], total_params=560.5e9, bf16_params=5.62e9 + 11.2e9), "nvfp4",
                        352.3, "GB", "NVIDIA, 'Creating the NVIDIA Nemotron 3 Ultra NVFP4 Checkpoint with NVIDIA Model "
                        "Optimizer' (2026-06-26): 'from 1,121 GB in BF16 down to 352.3 GB' (1,121 GB / 2 bytes = "
                        "560.5B parameters with the MTP head, which stays BF16)"),
)


def _stored_elements(arch: ModelArch, fmt: str) -> float:
    """Elements the Hub counts in an NVFP4 checkpoint: BF16 parameters, uint8 pairs of FP4 values, one FP8 scale per 16."""
    low = arch.total_params - arch.bf16_params
    return arch.bf16_params + low / 2 + low / 16


def checkpoint_check():
    """Predicted against published checkpoint sizes: with the BF16-kept layers, and with every parameter at the format."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for c in PUBLISHED_CHECKPOINTS:
        if c.unit in ("GiB", "GB"):  # file sizes, in the unit the publisher used
            per = GiB if c.unit == "GiB" else 1e9
            mixed, flat = weight_bytes(c.arch, c.fmt) / per, weight_bytes(c.arch, c.fmt, mixed=False) / per
        else:
            mixed = _stored_elements(c.arch, c.fmt) / 1e9
            flat = _stored_elements(dataclasses.replace(c.arch, bf16_params=0.0), c.fmt) / 1e9
        rows.append({"checkpoint": f"{c.arch.name} {c.fmt.upper()}", "published": c.size, "unit": c.unit,
                     "predicted": mixed, "error": mixed / c.size - 1, "every_param_at_format": flat,
                     "error_every_param": flat / c.size - 1, "source": c.source})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class MeasuredDecode:
    """One published single-stream decode rate on one DGX Spark, to check the bandwidth bound against."""

    arch: ModelArch
    fmt: str
    context: int  # tokens in context when measured (the smallest the report allows: a smaller one raises the bound)
    tokens_per_s: float
    engine: str
    source: str


_OSS_120B = FRONTIER[3]
#: Measured single-Spark decode rates, each quoted from its source; a bound below any of them is wrong.
MEASURED_DECODE: tuple[MeasuredDecode, ...] = (
    MeasuredDecode(_OSS_120B, "mxfp4", 2_048, 58.82, "vLLM (spark-arena recipe, MXFP4)",
                   "spark-arena/recipe-registry#17: leaderboard 58.82 tok/s single Spark, reproduced at 59.5 tok/s "
                   "(vLLM TPOT) on an independent GB10"),
    MeasuredDecode(_OSS_120B, "mxfp4", 0, 60.7, "vLLM (spark-vllm-docker), context not stated",
                   "eugr/spark-vllm-docker#345, single Spark: 60.7 tok/s with no context length given, so it is checked "
                   "at 0 (the highest bound: the check can only be looser for it)"),
    MeasuredDecode(_OSS_120B, "mxfp4", 32, 59.05, "llama.cpp llama-bench tg32, depth 0",
                   "NVIDIA developer forum 'Llama.cpp experimental native mxfp4 support for blackwell PR' (t/355639): "
                   "gpt-oss 120B MXFP4 tg32 59.05 ± 0.13 t/s on a Spark, build 74e05131e"),
    MeasuredDecode(_OSS_120B, "mxfp4", 32_768, 42.87, "llama.cpp llama-bench tg32 @ d32768",
                   "same thread and build: tg32 @ d32768 42.87 ± 0.18 t/s"),
    MeasuredDecode(_OSS_120B, "mxfp4", 1_024, 57.5, "vLLM (vllm-node-mxfp4), llama-benchy pp1024 tg128, c1",
                   "kubis.ai 'GPT-OSS-120B: Topology Benchmark on DGX Spark' (2026-03-22): Solo TP=1, c1 57.5 tok/s"),
    MeasuredDecode(GPT_OSS_20B, "mxfp4", 32, 79.74, "llama.cpp llama-bench tg32, depth 0",
                   "llama.cpp on NVIDIA DGX Spark benchmarks (build b6767, jetsonhacks.com mirror of ggml-org's "
                   "numbers): gpt-oss 20B MXFP4 tg32 79.74 ± 0.43 t/s"),
    # llama.cpp's own DGX Spark tables (ggml-org/llama.cpp benches/, read at 0c1e57098): llama-bench, CUDA, fa 1
    MeasuredDecode(QWEN25_CODER_7B, "q8_0", 32, 29.43, "llama.cpp llama-bench tg32, depth 0 (dense model)",
                   "ggml-org/llama.cpp benches/dgx-spark/dgx-spark.md @0c1e57098, build 11fb327bf (7941): "
                   "qwen2 7B Q8_0 tg32 29.43 ± 0.02 t/s"),
    MeasuredDecode(QWEN3_CODER_30B_A3B, "q8_0", 32, 61.06, "llama.cpp llama-bench tg32, depth 0",
                   "ggml-org/llama.cpp benches/dgx-spark/dgx-spark.md @0c1e57098, build 11fb327bf (7941): "
                   "qwen3moe 30B.A3B Q8_0 tg32 61.06 ± 0.23 t/s"),
    MeasuredDecode(QWEN3_CODER_30B_A3B, "q8_0", 32_768, 30.21, "llama.cpp llama-bench tg32 @ d32768",
                   "same file and build: tg32 @ d32768 30.21 ± 0.04 t/s"),
    MeasuredDecode(FRONTIER[1], "q4_k", 32, 19.94, "llama.cpp llama-bench tg32, depth 0",
                   "ggml-org/llama.cpp benches/nemotron/nemotron-dgx-spark.md @0c1e57098, build 04a65daab (8268): "
                   "ggml-org/Nemotron-3-Super-120B-GGUF, nemotron 120B.A12B Q4_K (65.10 GiB) tg32 19.94 ± 0.16 t/s"),
)


def decode_check(measured: tuple[MeasuredDecode, ...] = MEASURED_DECODE):
    """Each measured single-Spark decode rate beside the planner's bound at its context: ``bound_holds`` must be True."""
    import pandas as pd  # noqa: PLC0415

    from .machines import DGX_SPARK  # noqa: PLC0415
    from .memory import decode_tokens_per_s  # noqa: PLC0415

    rows = []
    for m in measured:
        bound = decode_tokens_per_s(m.arch, m.fmt, DGX_SPARK, context=m.context)
        rows.append({"model": m.arch.name, "format": m.fmt, "context": m.context, "engine": m.engine,
                     "measured_tok_s": m.tokens_per_s, "bound_tok_s": bound, "measured_share_of_bound": m.tokens_per_s / bound,
                     "bound_holds": bound >= m.tokens_per_s, "source": m.source})
    return pd.DataFrame(rows)


def by_name(name: str) -> ModelArch:
    """The catalogue entry called ``name``; an unknown name lists the known ones."""
    for arch in FRONTIER:
        if arch.name == name:
            return arch
    raise InputError(f"No model {name!r}. Models: {', '.join(a.name for a in FRONTIER)}.")


@dataclass(frozen=True)
class MachinePeak:
    """A machine's published dense tensor throughput (FLOP/s) per format, with where each figure comes from."""

    name: str
    dense_flops: dict[str, float]
    source: str


#: Dense peaks (no 2:4 sparsity). Figures a vendor only states "with sparsity" are halved, and say so.
MACHINE_PEAKS: tuple[MachinePeak, ...] = (
    MachinePeak(
        name="DGX Station (GB300)",
        dense_flops={"bf16": 2.5e15, "fp8": 5.0e15, "nvfp4": 15.0e15},
        source=("NVIDIA, 'Inside NVIDIA Blackwell Ultra' (developer blog, 2025): 15 PFLOPS dense NVFP4 per "
                "Blackwell Ultra GPU; GB300 per-GPU datasheet figures as tabulated by Verda (GB300 NVL72 "
                "architecture, 2025): FP8 5 PFLOPS, BF16 2.5 PFLOPS dense. The Station's one GB300 GPU is assumed "
                "to reach the datasheet's clocks; its own figures may be lower.")),
    MachinePeak(
        name="DGX Spark (GB10)",
        dense_flops={"bf16": 0.125e15, "fp8": 0.25e15, "nvfp4": 0.5e15},
        source=("NVIDIA DGX Spark: 'up to 1 petaFLOP of FP4 AI performance' — stated with sparsity, so 0.5 "
                "PFLOPS dense NVFP4; FP8 and BF16 derived as ½ and ¼ of it (the Blackwell ratio), not published "
                "by NVIDIA for GB10: read them as upper bounds.")),
)
