"""How each GPU capability is measured — never by an import alone; :mod:`sparkbooks.devices` asks, and decides.

* the GPUs: ``nvidia-smi``'s list (:func:`gpus`; reads, initialises nothing);
* torch CUDA and Warp CUDA: one child process (:func:`torch_and_warp`) counts torch's devices and sums
  four 2s on the first (it must get 8), reads its name, compute capability, BF16, NCCL and free memory,
  and counts Warp's CUDA devices;
* cuDF: a child process runs ``cudf.Series([1, 2, 3]).sum()``, which must print 6 (:func:`probe_cudf`;
  ``import cudf`` succeeds without a GPU, its first operation fails);
* cuML accel: whether ``cuml.accel`` is switched on in this process (:func:`cuml_accel_active`, asked live).

Children keep a broken CUDA initialisation (or cuDF's own pandas import) out of the calling process.
This module imports no GPU library itself.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import util
from pathlib import Path

__all__ = ["CUDF_PROBE", "CudfProbe", "DRIVER_NODE", "GPU", "TORCH_PROBE", "cuml_accel_active", "driver_present",
           "forget", "gpus", "installed", "nvidia_smi", "probe_cudf", "shares_os_memory", "torch_and_warp"]

# GB10 (DGX Spark) and GB300 (DGX Station) share CPU and GPU memory: nvidia-smi reports
# no framebuffer size ("[N/A]" or "Not Supported"), so the system RAM is the GPU's memory.
_UNIFIED_MARKERS = ("GB10", "GB200", "GB300", "GH200")
#: the NVIDIA driver's control node: present wherever the kernel driver is loaded
DRIVER_NODE = Path("/dev/nvidiactl")


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
class CudfProbe:
    """Outcome of running one real cuDF operation in a child process."""

    ok: bool
    detail: str
    seconds: float


# ---- nvidia-smi -----------------------------------------------------------------------------------------------------

def _parse_memory(text: str) -> float | None:
    try:
        return float(text) / 1024  # MiB -> GiB
    except ValueError:
        return None  # "[N/A]", "Not Supported"


def _query_gpus(smi: str) -> tuple[GPU, ...]:
    """The GPUs the ``nvidia-smi`` at path ``smi`` lists (empty when it fails)."""
    fields = "index,name,memory.total,driver_version,compute_cap"
    try:
        out = subprocess.run([smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=15, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, mem, driver, cc = parts
        memory = _parse_memory(mem)
        unified = memory is None or any(m in name for m in _UNIFIED_MARKERS)
        found.append(GPU(int(index), name, memory, unified, driver, cc))
    return tuple(found)


def nvidia_smi() -> str | None:
    """Path of ``nvidia-smi``, or ``None``."""
    return shutil.which("nvidia-smi")


@functools.lru_cache(maxsize=1)
def gpus() -> tuple[GPU, ...]:
    """The GPUs ``nvidia-smi`` lists (cached; initialises no CUDA context)."""
    smi = nvidia_smi()
    return _query_gpus(smi) if smi else ()


def driver_present(listed: tuple[GPU, ...]) -> bool:
    """An NVIDIA driver is loaded: ``nvidia-smi`` listed a GPU, or the driver's control node exists."""
    return bool(listed) or DRIVER_NODE.exists()


def shares_os_memory(gpu: GPU | None, name: str | None) -> bool:
    """The GPU allocates from the OS's memory (GB10): no framebuffer of its own."""
    label = name or (gpu.name if gpu else "")
    return (gpu is not None and gpu.memory_gib is None) or "GB10" in label.replace("GB100", "")


# ---- child processes ------------------------------------------------------------------------------------------------

CUDF_PROBE = "import cudf; print(int(cudf.Series([1, 2, 3]).sum()))"

