"""The machine measured, not quoted: STREAM-triad memory bandwidth (numpy on the CPU, CuPy on the GPU) and a
one-operation "hello GPU" (a matrix product on both, results compared).

A DGX Spark's 273 GB/s is a specification; what one process reaches is what the memory-bound steps of every other
guide can use. The triad ``a = b + s·c`` is STREAM's (McCalpin): it counts 24 bytes per element (read b, read c,
write a). numpy computes it in two passes (``a = s·c``, then ``a += b``), so the memory really moves ≈ 40 bytes per
element and the STREAM figure understates numpy's bandwidth; it is still the number a numpy user gets. On the GPU a
single CuPy elementwise kernel does it in one pass. numpy runs on one core: one Arm or x86 core cannot fill a
server's memory bus, so the CPU figure is per-core, not the machine's peak.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import devices
from ..exceptions import InputError

__all__ = ["HelloGpu", "SPEC_GBPS", "STREAM_BYTES_PER_ELEMENT", "Triad", "gpu_runs", "hello_gpu", "last_level_cache_bytes",
           "spec_gbps", "stream_elements", "triad"]

#: What STREAM counts for a triad element: read b, read c, write a (float64).
STREAM_BYTES_PER_ELEMENT = 24
#: Memory bandwidth by the maker's specification, GB/s, by a word in the GPU's name, the first match winning (so the
#: specific name before the general): DGX Spark's GB10 (LPDDR5X), DGX Station's GB300 (its 288 GB of HBM3e; the
#: LPDDR5X behind it is slower) and the data-centre GPUs `make gpu-check` is run on (H100 SXM's HBM3, H100 PCIe's
#: HBM2e, H100 NVL's and H200's HBM3e; GH200 480GB's HBM3 and 144GB's HBM3e), from NVIDIA's datasheets.
SPEC_GBPS: dict[str, float] = {"GB10": 273.0, "GB300": 8000.0, "GH200 144G": 4900.0, "GH200": 4000.0,
                               "H100 NVL": 3900.0, "H100 PCIe": 2000.0, "H100": 3350.0, "H200": 4800.0}


def spec_gbps(gpu_name: str | None) -> float | None:
    """The specified memory bandwidth of the GPU named ``gpu_name`` (:data:`SPEC_GBPS`), else ``None``."""
    return next((v for k, v in SPEC_GBPS.items() if gpu_name and k in gpu_name), None)


@dataclass(frozen=True)
class Triad:
    """Bandwidth of ``repeats`` repeats (each the best of ``trials`` triads, as STREAM reports the best of its NTIMES = 10),
    in GB/s (10⁹ B/s)."""

    device: str
    elements: int
    gbps: tuple[float, ...]
    seconds: float
    passes: int
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.gbps)

    @property
    def spread(self) -> float:
        """Largest distance of one repeat from the median, as a share of the median (0.05 = ±5 %)."""
        return max(abs(g - self.median) for g in self.gbps) / self.median

    def describe(self) -> str:
        return (f"{self.device}: {self.median:.1f} GB/s (STREAM triad, {self.elements:,} float64 per array, median of "
                f"{len(self.gbps)} repeats, each within ±{self.spread:.1%}; {self.passes} pass{'es' if self.passes > 1 else ''}"
                f" over memory; {self.seconds:.1f} s)")


def _gpu_module():
    """CuPy when the device policy lets CUDA work run here and CuPy is installed; else ``None``."""
    if not devices.use_gpu("cuda"):
        return None
    try:
        import cupy  # noqa: PLC0415
    except ImportError:
        return None
    return cupy


def gpu_runs() -> bool:
    """Whether :func:`triad` and :func:`hello_gpu` can use the GPU here (device policy, and CuPy installed)."""
    return _gpu_module() is not None


def stream_elements(requested: int, cache_bytes: int) -> int:
    """Elements per array for a triad past a cache of ``cache_bytes``: STREAM's rule asks each array to be at least
    four times the last-level cache, so ``requested`` is raised to the next power of two that is (float64)."""
    needed = 4 * cache_bytes // 8
    return requested if requested >= needed else 1 << (needed - 1).bit_length()


def last_level_cache_bytes() -> int:
    """The CPU's largest cache (bytes) as Linux reports it under ``/sys`` (index3 is usually L3); 0 where unreadable."""
    from pathlib import Path  # noqa: PLC0415

    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KMG")) * scale)
        except ValueError:
            continue
    return max(sizes, default=0)


