"""The device report: what GPU work this process may run, and why, in words (:class:`Devices`).

:mod:`sparkbooks.devices` builds one per process from :mod:`sparkbooks.device_probe`'s measurements and
the policy (``SPARKBOOKS_ACCELERATOR``); this module only reads it: :meth:`Devices.can` answers for each
kind of GPU work (:data:`KINDS`), :meth:`Devices.reason` says why, :meth:`Devices.summary` is the banner's line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .device_probe import GPU
from .exceptions import InputError

__all__ = ["Devices", "KINDS", "check_kind"]

#: The kinds of GPU work :func:`sparkbooks.devices.use_gpu` answers for, and what each needs.
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

#: the Python modules each library-backed kind needs installed (rapids-singlecell imports cupy without requiring it)
_LIBRARIES_OF = {"cuml": ("cuml",), "rapids_singlecell": ("rapids_singlecell", "cupy"), "cugraph": ("nx_cugraph",),
                 "cuopt": ("cuopt",)}


@dataclass(frozen=True)
class Devices:
    """What GPU work this process may run, decided once (see :func:`sparkbooks.devices.probe`).

    ``torch_cuda``/``warp_cuda`` count the CUDA devices that computed in the probe; ``cudf`` is
    the cuDF probe's verdict; ``cuml_accel`` whether cuml.accel was on when probed (ask
    :func:`sparkbooks.devices.cuml_accel_active` for now); ``available_bytes`` is memory a new allocation could take
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
        check_kind(kind)
        if self.policy == "cpu":
            return False
        if self._missing(kind):
            return False
        return {"cuda": self.cuda_works, "torch": self.torch_cuda > 0, "nccl": self.torch_cuda > 0 and self.nccl, "warp": self.warp_cuda > 0,
                "cudf": self.cudf, "cuml": self.cudf, "rapids_singlecell": self.cudf,
                "cugraph": self.cuda_works, "cuopt": self.cuda_works}[kind]

    def _missing(self, kind: str) -> list[str]:
        """The modules ``kind`` needs that the report did not find installed."""
        return [lib for lib in _LIBRARIES_OF.get(kind, ()) if lib not in self.installed]

    def reason(self, kind: str) -> str:
        """Why ``kind`` runs on the GPU or not, in words."""
        check_kind(kind)
        if self.policy == "cpu":
            return "CPU requested (SPARKBOOKS_ACCELERATOR=cpu)"
        if self.can(kind):
            return f"{KINDS[kind]}: {self.gpu_name or 'a CUDA device'}"
        missing = self._missing(kind)
        if missing:
            return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
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
        """The report as JSON-ready data (reasons as a mapping, the GPU's name added): what results files keep."""
        out = asdict(self)
        out["reasons"] = dict(self.reasons)
        out["gpu_name"] = self.gpu_name
        return out


def check_kind(kind: str) -> None:
    """Refuse a kind of GPU work :data:`KINDS` does not name, listing the ones it does."""
    if kind not in KINDS:
        raise InputError(f"No GPU work kind {kind!r}: use one of {', '.join(KINDS)}.")
