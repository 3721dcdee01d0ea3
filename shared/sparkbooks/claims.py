"""NVIDIA's NVFP4 and capacity claims, each checked by arithmetic or by a measured experiment."""

from __future__ import annotations

from collections.abc import Mapping

from .memory import CLAIM_DEVICES, GiB, verdict, weight_bytes
from .model_specs import FRONTIER, by_name
from .quant import FORMATS

__all__ = ["check_claims"]

# What "without losing intelligence" must mean to pass here: the quantised model's nearest
# neighbours are (almost) the FP32 model's, and its embeddings point the same way.
RECALL_BAR, COSINE_BAR = 0.95, 0.99
STATION_MODELS = ("Kimi K2 Thinking", "DeepSeek-V3.2", "Mistral Large 3 675B", "Llama 4 Maverick 17B-128E",
                  "Qwen3-235B-A22B", "gpt-oss-120b", "Nemotron 3 Ultra 550B-A55B")


def check_claims(nvfp4_quality: Mapping[str, float], *, context: int, sequences: int = 1, kv_bytes: float = 2.0,
                 utilization: float = 0.8, recall_key: str = "recall@10"):
    """One row per claim: what NVIDIA says, what was computed or measured, and the verdict.

    ``nvfp4_quality`` is the NVFP4 row of :func:`sparkbooks.quant_eval.compare_formats`'s summary.
    """
    import pandas as pd  # noqa: PLC0415

    spark, two_sparks, station = CLAIM_DEVICES
    saving_bf16 = 1 - FORMATS["nvfp4"].bits_per_weight / 16
    saving_fp8 = 1 - FORMATS["nvfp4"].bits_per_weight / 8
    rows = [{
        "claim": "NVFP4 compresses models by up to 70%",
        "evidence": f"4.5 bits/weight incl. scales: {saving_bf16:.1%} smaller than BF16, {saving_fp8:.1%} smaller than FP8",
        "verdict": "reproduced (against BF16)",
    }]
    recall, cosine = nvfp4_quality[recall_key], nvfp4_quality["cosine_mean"]
    kept = recall >= RECALL_BAR and cosine >= COSINE_BAR
    rows.append({
        "claim": "… without losing intelligence",
        "evidence": f"all-MiniLM-L6-v2, every linear layer NVFP4 (plain round-to-nearest, no calibration): "
                    f"{recall_key} {recall:.3f} vs FP32 neighbours, mean cosine {cosine:.4f}",
        "verdict": "reproduced for this model" if kept else
                   f"not reproduced by plain post-training quantisation (bar: recall ≥ {RECALL_BAR}, cosine ≥ {COSINE_BAR})",
    })

    def fits(name: str, device, fmt: str):
        return verdict(by_name(name), fmt, device, context=context, sequences=sequences, kv_bytes=kv_bytes,
                       utilization=utilization)

    big_on_spark = [a.name for a in FRONTIER if a.total_params >= 100e9
                    and any(fits(a.name, spark, f).word == "fits" for f in ("nvfp4", "mxfp4"))]
    rows.append({
        "claim": "DGX Spark runs 100B+-parameter models",
        "evidence": f"in 4-bit, at {context:,} tokens: {', '.join(big_on_spark) or 'none'} fit one Spark",
        "verdict": "reproduced (4-bit only)" if big_on_spark else "refuted",
    })
    station_results = {name: min((fits(name, station, f) for f in ("nvfp4", "mxfp4")), key=lambda v: -v.headroom_gib)
                       for name in STATION_MODELS}
    on_station = [n for n, v in station_results.items() if v.word == "fits"]
    kimi_word, kimi_room = station_results["Kimi K2 Thinking"].word, station_results["Kimi K2 Thinking"].headroom_gib
    kimi = by_name("Kimi K2 Thinking")
    rows.append({
        "claim": "DGX Station runs models up to 1 trillion parameters",
        "evidence": f"Kimi K2 Thinking (1.04T): NVFP4 weights {weight_bytes(kimi, 'nvfp4') / GiB:,.0f} GiB; best 4-bit "
                    f"headroom {kimi_room:+.0f} GiB of {utilization:.0%} × 784 GB — only by using the LPDDR5X beyond the 288 GB HBM",
        "verdict": "reproduced (4-bit, coherent memory)" if kimi_word == "fits" else "refuted",
    })
    rows.append({
        "claim": "…including " + ", ".join(STATION_MODELS),
        "evidence": f"fit in 4-bit at {context:,} tokens: {len(on_station)} of {len(STATION_MODELS)}"
                    + (f"; not: {', '.join(n for n in STATION_MODELS if n not in on_station)}" if len(on_station) < len(STATION_MODELS) else ""),
        "verdict": "reproduced" if len(on_station) == len(STATION_MODELS) else "partly reproduced",
    })
    return pd.DataFrame(rows)
