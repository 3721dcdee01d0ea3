import os
import stat

from sparkbooks import hardware


def _fake_smi(tmp_path, lines: str):
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{lines}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_this_machine_is_detected():
    hw = hardware.detect()
    assert hw.cpu_cores == os.cpu_count()
    assert hw.memory_gib > 0.5
    assert hw.packages["pandas"]
    assert str(hw.cpu_cores) in hw.summary()


def test_gb10_unified_memory_is_read_from_system_ram(tmp_path):
    smi = _fake_smi(tmp_path, "0, NVIDIA GB10, [N/A], 580.95.05, 12.1")
    gpus = hardware._query_gpus(smi)
    assert gpus == (hardware.GPU(0, "NVIDIA GB10", None, True, "580.95.05", "12.1"),)
    hw = hardware.Hardware("spark", "Linux", "aarch64", "Cortex-X925", 20, 119.7, gpus=gpus)
    assert hw.platform_name == "DGX Spark (GB10)"
    assert hw.gpu_memory_gib == 119.7
    assert "unified" in hw.summary()


def test_discrete_gpu_reports_its_own_memory(tmp_path):
    smi = _fake_smi(tmp_path, "0, NVIDIA H200, 143771, 570.1, 9.0\n1, NVIDIA H200, 143771, 570.1, 9.0")
    gpus = hardware._query_gpus(smi)
    assert len(gpus) == 2 and not gpus[0].unified_memory
    hw = hardware.Hardware("h", "Linux", "x86_64", "x", 16, 128, gpus=gpus)
    assert round(hw.gpu_memory_gib) == 140 and hw.platform_name == "2× NVIDIA H200"


def test_broken_nvidia_smi_means_no_gpu(tmp_path):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    assert hardware._query_gpus(str(script)) == ()
