"""One device policy: whether, and where, GPU work runs in this process.

Every domain asks this module — never ``torch.cuda``, ``nvidia-smi``, Warp or cuDF on its own
(``tests/test_devices.py`` scans the package and the notebooks' code for any other GPU predicate).
The first question probes once per process (cached); the answer honours
``SPARKBOOKS_ACCELERATOR`` (:data:`sparkbooks.settings.settings.accelerator`):

``cpu``   no GPU work: nothing initialises CUDA (``nvidia-smi``'s list is still read), every
          :func:`use_gpu` is ``False``, :func:`torch_device` is ``"cpu"``.
``auto``  each kind of GPU work runs where its own probe passed, the CPU otherwise.
``gpu``   as ``auto``, but :func:`torch_device`/:func:`warp_device` with ``prefer="auto"`` and
          :func:`require` raise :class:`~sparkbooks.exceptions.AcceleratorUnavailableError`
          instead of falling back to the CPU.

How each capability is measured (never by an import alone; :mod:`sparkbooks.device_probe` does it,
:mod:`sparkbooks.device_report` holds the answer, this module is the policy and its questions):

* the GPUs: ``nvidia-smi``'s list (reads, initialises nothing);
* torch CUDA: in a child process, ``torch.cuda`` counts the devices and sums four 2s on the first
  (it must get 8); its name, compute capability, BF16, NCCL; Warp's CUDA devices in the same child.
  Skipped when no NVIDIA driver is present (no ``nvidia-smi`` list and no ``/dev/nvidiactl``);
* cuDF: in a child process, ``cudf.Series([1, 2, 3]).sum()`` must print 6 (``import cudf``
  succeeds without a GPU; its first operation fails);
* cuML accel: whether ``cuml.accel`` is switched on in this process (:func:`cuml_accel_active`,
  asked live: ``python -m cuml.accel`` and ``%load_ext cuml.accel`` switch it on without us);
* available memory: ``MemAvailable`` from ``/proc/meminfo`` on CPUs and on unified-memory GPUs
  (GB10: ``cudaMemGetInfo`` omits reclaimable page cache there), free device memory otherwise.

API
---
``probe() -> Devices``                  the frozen report (cached per process and policy)
``refresh(report=None) -> None``        forget it (or install ``report``, e.g. a faked GB10 in a test)
``use_gpu(kind) -> bool``               whether GPU work of ``kind`` runs here (:data:`KINDS`: cuda, torch,
                                        nccl, warp, cudf, cuml, rapids_singlecell, cugraph, cuopt)
``require(kind) -> None``               raise, naming the reason and the fix, when it cannot
``torch_device(prefer="auto") -> str``  ``"cuda"`` or ``"cpu"`` for torch work
``warp_device(prefer="auto") -> str``   ``"cuda:0"`` or ``"cpu"`` for Warp work
``cuda_device_count() -> int``          torch CUDA devices this policy lets a job use (0 under ``cpu``)
``dist_backend(ranks_per_node) -> str`` ``nccl`` when every rank of this node gets its own CUDA device, else ``gloo``
``available_bytes(device) -> float``    memory a new allocation on ``device`` (``cpu``/``cuda``) can take now
``cuml_accel_active() -> bool``         ``cuml.accel`` is switched on in this process
``probe_cudf() -> CudfProbe``           the cuDF probe itself (cached; what :mod:`sparkbooks.accel` switches on)
``gpus() -> tuple[GPU, ...]``           ``nvidia-smi``'s list (cached; what :mod:`sparkbooks.hardware` reports)

Examples
--------
>>> from sparkbooks import devices
>>> report = devices.probe()
>>> devices.torch_device() in ("cpu", "cuda")
True
>>> devices.use_gpu("torch") == (report.policy != "cpu" and report.torch_cuda > 0)
True
>>> print(report.summary())  # doctest: +SKIP
GPU: NVIDIA GB10 (sm 12.1, unified memory) · torch CUDA 1 device, NCCL · cuDF yes · Warp CUDA 1 · 104 GiB available
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import replace
from importlib import util  # noqa: F401  (tests hide a library through devices.util.find_spec)
from pathlib import Path

from . import device_probe
from .device_probe import CUDF_PROBE as _CUDF_PROBE  # noqa: F401  (the contract test scans it here)
from .device_probe import GPU, CudfProbe, cuml_accel_active, gpus, nvidia_smi, probe_cudf
from .device_probe import installed as _installed
from .device_probe import _query_gpus  # noqa: F401  (kept where tests and callers found it)
from .device_probe import shares_os_memory as _shares_os_memory
from .device_report import KINDS, Devices
from .exceptions import AcceleratorUnavailableError, InputError
from .settings import settings

__all__ = ["CudfProbe", "Devices", "GPU", "KINDS", "available_bytes", "cuda_device_count", "cuml_accel_active",
           "dist_backend", "gpus", "nvidia_smi", "probe", "probe_cudf", "refresh", "require", "torch_device",
           "use_gpu", "warp_device"]

#: GPU libraries whose installation the report lists (module names).
_LIBRARIES = ("torch", "warp", "cudf", "cuml", "cupy", "rapids_singlecell", "nx_cugraph", "cuopt")

_INSTALL_HINT = ("On a DGX Spark or Station create the environment with `conda env create -f environment.yml` "
                 "(CUDA torch, RAPIDS for CUDA 13), then check with `sparkbooks doctor`.")

_MEMINFO = Path("/proc/meminfo")

#: the cached report, and whether a test installed it
_state: dict[str, Devices | bool | None] = {"report": None, "installed": False}


# ---- memory ---------------------------------------------------------------------------------------------------------

def _mem_available() -> float:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def available_bytes(device: str = "cpu") -> float:
    """Memory a new allocation on ``device`` can take now, in bytes.

    ``cpu`` and unified-memory GPUs (GB10): ``MemAvailable`` from ``/proc/meminfo``, which counts
    reclaimable page cache (``cudaMemGetInfo`` does not, and under-reports once model files fill the
    cache — vLLM and llama.cpp read ``/proc/meminfo`` on GB10 for this reason). A GPU with its own
    memory: ``cudaMemGetInfo``'s free bytes.
    """
    if device == "cpu":
        return _mem_available()
    if not device.startswith("cuda"):
        raise InputError(f"device must be 'cpu' or 'cuda[:N]', not {device!r}.")
    report = probe()
    if report.unified_memory:
        return _mem_available()
    import torch  # noqa: PLC0415

    index = int(device.split(":")[1]) if ":" in device else 0
    return float(torch.cuda.mem_get_info(index)[0])


# ---- the report -----------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _pool():
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparkbooks-cudf-probe")


def _probe() -> Devices:
    start = time.perf_counter()
    policy = settings.accelerator
    listed = gpus()
    installed = tuple(name for name in _LIBRARIES if _installed(name))
    reasons: dict[str, str] = {}
    report = Devices(policy=policy, gpus=listed, installed=installed, cuml_accel=cuml_accel_active(),
                     unified_memory=_shares_os_memory(listed[0] if listed else None, None))
    if policy == "cpu":
        reasons = {k: "CPU requested (SPARKBOOKS_ACCELERATOR=cpu)" for k in ("torch", "warp", "cudf")}
        return replace(report, available_bytes=_mem_available(), reasons=tuple(reasons.items()),
                       seconds=time.perf_counter() - start)
    cudf_running = _pool().submit(probe_cudf)  # its own child process, beside torch's
    torch_cuda, name, cc, bf16, nccl, warp_cuda, free = 0, None, None, False, False, 0, None
    if not device_probe.driver_present(listed):
        no_driver = "no NVIDIA driver (" + ("nvidia-smi lists no GPU" if nvidia_smi() else "no nvidia-smi") + \
                    f", no {device_probe.DRIVER_NODE})"
        reasons.update(torch=no_driver, warp=no_driver)
    elif "torch" not in installed:
        reasons["torch"] = "torch is not installed"
        reasons["warp"] = "Warp is not installed" if "warp" not in installed else "not probed without torch"
    else:
        found = device_probe.torch_and_warp(warp="warp" in installed)
        if "torch" in found:
            t = found["torch"]
            torch_cuda, name, cc, bf16, nccl = t["count"], t["name"], t["cc"], t["bf16"], t["nccl"]
            free = float(t["free"])
        else:
            reasons["torch"] = found.get("torch_error", "torch sees no CUDA device")
        warp_cuda = int(found.get("warp", 0) or 0)
        if not warp_cuda:
            reasons["warp"] = found.get("warp_error", "Warp is not installed")
    cudf = cudf_running.result()
    if not cudf.ok:
        reasons["cudf"] = cudf.detail
    unified = _shares_os_memory(listed[0] if listed else None, name)
    if torch_cuda and not unified and free is not None:
        memory, source = free, "cudaMemGetInfo free bytes"
    else:
        memory = _mem_available()
        source = "/proc/meminfo MemAvailable" + (" (unified memory)" if unified and (torch_cuda or cudf.ok) else "")
    return replace(report, torch_cuda=torch_cuda, cuda_name=name, compute_capability=cc or (
        listed[0].compute_capability if listed else None), unified_memory=unified, bf16=bf16, nccl=nccl,
        warp_cuda=warp_cuda, cudf=cudf.ok, available_bytes=memory, memory_source=source,
        reasons=tuple(reasons.items()), seconds=time.perf_counter() - start)


def probe() -> Devices:
    """The device report for this process: probed on first use, then cached.

    The policy is read each time (``settings.accelerator``); a report probed under ``cpu`` probed
    nothing, so it is probed again when the policy moves off ``cpu``.
    """
    report = _state["report"]
    policy = settings.accelerator
    if report is None or (report.policy == "cpu" and policy != "cpu" and not _state["installed"]):
        report = _state["report"] = _probe()
    if report.policy != policy:
        report = _state["report"] = replace(report, policy=policy)
    return report


def refresh(report: Devices | None = None) -> None:
    """Forget the cached report (the next :func:`probe` probes again), or install ``report`` in its place.

    ``report`` is for tests and demonstrations, e.g. a faked GB10:
    ``devices.refresh(devices.Devices(torch_cuda=1, cuda_name="NVIDIA GB10", unified_memory=True))``.
    """
    device_probe.forget()
    _state["report"], _state["installed"] = report, report is not None


def use_gpu(kind: str) -> bool:
    """Whether GPU work of ``kind`` runs in this process (one of :data:`KINDS`): the policy allows it and its probe passed."""
    return probe().can(kind)


def require(kind: str) -> None:
    """Raise :class:`~sparkbooks.exceptions.AcceleratorUnavailableError` (reason and fix) unless ``kind`` runs on the GPU."""
    report = probe()
    if not report.can(kind):
        raise AcceleratorUnavailableError(f"GPU work '{kind}' ({KINDS[kind]}) cannot run here: "
                                          f"{report.reason(kind)}. {_INSTALL_HINT}")


def torch_device(prefer: str = "auto") -> str:
    """The torch device for new work: ``"cuda"`` when the policy and the probe allow it, else ``"cpu"``.

    ``prefer="cpu"`` always gives ``"cpu"``; ``"cuda"``/``"cuda:N"`` is returned as asked when
    torch CUDA works (raises otherwise); ``"auto"`` picks — and under ``SPARKBOOKS_ACCELERATOR=gpu``
    raises rather than fall back.
    """
    return _device("torch", prefer, gpu="cuda")


def warp_device(prefer: str = "auto") -> str:
    """Warp's device: ``"cuda:0"`` (or the ``cuda:N`` asked for) when Warp's CUDA works under the policy, else ``"cpu"``."""
    return _device("warp", prefer, gpu="cuda:0")


def _device(kind: str, prefer: str, *, gpu: str) -> str:
    """One rule for every library's device name: ``gpu`` (its name for the first GPU) or ``"cpu"``, as the policy allows."""
    if prefer == "cpu":
        return "cpu"
    if prefer != "auto" and not prefer.startswith("cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {prefer!r}.")
    if prefer.startswith("cuda") or settings.accelerator == "gpu":
        require(kind)
        return gpu if prefer in ("auto", "cuda") else prefer
    return gpu if use_gpu(kind) else "cpu"


def cuda_device_count() -> int:
    """torch CUDA devices this policy lets work use on this machine (0 under ``cpu`` or without CUDA)."""
    report = probe()
    return report.torch_cuda if report.can("torch") else 0


def dist_backend(ranks_per_node: int = 1) -> str:
    """``nccl`` when NCCL works and each of this node's ``ranks_per_node`` ranks gets its own CUDA device, else ``gloo``."""
    return "nccl" if use_gpu("nccl") and ranks_per_node <= cuda_device_count() else "gloo"
