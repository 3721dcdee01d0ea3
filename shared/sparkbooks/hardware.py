"""What machine is this? GPUs, unified memory, CPU cores, RAM, RAPIDS packages.

Detection only reads: it never initialises CUDA (that is :mod:`sparkbooks.accel`'s probe).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata

__all__ = ["GPU", "Hardware", "detect", "installed_version"]

# GB10 (DGX Spark) and GB300 (DGX Station) share CPU and GPU memory: nvidia-smi reports
# no framebuffer size ("[N/A]" or "Not Supported"), so the system RAM is the GPU's memory.
_UNIFIED_MARKERS = ("GB10", "GB200", "GB300", "GH200")


@dataclass(frozen=True)
class GPU:
    """One NVIDIA GPU as ``nvidia-smi`` reports it."""

    index: int
    name: str
    memory_gib: float | None
    unified_memory: bool
    driver: str
    compute_capability: str


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


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def _parse_memory(text: str) -> float | None:
    try:
        return float(text) / 1024  # MiB -> GiB
    except ValueError:
        return None  # "[N/A]", "Not Supported"


def _query_gpus(smi: str) -> tuple[GPU, ...]:
    fields = "index,name,memory.total,driver_version,compute_cap"
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=15, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, mem, driver, cc = parts
        memory = _parse_memory(mem)
        unified = memory is None or any(m in name for m in _UNIFIED_MARKERS)
        gpus.append(GPU(int(index), name, memory, unified, driver, cc))
    return tuple(gpus)


@functools.lru_cache(maxsize=1)
def detect() -> Hardware:
    """Detect the machine once per process (cached).

    Examples
    --------
    >>> hw = detect()
    >>> hw.cpu_cores >= 1
    True
    """
    smi = shutil.which("nvidia-smi")
    return Hardware(
        hostname=socket.gethostname(),
        system=f"{platform.system()} {platform.release()}",
        arch=platform.machine(),
        cpu_model=_cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        memory_gib=_memory_gib(),
        gpus=_query_gpus(smi) if smi else (),
        nvidia_smi=smi,
        packages={name: installed_version(*dists) for name, dists in _PACKAGES.items()},
    )
