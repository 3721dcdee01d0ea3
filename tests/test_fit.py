"""The frontier catalogue, fit verdicts and claims against hand arithmetic."""

import pandas as pd
import pytest

from sparkbooks import claims, memory, model_specs
from sparkbooks.exceptions import InputError
from sparkbooks.memory import GiB


def test_mla_caches_one_latent_per_layer():
    kimi = model_specs.by_name("Kimi K2 Thinking")
    assert memory.kv_cache_bytes(kimi, context=1) == 61 * 576 * 2
    ds = model_specs.by_name("DeepSeek-V3.2")
    assert memory.kv_cache_bytes(ds, context=1, kv_bytes=1) == 61 * (576 + 128)


def test_windowed_layers_stop_growing_at_their_window():
    oss = model_specs.by_name("gpt-oss-120b")
    per_layer_token = 2 * 8 * 64 * 2
    assert memory.kv_cache_bytes(oss, context=100) == 36 * 100 * per_layer_token
    assert memory.kv_cache_bytes(oss, context=32_768) == (18 * 32_768 + 18 * 128) * per_layer_token
    maverick = model_specs.by_name("Llama 4 Maverick 17B-128E")
    assert memory.kv_cache_bytes(maverick, context=65_536) == (12 * 65_536 + 36 * 8_192) * 2 * 8 * 128 * 2


def test_verdicts_by_hand():
    kimi = model_specs.by_name("Kimi K2 Thinking")
    station = memory.CLAIM_DEVICES[2]
    v = memory.verdict(kimi, "nvfp4", station, context=32_768, utilization=0.8)
    word, room = v.word, v.headroom_gib
    need = 1.04e12 * 4.5 / 8 + 61 * 576 * 2 * 32_768
    assert word == "fits" and room == pytest.approx((0.8 * 784e9 - need) / GiB)
    assert memory.verdict(kimi, "fp8", station, context=32_768).word == "does not fit"


def test_short_context_verdict():
    qwen = model_specs.by_name("Qwen3-235B-A22B")
    two = memory.CLAIM_DEVICES[1]
    # NVFP4 weights 123 GiB; at 1M tokens the 188 KiB/token cache no longer fits two Sparks, at 8k it does
    assert memory.verdict(qwen, "nvfp4", two, context=1_000_000).word == "short context only"


def test_unknown_attention_layout_is_weights_only():
    super_ = model_specs.by_name("Nemotron 3 Super 120B-A12B")
    table = memory.verdict_table([super_], formats=("nvfp4",), context=131_072)
    assert pd.isna(table.loc[0, "kv_GiB"])
    with pytest.raises(InputError, match="Models: Nemotron 3 Nano"):
        model_specs.by_name("GPT-5")


def test_every_catalogue_entry_names_its_source():
    for arch in model_specs.FRONTIER:
        assert len(arch.source) > 30 and arch.active_params < arch.total_params, arch.name


def test_claims_follow_the_measurements():
    good = {"recall@10": 0.99, "cosine_mean": 0.995}
    bad = {"recall@10": 0.8, "cosine_mean": 0.97}
    assert claims.check_claims(good, context=32_768).loc[1, "verdict"] == "reproduced for this model"
    table = claims.check_claims(bad, context=32_768)
    assert table.loc[1, "verdict"].startswith("not reproduced")
    assert table.loc[0, "evidence"].startswith("4.5 bits/weight incl. scales: 71.9% smaller than BF16")
    assert "gpt-oss-120b" in table.loc[2, "evidence"]
    long = claims.check_claims(bad, context=1_000_000, sequences=64)
    assert long.loc[4, "verdict"] == "partly reproduced"  # at a million tokens × 64 some no longer fit