TORCH_PROBE = r"""
import json, sys
out = {}
try:
    import torch
except Exception as err:
    out["torch_error"] = f"torch does not import ({type(err).__name__}: {err})"
else:
    try:
        if torch.version.cuda is None:
            out["torch_error"] = f"torch {torch.__version__} is a CPU build"
        elif not torch.cuda.is_available():
            out["torch_error"] = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
        else:
            if float(torch.full((4,), 2.0, device="cuda").sum()) != 8.0:
                out["torch_error"] = "torch computed a wrong sum on the GPU"
            else:
                p = torch.cuda.get_device_properties(0)
                free, total = torch.cuda.mem_get_info(0)
                import torch.distributed as dist
                out["torch"] = {"count": torch.cuda.device_count(), "name": p.name, "cc": f"{p.major}.{p.minor}",
                                "integrated": bool(getattr(p, "is_integrated", False)),
                                "bf16": bool(torch.cuda.is_bf16_supported()), "free": free, "total": total,
                                "nccl": bool(dist.is_available() and dist.is_nccl_available())}
    except Exception as err:
        out["torch_error"] = f"torch's CUDA failed ({type(err).__name__}: {err})"
if "--warp" in sys.argv:
    try:
        import warp as wp
        wp.config.quiet = True
        wp.init()
        out["warp"] = int(wp.get_cuda_device_count())
        if not out["warp"]:
            out["warp_error"] = "Warp sees no CUDA device"
    except Exception as err:
        out["warp_error"] = f"Warp failed ({type(err).__name__}: {err})"
print("SPARKBOOKS_PROBE " + json.dumps(out))
"""


def _child(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess | None, str]:
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout), ""
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {timeout:.0f} s"
    except OSError as err:
        return None, str(err)


#: the cuDF probe's cached answer (one per process; :func:`forget` clears it)
_cudf: dict[str, CudfProbe] = {}


def probe_cudf(*, timeout: float = 120) -> CudfProbe:
    """Run ``cudf.Series([1, 2, 3]).sum()`` in a child process and check that it prints 6.

    A child keeps a broken CUDA initialisation, or cuDF's own pandas import, out of the calling
    process, so ``cudf.pandas`` can still be installed cleanly afterwards. Cached (whatever the timeout).
    """
    if "answer" not in _cudf:
        _cudf["answer"] = _probe_cudf(timeout)
    return _cudf["answer"]


def _probe_cudf(timeout: float) -> CudfProbe:
    start = time.perf_counter()
    if not installed("cudf"):
        return CudfProbe(False, "RAPIDS cudf is not installed", time.perf_counter() - start)
    done, failure = _child(["-c", CUDF_PROBE], timeout)
    seconds = time.perf_counter() - start
    if done is None:
        return CudfProbe(False, f"the cudf probe {failure}", seconds)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        return CudfProbe(False, f"cudf is installed but a GPU operation failed: {last}", seconds)
    answer = done.stdout.strip().splitlines()[-1:] or [""]
    if answer[0] != "6":
        return CudfProbe(False, f"cudf returned {answer[0]!r} for 1+2+3", seconds)
    return CudfProbe(True, "cudf computed 1+2+3 on the GPU", seconds)


def torch_and_warp(*, warp: bool, timeout: float = 180) -> dict:
    """torch CUDA (and Warp CUDA when ``warp``), measured in one child process.

    Returns the child's findings: ``torch`` (count, name, cc, integrated, bf16, free, total, nccl) or
    ``torch_error``; ``warp`` (CUDA devices) and/or ``warp_error``.
    """
    done, failure = _child(["-c", TORCH_PROBE] + (["--warp"] if warp else []), timeout)
    if done is None:
        return {"torch_error": f"the torch probe {failure}"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("SPARKBOOKS_PROBE "):
            return json.loads(line.removeprefix("SPARKBOOKS_PROBE "))
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"torch_error": f"the torch probe crashed: {last}"}


def installed(name: str) -> bool:
    """Whether module ``name`` can be imported (a module already imported without a spec counts)."""
    try:
        return util.find_spec(name) is not None
    except ValueError:  # in sys.modules with __spec__ None
        return name in sys.modules


def cuml_accel_active() -> bool:
    """Whether ``cuml.accel`` is switched on in this process (by :func:`sparkbooks.accel.enable`,
    ``python -m cuml.accel`` or ``%load_ext cuml.accel``) — asked now, not cached."""
    module = sys.modules.get("cuml.accel")
    return bool(module is not None and getattr(module, "enabled", lambda: False)())


def forget() -> None:
    """Drop the cached ``nvidia-smi`` list and cuDF answer: the next question measures again."""
    gpus.cache_clear()
    _cudf.clear()
