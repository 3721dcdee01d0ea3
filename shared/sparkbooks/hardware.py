"""What machine is this? GPUs, unified memory, CPU cores, RAM, RAPIDS packages.

Detection only reads: it never initialises CUDA. The GPU list comes from :mod:`sparkbooks.devices`
(``nvidia-smi``, one implementation); what GPU work may run is :func:`sparkbooks.devices.probe`'s answer.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from . import devices
from .devices import GPU

__all__ = ["CPUFREQ", "Clock", "FlopsPerCycle", "GPU", "Hardware", "detect", "fp32_flops_per_cycle", "installed_version",
           "nominal_clock", "performance_cores"]

_CPUINFO = Path("/proc/cpuinfo")
_SYS_CPU = Path("/sys/devices/system/cpu")
#: Arm efficiency cores (``CPU part`` in /proc/cpuinfo): Cortex-A725 (GB10's ten), A720, A715, A55, A510, A520
_EFFICIENCY_PARTS = {"0xd87", "0xd81", "0xd4d", "0xd05", "0xd46", "0xd80"}


@dataclass(frozen=True)
class Hardware:
    """A snapshot of the machine a playbook runs on."""

    hostname: str
    system: str
    arch: str
    cpu_model: str
    cpu_cores: int
    memory_gib: float
    gpus: tuple[GPU, ...] = ()
    nvidia_smi: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)

    @property
    def has_nvidia_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def gpu_memory_gib(self) -> float | None:
        """Memory the first GPU can use: its framebuffer, or system RAM on unified-memory parts."""
        if not self.gpus:
            return None
        gpu = self.gpus[0]
        return self.memory_gib if gpu.unified_memory else gpu.memory_gib

    @property
    def platform_name(self) -> str:
        """``DGX Spark``, ``DGX Station`` or a plain description."""
        names = " ".join(g.name for g in self.gpus)
        if "GB10" in names.replace("GB100", ""):
            return "DGX Spark (GB10)"
        if "GB300" in names:
            return "DGX Station (GB300)"
        if self.gpus:
            return f"{len(self.gpus)}× {self.gpus[0].name}"
        return "CPU-only machine"

    def summary(self) -> str:
        """One line: platform, arch, cores, RAM, GPU."""
        gpu = "no NVIDIA GPU"
        if self.gpus:
            mem = self.gpu_memory_gib
            kind = "unified" if self.gpus[0].unified_memory else "dedicated"
            gpu = f"{self.gpus[0].name}, {mem:.0f} GiB {kind}" if mem else self.gpus[0].name
        return f"{self.platform_name} · {self.arch} · {self.cpu_cores} cores · {self.memory_gib:.0f} GiB RAM · {gpu}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["platform_name"] = self.platform_name
        return d


def installed_version(*dists: str) -> str | None:
    """Version of the first installed distribution among ``dists``, else ``None``."""
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


_PACKAGES = {
    "cudf": ("cudf-cu13", "cudf-cu12", "cudf"),
    "cuml": ("cuml-cu13", "cuml-cu12", "cuml"),
    "cupy": ("cupy-cuda13x", "cupy-cuda12x", "cupy"),
    "rapids-singlecell": ("rapids-singlecell-cu13", "rapids-singlecell-cu12", "rapids-singlecell"),
    "cuopt": ("cuopt-cu13", "cuopt-cu12", "cuopt"),
    "vllm": ("vllm",),
    "torch": ("torch",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "papermill": ("papermill",),
    "nbconvert": ("nbconvert",),
}


def performance_cores() -> int:
    """CPU cores worth a compute thread: the big cores of a big.LITTLE CPU, else every core this process may use.

    GB10 (DGX Spark) has 10 Cortex-X925 and 10 Cortex-A725 cores; a thread pool sized for all 20 waits
    on the slow ones at every barrier (llama.cpp's ``--threads``). Read from the kernel's
    ``cpu_capacity`` (the largest), else from ``CPU part`` in ``/proc/cpuinfo``.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    capacities = []
    for path in sorted(_SYS_CPU.glob("cpu[0-9]*/cpu_capacity")):
        try:
            capacities.append(int(path.read_text().strip()))
        except (OSError, ValueError):
            pass
    if capacities and len(set(capacities)) > 1:
        return max(1, min(usable, capacities.count(max(capacities))))
    try:
        parts = [line.split(":", 1)[1].strip().lower() for line in _CPUINFO.read_text().splitlines()
                 if line.lower().startswith("cpu part")]
    except OSError:
        parts = []
    big = [p for p in parts if p not in _EFFICIENCY_PARTS]
    if parts and big and len(big) < len(parts):
        return max(1, min(usable, len(big)))
    return usable


#: FP32 FLOPs per cycle per core of AMD cores, by ``cpu family`` (and the first model of a later core in it): the
#: vector flags alone mislead, since Zen 4 runs AVX-512 on its two 256-bit FMA pipes (32, not 64) and only Zen 5 has
#: 512-bit ones. Per-microarchitecture figures: the per-core table of stackoverflow.com/q/15655835 and A. J. Yee's
#: Zen 4 / Zen 5 AVX-512 teardowns (numberworld.org). Zen 5's mobile parts keep 256-bit pipes (32).
_AMD_FP32_PER_CYCLE: dict[int, tuple[tuple[int, int, str], ...]] = {
    0x17: ((0x00, 16, "Zen/Zen+: two 128-bit FMA pipes"), (0x30, 32, "Zen 2: two 256-bit FMA pipes")),
    0x19: ((0x00, 32, "Zen 3/Zen 4: two 256-bit FMA pipes (Zen 4 splits AVX-512 over them)"),),
    0x1A: ((0x00, 64, "Zen 5: two 512-bit FMA pipes (desktop/server parts)"),),
}


class FlopsPerCycle(NamedTuple):
    """Nominal FP32 FLOPs per cycle per core, and where the figure comes from."""

    per_cycle: int
    source: str


def fp32_flops_per_cycle(cpuinfo: str) -> FlopsPerCycle:
    """Nominal FP32 FLOPs per cycle per core, and where the figure comes from, from ``/proc/cpuinfo``'s text.

    AMD cores by family (:data:`_AMD_FP32_PER_CYCLE`); any other CPU from its widest vector flag × two FMA units,
    labelled an assumption (some Intel Xeons have one AVX-512 FMA unit; Arm cores differ per design).
    """
    import re  # noqa: PLC0415

    family = re.search(r"cpu family\s*:\s*(\d+)", cpuinfo)
    model = re.search(r"^model\s*:\s*(\d+)", cpuinfo, re.M)
    rows = _AMD_FP32_PER_CYCLE.get(int(family.group(1))) if family and "GenuineIntel" not in cpuinfo else None
    if rows:  # AMD's families 0x17-0x1A; Intel's are 6, 15 and 19
        number = int(model.group(1)) if model else 0
        _, per_cycle, core = [r for r in rows if number >= r[0]][-1]
        return FlopsPerCycle(per_cycle, f"AMD family {int(family.group(1)):#x}, {core}")
    lanes, isa = (16, "AVX-512") if re.search(r"\bavx512f\b", cpuinfo) else (8, "AVX2") \
        if re.search(r"\bavx2\b", cpuinfo) else (4, "SSE/NEON")
    return FlopsPerCycle(2 * lanes * 2, f"{isa}, two FMA units assumed")


#: Where Linux's cpufreq publishes a core's clocks (absent in most VMs).
CPUFREQ = "/sys/devices/system/cpu/cpu0/cpufreq"


class Clock(NamedTuple):
    """A CPU clock in GHz and where it was read."""

    ghz: float
    source: str


def nominal_clock(cpuinfo: str, *, cpufreq: str | None = CPUFREQ) -> Clock | None:
    """The clock a nominal CPU peak multiplies by: a fixed figure, never the moment's frequency.

    In order: cpufreq's ``cpuinfo_max_freq`` (the highest clock the cores can run, so boost never lifts a timing
    above the nominal peak), its ``base_frequency``, the "@ 2.60GHz" in Intel's model name, and only then the
    largest ``cpu MHz`` in ``/proc/cpuinfo`` — a core's current frequency on bare metal (it moves with load and power
    saving), the host's fixed clock in a VM — labelled as such. ``None`` when none is found.
    """
    import re  # noqa: PLC0415

    for name, label in (("cpuinfo_max_freq", "cpufreq's maximum clock"), ("base_frequency", "cpufreq's base clock")):
        try:
            khz = float(Path(cpufreq, name).read_text().strip()) if cpufreq else 0.0
        except (OSError, ValueError):
            continue
        if khz > 0:
            return Clock(khz / 1e6, label)
    named = re.search(r"model name\s*:.*@\s*([0-9.]+)\s*GHz", cpuinfo)
    if named:
        return Clock(float(named.group(1)), "the clock in the CPU's model name")
    listed = [float(v) for v in re.findall(r"cpu MHz\s*:\s*([0-9.]+)", cpuinfo)]
    if not listed:
        return None
    return Clock(max(listed) / 1e3, "the largest 'cpu MHz' in /proc/cpuinfo: no cpufreq clock here — a VM's host "
                                    "clock, or a core's current frequency on bare metal")


#: (implementer, part) → core name, from Linux's arch/arm64/include/asm/cputype.h; arm64's /proc/cpuinfo has no
#: "model name" line, so a DGX Spark is named by its cores (10× Cortex-X925 + 10× Cortex-A725) or it reads "aarch64".
_ARM_PARTS = {(0x41, 0xD85): "Cortex-X925", (0x41, 0xD87): "Cortex-A725", (0x41, 0xD4F): "Neoverse-V2",
              (0x41, 0xD40): "Neoverse-V1", (0x41, 0xD49): "Neoverse-N2", (0x41, 0xD0C): "Neoverse-N1",
              (0x41, 0xD82): "Cortex-X4", (0x41, 0xD81): "Cortex-A720", (0x41, 0xD80): "Cortex-A520"}


def _arm_core_types(cpuinfo: str) -> str | None:
    """``'10× Cortex-X925 + 10× Cortex-A725'`` from arm64 cpuinfo's per-core "CPU implementer" / "CPU part" lines."""
    from collections import Counter  # noqa: PLC0415

    cores: Counter[str] = Counter()
    implementer = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        try:
            if key == "cpu implementer":
                implementer = int(value, 16)
            elif key == "cpu part" and implementer is not None:
                part = int(value, 16)
                cores[_ARM_PARTS.get((implementer, part), f"Arm part {part:#x} (implementer {implementer:#x})")] += 1
        except ValueError:
            continue
    return " + ".join(f"{n}× {name}" for name, n in cores.most_common()) or None


def _cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's name: x86's "model name", else arm64 core types counted, else what the platform module says."""
    if cpuinfo is None:
        try:
            with open(_CPUINFO) as fh:
                cpuinfo = fh.read()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return _arm_core_types(cpuinfo) or platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


@functools.lru_cache(maxsize=1)
def detect() -> Hardware:
    """Detect the machine once per process (cached).

    Examples
    --------
    >>> hw = detect()
    >>> hw.cpu_cores >= 1
    True
    """
    return Hardware(
        hostname=socket.gethostname(),
        system=f"{platform.system()} {platform.release()}",
        arch=platform.machine(),
        cpu_model=_cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        memory_gib=_memory_gib(),
        gpus=devices.gpus(),
        nvidia_smi=devices.nvidia_smi(),
        packages={name: installed_version(*dists) for name, dists in _PACKAGES.items()},
    )