def triad(elements: int = 2**24, *, repeats: int = 5, trials: int = 10, device: str = "cpu",
          budget_s: float = 10.0) -> Triad:
    """Measure ``a = b + s·c`` bandwidth on ``device`` (``cpu``: numpy; ``gpu``: CuPy); stop early past ``budget_s``.

    Raises
    ------
    InputError
        Fewer than 2**20 elements (caches would answer, not memory), fewer than 3 repeats, an unknown device,
        or ``gpu`` where no GPU can run CuPy here.
    """
    if elements < 2**20:
        raise InputError(f"elements={elements:,} fits in caches: use at least 2**20 (8 MiB per array).")
    if repeats < 3 or trials < 1:
        raise InputError(f"repeats must be ≥ 3 (a spread needs several) and trials ≥ 1; got {repeats}, {trials}.")
    if device not in ("cpu", "gpu"):
        raise InputError(f"device must be 'cpu' or 'gpu'. Got {device!r}.")
    xp = np if device == "cpu" else _gpu_module()
    if xp is None:
        raise InputError(f"No GPU runs CuPy here: {devices.probe().reason('cuda')}.")
    # STREAM's rule on either side: a GB300's L2 or a Grace CPU's L3 (~114 MB) is about as large as 128 MiB
    cache = (xp.cuda.runtime.getDeviceProperties(xp.cuda.runtime.getDevice())["l2CacheSize"] if device == "gpu"
             else last_level_cache_bytes())
    elements = stream_elements(elements, cache)
    scalar = 3.0
    b = xp.ones(elements, dtype=xp.float64)
    c = xp.full(elements, 2.0, dtype=xp.float64)
    a = xp.empty_like(b)
    if device == "gpu":
        kernel = xp.ElementwiseKernel("float64 b, float64 c, float64 s", "float64 a", "a = b + s * c", "sparkbooks_triad")
        begin, end = xp.cuda.Event(), xp.cuda.Event()

        def run() -> float:  # CUDA events time the kernel, not the launch and the host's wait (~0.2 ms on a GB300)
            begin.record()
            kernel(b, c, scalar, a)
            end.record()
            end.synchronize()
            return xp.cuda.get_elapsed_time(begin, end) / 1e3
    else:
        def run() -> float:
            t0 = time.perf_counter()
            np.multiply(c, scalar, out=a)
            np.add(a, b, out=a)
            return time.perf_counter() - t0
    run()  # first touch: page faults and kernel compilation are not bandwidth
    start = time.perf_counter()
    gbps = []
    for _ in range(repeats):
        best = float("inf")
        for _ in range(trials):
            best = min(best, run())
        gbps.append(STREAM_BYTES_PER_ELEMENT * elements / best / 1e9)
        if time.perf_counter() - start > budget_s and len(gbps) >= 3:
            break
    assert float(a[-1]) == 1.0 + scalar * 2.0, "the triad computed a wrong value"
    name = "CPU (numpy, 1 core)" if device == "cpu" else f"GPU ({devices.probe().gpu_name or 'CUDA'}, CuPy)"
    return Triad(name, elements, tuple(gbps), time.perf_counter() - start, 2 if device == "cpu" else 1)


@dataclass(frozen=True)
class HelloGpu:
    """One matrix product on the CPU and (where one runs) the GPU: seconds, GFLOP/s and how far the results differ."""

    n: int
    cpu_s: float
    gpu_s: float | None = None
    max_rel_diff: float | None = None
    gpu_name: str | None = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gflops(self) -> dict[str, float]:
        flops = 2 * self.n**3
        out = {"cpu": flops / self.cpu_s / 1e9}
        if self.gpu_s:
            out["gpu"] = flops / self.gpu_s / 1e9
        return out

    def describe(self) -> str:
        text = f"{self.n}×{self.n} float32 matrix product: CPU {self.cpu_s * 1e3:.0f} ms ({self.gflops['cpu']:.0f} GFLOP/s)"
        if self.gpu_s is None:
            return text + f"; GPU not run ({self.reason})"
        return (text + f"; GPU {self.gpu_s * 1e3:.1f} ms ({self.gflops['gpu']:.0f} GFLOP/s, {self.gpu_name}) — "
                f"{self.cpu_s / self.gpu_s:.0f}× faster; results differ by at most {self.max_rel_diff:.1e} (relative)")


def hello_gpu(n: int = 2048, *, seed: int = 0, repeats: int = 3) -> HelloGpu:
    """``A @ B`` for two seeded ``n × n`` float32 matrices, timed (best of ``repeats`` after one warm-up) on the CPU
    and, where the device policy lets CUDA work run and CuPy is installed, on the GPU; the GPU's product is compared
    with the CPU's (largest element difference over the largest element)."""
    if not 64 <= n <= 32768:
        raise InputError(f"n={n} is outside 64 … 32768: a matrix side that times something and fits in memory.")
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    expected = a @ b
    cpu_s = best(lambda: a @ b)
    cupy = _gpu_module()
    if cupy is None:
        return HelloGpu(n, cpu_s, reason=devices.probe().reason("cuda") if devices.probe().policy != "cpu"
                        else "CPU requested (SPARKBOOKS_ACCELERATOR=cpu)")
    ga, gb = cupy.asarray(a), cupy.asarray(b)

    def on_gpu():
        out = ga @ gb
        cupy.cuda.runtime.deviceSynchronize()
        return out

    gpu_s = best(on_gpu)
    got = cupy.asnumpy(on_gpu())
    diff = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
    return HelloGpu(n, cpu_s, gpu_s, diff, devices.probe().gpu_name or "CUDA GPU", "CuPy")
