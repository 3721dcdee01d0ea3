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

How each capability is decided (never by an import alone):

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
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib import util
from pathlib import Path

from .exceptions import AcceleratorUnavailableError, InputError
from .settings import settings

__all__ = ["CudfProbe", "Devices", "GPU", "KINDS", "available_bytes", "cuda_device_count", "cuml_accel_active",
           "dist_backend", "gpus", "probe", "probe_cudf", "refresh", "require", "torch_device", "use_gpu",
           "warp_device"]

#: The kinds of GPU work :func:`use_gpu` answers for, and what each needs.
KINDS: dict[str, str] = {
    "cuda": "some library computes on a CUDA device (torch, cuDF or Warp)",
    "torch": "torch computes on a CUDA device",
    "nccl": "torch on CUDA with the NCCL backend",
    "warp": "NVIDIA Warp sees a CUDA device",
    "cudf": "a cuDF operation gives the right answer (cudf.pandas)",
    "cuml": "cuML installed and cuDF works (cuml.accel)",
    "rapids_singlecell": "rapids-singlecell installed and cuDF works",
    "cugraph": "nx-cugraph installed and CUDA works",
    "cuopt": "cuOpt installed and CUDA works",
}

#: GPU libraries whose installation the report lists (module names).
_LIBRARIES = ("torch", "warp", "cudf", "cuml", "cupy", "rapids_singlecell", "nx_cugraph", "cuopt")

_INSTALL_HINT = ("On a DGX Spark or Station create the environment with `conda env create -f environment.yml` "
                 "(CUDA torch, RAPIDS for CUDA 13), then check with `sparkbooks doctor`.")

# GB10 (DGX Spark) and GB300 (DGX Station) share CPU and GPU memory: nvidia-smi reports
# no framebuffer size ("[N/A]" or "Not Supported"), so the system RAM is the GPU's memory.
_UNIFIED_MARKERS = ("GB10", "GB200", "GB300", "GH200")
_MEMINFO = Path("/proc/meminfo")
_DRIVER_NODE = Path("/dev/nvidiactl")


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


@dataclass(frozen=True)
class Devices:
    """What GPU work this process may run, decided once (see :func:`probe`).

    ``torch_cuda``/``warp_cuda`` count the CUDA devices that computed in the probe; ``cudf`` is
    the cuDF probe's verdict; ``cuml_accel`` whether cuml.accel was on when probed (ask
    :func:`cuml_accel_active` for now); ``available_bytes`` is memory a new allocation could take
    when probed (``memory_source`` says from where); ``reasons`` say why a capability is off.
    """

    policy: str = "auto"
    gpus: tuple[GPU, ...] = ()
    torch_cuda: int = 0
    cuda_name: str | None = None
    compute_capability: str | None = None
    unified_memory: bool = False
    bf16: bool = False
    nccl: bool = False
    warp_cuda: int = 0
    cudf: bool = False
    cuml_accel: bool = False
    installed: tuple[str, ...] = ()
    available_bytes: float = 0.0
    memory_source: str = "/proc/meminfo MemAvailable"
    reasons: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @property
    def gpu_name(self) -> str | None:
        """The GPU's own name (torch's, else nvidia-smi's); never a guessed product name."""
        return self.cuda_name or (self.gpus[0].name if self.gpus else None)

    @property
    def cuda_works(self) -> bool:
        """Some library computed on a CUDA device in the probe."""
        return bool(self.torch_cuda or self.cudf or self.warp_cuda)

    def can(self, kind: str) -> bool:
        """Whether GPU work of ``kind`` runs under this report's policy (see :data:`KINDS`)."""
        _check_kind(kind)
        if self.policy == "cpu":
            return False
        lib = {"cuml": "cuml", "rapids_singlecell": "rapids_singlecell", "cugraph": "nx_cugraph",
               "cuopt": "cuopt"}.get(kind)
        if lib is not None and lib not in self.installed:
            return False
        return {"cuda": self.cuda_works, "torch": self.torch_cuda > 0, "nccl": self.torch_cuda > 0 and self.nccl, "warp": self.warp_cuda > 0,
                "cudf": self.cudf, "cuml": self.cudf, "rapids_singlecell": self.cudf,
                "cugraph": self.cuda_works, "cuopt": self.cuda_works}[kind]

    def reason(self, kind: str) -> str:
        """Why ``kind`` runs on the GPU or not, in words."""
        _check_kind(kind)
        if self.policy == "cpu":
            return "CPU requested (SPARKBOOKS_ACCELERATOR=cpu)"
        if self.can(kind):
            return f"{KINDS[kind]}: {self.gpu_name or 'a CUDA device'}"
        lib = {"cuml": "cuml", "rapids_singlecell": "rapids_singlecell", "cugraph": "nx_cugraph",
               "cuopt": "cuopt"}.get(kind)
        if lib is not None and lib not in self.installed:
            return f"{lib} is not installed"
        why = dict(self.reasons)
        key = {"nccl": "torch", "cuml": "cudf", "rapids_singlecell": "cudf"}.get(kind, kind)
        if kind == "nccl" and self.torch_cuda:
            return "torch was built without NCCL"
        if kind in ("cugraph", "cuopt", "cuda"):
            return "no library computed on a CUDA device (" + "; ".join(why.values()) + ")"
        return why.get(key, f"no {KINDS[kind]}")

    def summary(self) -> str:
        """One line for the session banner."""
        if self.policy == "cpu":
            return "CPU only (SPARKBOOKS_ACCELERATOR=cpu)" + (f"; {self.gpu_name} not used" if self.gpu_name else "")
        memory = f"{self.available_bytes / 2**30:.0f} GiB available"
        if not self.cuda_works:
            return f"no GPU computes here ({dict(self.reasons).get('torch', 'no CUDA device')}) · {memory}"
        parts = [f"GPU: {self.gpu_name} (sm {self.compute_capability or '?'}"
                 + (", unified memory)" if self.unified_memory else ")")]
        if self.torch_cuda:
            parts.append(f"torch CUDA {self.torch_cuda} device{'s' if self.torch_cuda > 1 else ''}"
                         + (", NCCL" if self.nccl else ""))
        parts.append(f"cuDF {'yes' if self.cudf else 'no'}")
        if self.cuml_accel:
            parts.append("cuml.accel on")
        if self.warp_cuda:
            parts.append(f"Warp CUDA {self.warp_cuda}")
        parts.append(memory)
        return " · ".join(parts)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = dict(self.reasons)
        out["gpu_name"] = self.gpu_name
        return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"No GPU work kind {kind!r}: use one of {', '.join(KINDS)}.")


