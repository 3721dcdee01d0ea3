"""NVIDIA's NVFP4 and capacity claims, each checked by arithmetic or by a measured experiment."""

from __future__ import annotations

from .memory import CLAIM_DEVICES, GiB, Verdict, verdict, weight_bytes
from .models import FRONTIER, NATIVE_FORMATS, by_name
from ..quant.formats import FORMATS

__all__ = ["NVFP4_RECIPE", "STATION_MODELS", "check_claims"]

#: The NVFP4 recipe judged (weight-only, per-block scale search) and its yardstick.
NVFP4_RECIPE, YARDSTICK = "NVFP4 + MSE scales", "FP8"
STATION_MODELS = ("Kimi K2 Thinking", "DeepSeek-V3.2", "Mistral Large 3 675B", "Llama 4 Maverick 17B-128E",
                  "Qwen3-235B-A22B", "gpt-oss-120b", "Nemotron 3 Ultra 550B-A55B")


def _best_4bit(name: str, device, **kw) -> Verdict:
    """The roomiest of the model's 4-bit options: NVFP4, MXFP4, and its own published format if it has one."""
    formats = {"nvfp4", "mxfp4", NATIVE_FORMATS.get(name, "nvfp4")}
    return max((verdict(by_name(name), f, device, **kw) for f in sorted(formats)), key=lambda v: v.headroom_gib)


def _intelligence_row(intelligence) -> dict:
    from ..quant.evaluate import paired_ratio  # noqa: PLC0415 - torch-free, but keeps claims importable without it

    s = intelligence.summary
    nv, fp8 = s.loc[NVFP4_RECIPE], s.loc[YARDSTICK]
    r = paired_ratio(intelligence.per_doc, NVFP4_RECIPE, YARDSTICK)
    ratio, low, high = r.value, r.low, r.high
    pct = lambda r, col: f"{100 * (r[col] - 1):+.1f}% [{100 * (r[col + '_low'] - 1):+.1f}, {100 * (r[col + '_high'] - 1):+.1f}]"  # noqa: E731
    evidence = (f"SmolLM2-135M vs its Q4_1-derived baseline, {intelligence.tokens:,} held-out tokens: perplexity FP8 "
                f"{pct(fp8, 'ppl_ratio')}, NVFP4 (weight-only, MSE scales) {pct(nv, 'ppl_ratio')}; top-1 agreement "
                f"{fp8['top1']:.3f} vs {nv['top1']:.3f}; NVFP4's KL is {ratio:.1f}× FP8's (95% CI {low:.1f}–{high:.1f})")
    if high < 1.0:
        word = "NVFP4 loses less than FP8 (KL ratio CI below 1)"
    elif low > 1.0:
        word = ("not reproduced by post-training quantisation of a 135M model: NVFP4 loses measurably more than FP8 "
                "(NVIDIA's claim concerns calibrated / QAD checkpoints of large models)")
    else:  # an interval that includes 1 shows the run cannot tell, not that NVFP4 is as good
        word = (f"not decided: the KL ratio's interval [{low:.2f}, {high:.2f}] includes 1 — more articles "
                "(-p n_docs 64) narrow it")
    return {"claim": "… without losing intelligence", "evidence": evidence, "verdict": word}


def _speed(v: Verdict) -> str:
    return f"≤{v.tokens_per_s:,.0f} tok/s" if v.tokens_per_s == v.tokens_per_s else "—"


def check_claims(intelligence, *, context: int, sequences: int = 1, kv_bytes: float = 2.0,
                 utilization: float | None = None):
    """One row per claim: what NVIDIA says, what was computed or measured, and the verdict.

    ``intelligence`` is :func:`sparkbooks.quant.evaluate.compare_recipes`'s result (it must include the
    ``NVFP4 + MSE scales`` and ``FP8`` recipes), or None to leave that claim unjudged. Capacity
    verdicts use each model's published BF16-kept layers; an unknown KV cache never counts as fitting;
    the Station is judged on its HBM alone and with offload to its LPDDR5X, with decode-speed bounds.
    """
    import pandas as pd  # noqa: PLC0415

    spark, two_sparks, station_hbm, station = CLAIM_DEVICES
    kw = {"context": context, "sequences": sequences, "kv_bytes": kv_bytes, "utilization": utilization}
    saving_bf16 = 1 - FORMATS["nvfp4"].bits_per_weight / 16
    saving_fp8 = 1 - FORMATS["nvfp4"].bits_per_weight / 8
    rows = [{
        "claim": "NVFP4 compresses models by up to 70%",
        "evidence": f"4.5 bits/weight incl. scales: {saving_bf16:.1%} smaller than BF16, {saving_fp8:.1%} smaller than FP8 "
                    "(less in real checkpoints, which keep some layers in BF16)",
        "verdict": "reproduced (against BF16)",
    }]
    rows.append(_intelligence_row(intelligence) if intelligence is not None else
                {"claim": "… without losing intelligence", "evidence": "not measured in this run", "verdict": "not judged"})

    big_on_spark = {a.name: _best_4bit(a.name, spark, **kw) for a in FRONTIER if a.total_params >= 100e9}
    fitting = {n: v for n, v in big_on_spark.items() if v.word == "fits"}
    unknown = [n for n, v in big_on_spark.items() if v.word == "KV unknown"]
    rows.append({
        "claim": "DGX Spark runs 100B+-parameter models",
        "evidence": f"in 4-bit at {context:,} tokens: " + (", ".join(f"{n} ({_speed(v)})" for n, v in fitting.items()) or "none")
                    + " fit one Spark" + (f"; not counted (KV cache unknown): {', '.join(unknown)}" if unknown else ""),
        "verdict": "reproduced (4-bit only)" if fitting else "refuted",
    })
    kimi = by_name("Kimi K2 Thinking")
    native = NATIVE_FORMATS[kimi.name]
    on_hbm, offloaded = verdict(kimi, native, station_hbm, **kw), verdict(kimi, native, station, **kw)
    rows.append({
        "claim": "DGX Station runs models up to 1 trillion parameters",
        "evidence": f"Kimi K2 Thinking (1.04T) as published ({native}, BF16 non-expert layers): weights "
                    f"{weight_bytes(kimi, native) / GiB:,.0f} GiB; GPU memory alone: {on_hbm}; with the LPDDR5X: {offloaded}",
        "verdict": ("reproduced in HBM" if on_hbm.word == "fits" else
                    f"only with offload to CPU memory ({_speed(offloaded)} bound)" if offloaded.word == "fits with offload"
                    else "refuted"),
    })
    results = {name: (_best_4bit(name, station_hbm, **kw), _best_4bit(name, station, **kw)) for name in STATION_MODELS}
    in_hbm = [n for n, (h, _) in results.items() if h.word == "fits"]
    with_offload = [n for n, (h, o) in results.items() if h.word != "fits" and o.word == "fits with offload"]
    rest = [n for n in STATION_MODELS if n not in in_hbm and n not in with_offload]
    rows.append({
        "claim": "…including " + ", ".join(STATION_MODELS),
        "evidence": f"4-bit at {context:,} tokens — in HBM: {', '.join(in_hbm) or 'none'}; only with offload: "
                    f"{', '.join(with_offload) or 'none'}" + (f"; neither or KV unknown: {', '.join(rest)}" if rest else ""),
        "verdict": ("reproduced in HBM" if len(in_hbm) == len(STATION_MODELS) else
                    f"{len(in_hbm)} of {len(STATION_MODELS)} in HBM, {len(with_offload)} more only with offload"),
    })
    return pd.DataFrame(rows)
