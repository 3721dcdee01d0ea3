"""The planner against numbers worked out by hand."""

import pytest

from sparkbooks import sources
from sparkbooks.fit import memory
from sparkbooks.llm import llamacpp
from sparkbooks.exceptions import InputError
from sparkbooks.fit.memory import GiB, NEMOTRON_3_NANO as NANO


def test_weights_by_hand():
    assert memory.weight_bytes(NANO, "bf16") == pytest.approx(31.6e9 * 2)
    assert memory.weight_bytes(NANO, "fp8", mixed=False) == pytest.approx(31.6e9)
    assert memory.weight_bytes(NANO, "nvfp4", mixed=False) == pytest.approx(31.6e9 * 4.5 / 8)  # 17.775 GB
    # The published NVFP4 checkpoint keeps 1.077B parameters (attention, the Mamba layers feeding it, embeddings) in BF16
    assert memory.weight_bytes(NANO, "nvfp4") == pytest.approx(1.077e9 * 2 + (31.6e9 - 1.077e9) * 4.5 / 8)
    assert memory.weight_bytes(NANO, "mxfp4", mixed=False) == pytest.approx(31.6e9 * 4.25 / 8)
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
    need = (31.6e9 * 2 + 6144 * 131_072 + memory.state_bytes(NANO)) / GiB  # BF16: nothing is kept apart
    assert row["total_GiB"] == pytest.approx(need, abs=0.01)
    assert row["DGX Spark headroom_GiB"] == pytest.approx(0.8 * 119.7 - need, abs=0.01)


def test_stand_in_numbers_come_from_its_gguf_header(cache):
    path = sources.fetch(llamacpp.STAND_IN_SOURCE)
    gguf = memory.arch_from_gguf(path)
    arch, stored = gguf.arch, gguf.weight_bytes
    assert (arch.n_layers, arch.n_kv_heads, arch.head_dim, arch.max_context) == (30, 3, 64, 8192)
    assert 134e6 < arch.total_params < 135e6
    assert stored < path.stat().st_size  # tensor data, without the header and vocabulary


def _write_gguf(path, arch: str, fields: dict) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in fields.items():
        if isinstance(value, list):
            writer.add_array(f"{arch}.{key}", value)
        else:
            writer.add_uint32(f"{arch}.{key}", value)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_hybrid_gguf_counts_attention_and_state_layers(tmp_path):
    """Today's reader took every block as attention with one head_count_kv: a nemotron_h file read as 6 KV layers of 0 heads."""
    path = tmp_path / "hybrid.gguf"
    # 6 blocks: Mamba, MLP, attention, Mamba, MLP, attention (nemotron_h writes per-layer arrays)
    _write_gguf(path, "nemotron_h", {
        "block_count": 6, "embedding_length": 256, "context_length": 4096, "attention.head_count": 4,
        "attention.head_count_kv": [0, 0, 2, 0, 0, 2], "attention.key_length": 64,
        "feed_forward_length": [0, 512, 0, 0, 512, 0],
        "ssm.state_size": 16, "ssm.inner_size": 512, "ssm.group_count": 2, "ssm.conv_kernel": 4,
    })
    arch = memory.arch_from_gguf(path).arch
    assert (arch.n_attention_layers, arch.n_kv_heads, arch.head_dim, arch.n_state_layers) == (2, 2, 64, 2)
    assert memory.kv_cache_bytes(arch, context=1) == 2 * 2 * 2 * 64 * 2
    assert memory.state_bytes(arch) == 2 * (512 * 16 + (512 + 2 * 2 * 16) * 3) * 4  # llama.cpp keeps it in F32


def test_sliding_window_gguf_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "swa.gguf"
    _write_gguf(path, "gemma3", {"block_count": 4, "embedding_length": 256, "attention.head_count": 4,
                                 "attention.head_count_kv": 1, "attention.sliding_window": 512})
    with pytest.raises(InputError, match="sliding window.*n_window_layers"):
        memory.arch_from_gguf(path)