#: the cached answers: the report (and whether a test installed it), the cuDF probe
_state: dict[str, Devices | CudfProbe | bool | None] = {"report": None, "installed": False, "cudf": None}


# ---- nvidia-smi -----------------------------------------------------------------------------------------------------

def _parse_memory(text: str) -> float | None:
    try:
        return float(text) / 1024  # MiB -> GiB
    except ValueError:
        return None  # "[N/A]", "Not Supported"


def _query_gpus(smi: str) -> tuple[GPU, ...]:
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


def _shares_os_memory(gpu: GPU | None, name: str | None) -> bool:
    """The GPU allocates from the OS's memory (GB10): no framebuffer of its own."""
    label = name or (gpu.name if gpu else "")
    return (gpu is not None and gpu.memory_gib is None) or "GB10" in label.replace("GB100", "")


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


# ---- probes ---------------------------------------------------------------------------------------------------------

_CUDF_PROBE = "import cudf; print(int(cudf.Series([1, 2, 3]).sum()))"

_TORCH_PROBE = r"""
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


def probe_cudf(*, timeout: float = 120) -> CudfProbe:
    """Run ``cudf.Series([1, 2, 3]).sum()`` in a child process and check that it prints 6.

    A child keeps a broken CUDA initialisation, or cuDF's own pandas import, out of the calling
    process, so ``cudf.pandas`` can still be installed cleanly afterwards. Cached (whatever the timeout).
    """
    if _state["cudf"] is None:
        _state["cudf"] = _probe_cudf(timeout)
    return _state["cudf"]


def _probe_cudf(timeout: float) -> CudfProbe:
    start = time.perf_counter()
    if not _installed("cudf"):
        return CudfProbe(False, "RAPIDS cudf is not installed", time.perf_counter() - start)
    done, failure = _child(["-c", _CUDF_PROBE], timeout)
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


def _probe_torch_and_warp(timeout: float = 180) -> dict:
    """torch CUDA and Warp CUDA, measured in one child process."""
    args = ["-c", _TORCH_PROBE] + (["--warp"] if _installed("warp") else [])
    done, failure = _child(args, timeout)
    if done is None:
        return {"torch_error": f"the torch probe {failure}"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("SPARKBOOKS_PROBE "):
            return json.loads(line.removeprefix("SPARKBOOKS_PROBE "))
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"torch_error": f"the torch probe crashed: {last}"}


def _installed(name: str) -> bool:
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
    driver = bool(listed) or _DRIVER_NODE.exists()
    cudf_running = _pool().submit(probe_cudf)  # its own child process, beside torch's
    torch_cuda, name, cc, bf16, nccl, warp_cuda, free = 0, None, None, False, False, 0, None
    if not driver:
        no_driver = "no NVIDIA driver (" + ("nvidia-smi lists no GPU" if nvidia_smi() else "no nvidia-smi") + \
                    f", no {_DRIVER_NODE})"
        reasons.update(torch=no_driver, warp=no_driver)
    elif "torch" not in installed:
        reasons["torch"] = "torch is not installed"
        reasons["warp"] = "Warp is not installed" if "warp" not in installed else "not probed without torch"
    else:
        found = _probe_torch_and_warp()
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
    gpus.cache_clear()
    _state["cudf"] = None
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
