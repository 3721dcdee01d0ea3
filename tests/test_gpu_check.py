"""`make gpu-check` on a machine without a GPU: every part skipped with the policy's reason, exit 0; parts isolated."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(tmp_path, *args, env_extra=None):
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO / "shared"), **(env_extra or {})}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "report.json"), *args],
                          capture_output=True, text=True, timeout=240, env=env)
    return done, json.loads((tmp_path / "report.json").read_text())


def _load():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_every_part_is_skipped_with_a_reason(tmp_path):
    from sparkbooks import devices

    if devices.probe().cuda_works:
        import pytest

        pytest.skip("this machine has a GPU Warp can use")
    done, report = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    gpu_check = _load()
    assert list(report["parts"]) == list(gpu_check.PARTS)
    for name, entry in report["parts"].items():
        assert entry["status"] == "skipped" and entry["reason"].startswith(f"needs {gpu_check.PARTS[name].needs}: "), name
    assert report["gpu"] == "none" and "Spark" not in done.stdout


def test_the_cpu_policy_skips_every_part_even_where_a_gpu_works(tmp_path):
    done, report = _run(tmp_path, env_extra={"SPARKBOOKS_ACCELERATOR": "cpu"})
    assert done.returncode == 0
    assert {e["status"] for e in report["parts"].values()} == {"skipped"}
    assert all("SPARKBOOKS_ACCELERATOR=cpu" in e["reason"] for e in report["parts"].values())


def test_a_crash_or_a_hang_costs_only_its_own_part(tmp_path):
    done, report = _run(tmp_path, "--selftest")
    parts = report["parts"]
    assert parts["selftest_crash"]["status"] == "failed" and "died" in parts["selftest_crash"]["error"]
    assert parts["selftest_hang"]["status"] == "failed" and "timed out after 2 s" in parts["selftest_hang"]["error"]
    assert parts["selftest_ok"]["status"] == "ok" and done.returncode == 1


def test_every_torch_gpu_path_has_a_part_and_the_gpu_is_named_by_its_own_name():
    gpu_check = _load()
    assert {"pretrain_bf16_nvfp4", "nvfp4_cpu_vs_cuda", "lora_step", "rsl_rl_chunks", "nccl_sweep", "cudf_pandas",
            "cuml_umap_hdbscan", "embeddings_minilm"} <= set(gpu_check.PARTS)
    from sparkbooks import devices

    devices.refresh(devices.Devices(torch_cuda=1, cuda_name="NVIDIA GB10", compute_capability="12.1",
                                    unified_memory=True, installed=("torch",)))
    try:
        head = gpu_check.header()
    finally:
        devices.refresh()
    assert head["gpu"] == "NVIDIA GB10" and "Spark" not in json.dumps(head)
