"""The planner against numbers worked out by hand."""

import pytest

from sparkbooks import memory, sources
from sparkbooks.llm import llamacpp
from sparkbooks.exceptions import InputError
from sparkbooks.memory import GiB, NEMOTRON_3_NANO as NANO


def test_weights_by_hand():
    assert memory.weight_bytes(NANO, "bf16") == pytest.approx(31.6e9 * 2)
    assert memory.weight_bytes(NANO, "fp8") == pytest.approx(31.6e9)
    assert memory.weight_bytes(NANO, "nvfp4") == pytest.approx(31.6e9 * 4.5 / 8)  # 17.775 GB
    assert memory.weight_bytes(NANO, "mxfp4") == pytest.approx(31.6e9 * 4.25 / 8)
    with pytest.raises(InputError, match="formats: bf16"):
        memory.weight_bytes(NANO, "int3")


def test_kv_cache_by_hand():
    # 2 (K,V) × 6 attention layers × 2 KV heads × 128 dims × 2 bytes = 6,144 bytes per token
    assert memory.kv_cache_bytes(NANO, context=1) == 6144
    assert memory.kv_cache_bytes(NANO, context=131_072) == 6144 * 131_072  # 0.75 GiB
    assert memory.kv_cache_bytes(NANO, context=8192, sequences=4, kv_bytes=1) == 3072 * 8192 * 4


def test_mamba_state_is_per_sequence_not_per_token():
    per_layer = 64 * 64 * 128 + (64 * 64 + 2 * 8 * 128) * 3  # 542,720 elements
    assert memory.state_bytes(NANO) == 23 * per_layer * 2
    assert memory.state_bytes(NANO, sequences=8) == 8 * memory.state_bytes(NANO)


def test_fit_table_headroom_uses_the_utilisation_budget():
    table = memory.fit_table(NANO, formats=("bf16",), contexts=(131_072,), utilization=0.8)
    row = table.iloc[0]
    need = (31.6e9 * 2 + 6144 * 131_072 + memory.state_bytes(NANO)) / GiB
    assert row["total_GiB"] == pytest.approx(need, abs=0.01)
    assert row["DGX Spark headroom_GiB"] == pytest.approx(0.8 * 119.7 - need, abs=0.01)


def test_stand_in_numbers_come_from_its_gguf_header(cache):
    path = sources.fetch(llamacpp.STAND_IN_SOURCE)
    gguf = memory.arch_from_gguf(path)
    arch, stored = gguf.arch, gguf.weight_bytes
    assert (arch.n_layers, arch.n_kv_heads, arch.head_dim, arch.max_context) == (30, 3, 64, 8192)
    assert 134e6 < arch.total_params < 135e6
    assert stored < path.stat().st_size  # tensor data, without the header and vocabulary
