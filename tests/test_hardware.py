import os
import stat

from sparkbooks import devices, hardware


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
    gpus = devices._query_gpus(smi)
    assert gpus == (hardware.GPU(0, "NVIDIA GB10", None, True, "580.95.05", "12.1"),)
    hw = hardware.Hardware("spark", "Linux", "aarch64", "Cortex-X925", 20, 119.7, gpus=gpus)
    assert hw.platform_name == "DGX Spark (GB10)"
    assert hw.gpu_memory_gib == 119.7
    assert "unified" in hw.summary()


def test_discrete_gpu_reports_its_own_memory(tmp_path):
    smi = _fake_smi(tmp_path, "0, NVIDIA H200, 143771, 570.1, 9.0\n1, NVIDIA H200, 143771, 570.1, 9.0")
    gpus = devices._query_gpus(smi)
    assert len(gpus) == 2 and not gpus[0].unified_memory
    hw = hardware.Hardware("h", "Linux", "x86_64", "x", 16, 128, gpus=gpus)
    assert round(hw.gpu_memory_gib) == 140 and hw.platform_name == "2× NVIDIA H200"


def test_broken_nvidia_smi_means_no_gpu(tmp_path):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    assert devices._query_gpus(str(script)) == ()


def test_performance_cores_skip_gb10s_efficiency_cores(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(f"processor\t: {i}\nCPU part\t: {'0xd85' if i < 10 else '0xd87'}\n\n" for i in range(20)))
    monkeypatch.setattr(hardware, "_CPUINFO", cpuinfo)
    monkeypatch.setattr(hardware, "_SYS_CPU", tmp_path / "none")
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(20)), raising=False)
    assert hardware.performance_cores() == 10  # 10 Cortex-X925, not the 10 Cortex-A725
    sysfs = tmp_path / "sys"
    for i in range(20):
        (sysfs / f"cpu{i}").mkdir(parents=True)
        (sysfs / f"cpu{i}" / "cpu_capacity").write_text("1024" if i % 2 else "600")
    monkeypatch.setattr(hardware, "_SYS_CPU", sysfs)
    assert hardware.performance_cores() == 10
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n")
    monkeypatch.setattr(hardware, "_SYS_CPU", tmp_path / "none")
    assert hardware.performance_cores() == 20  # one kind of core: every core this process may use


def test_a_spark_is_named_by_its_core_types_not_aarch64():
    # arm64's /proc/cpuinfo has no "model name": a GB10 lists 10 Cortex-X925 and 10 Cortex-A725 cores by part number
    block = "processor\t: {i}\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: {part}\n\n"
    gb10 = "".join(block.format(i=i, part="0xd85" if i < 10 else "0xd87") for i in range(20))
    assert hardware._cpu_model(gb10) == "10× Cortex-X925 + 10× Cortex-A725"
    unknown = block.format(i=0, part="0xabc")
    assert "part 0xabc" in hardware._cpu_model(unknown)
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 9554 64-Core Processor\nflags\t: fpu\n"
    assert hardware._cpu_model(x86) == "AMD EPYC 9554 64-Core Processor"
