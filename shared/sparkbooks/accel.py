"""Zero-code-change GPU acceleration (``cudf.pandas``, ``cuml.accel``), switched on only when a GPU operation really works.

This module is the switch; :mod:`sparkbooks.devices` decides (the policy, and the cuDF probe:
``import cudf`` succeeds on machines without a GPU, so a small cuDF computation must give the
right answer).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from . import devices
from .devices import CudfProbe
from .exceptions import AcceleratorUnavailableError
from .settings import Accelerator, settings

__all__ = ["ACCELERATORS", "AccelStatus", "GpuProbe", "backend_of", "enable", "probe_gpu"]

#: The outcome of the cuDF probe (kept under its old name).
GpuProbe = CudfProbe


#: The zero-code-change accelerators, and the libraries each must be switched on *before* (it replaces them on import).
ACCELERATORS: dict[str, tuple[str, ...]] = {
    "cudf.pandas": ("pandas",),
    "cuml.accel": ("sklearn", "umap", "hdbscan"),
}


@dataclass(frozen=True)
class AccelStatus:
    """Which path this process takes: ``gpu`` (the probe passed; the requested accelerators are on) or ``cpu``."""

    path: str
    cudf_pandas: bool
    cuml_accel: bool
    reason: str

    @property
    def on_gpu(self) -> bool:
        return self.path == "gpu"

    @property
    def active(self) -> tuple[str, ...]:
        """The accelerators switched on in this process."""
        return tuple(n for n, on in (("cudf.pandas", self.cudf_pandas), ("cuml.accel", self.cuml_accel)) if on)

    def describe(self) -> str:
        if self.on_gpu:
            return f"GPU path: {' + '.join(self.active) or 'no zero-code-change accelerator'} ({self.reason})"
        return f"CPU path: no GPU accelerator switched on ({self.reason})"


def probe_gpu(*, timeout: float = 120) -> CudfProbe:
    """The cuDF probe of :func:`sparkbooks.devices.probe_cudf` (one implementation; cached there)."""
    return devices.probe_cudf(timeout=timeout)


def enable(*, prefer: Accelerator | None = None,
           accelerators: tuple[str, ...] = ("cudf.pandas", "cuml.accel")) -> AccelStatus:
    """Switch on ``accelerators`` (``cudf.pandas``, ``cuml.accel``) in this process when a GPU works.

    Parameters
    ----------
    prefer
        ``auto`` (GPU when the probe passes), ``gpu`` (raise when it does not) or ``cpu``.
        Defaults to ``settings.accelerator``.
    accelerators
        Which zero-code-change accelerators this process wants; ``()`` takes the GPU path
        without any (e.g. single-cell, whose GPU path is rapids-singlecell).

    Returns
    -------
    AccelStatus
        The path taken and why.

    Raises
    ------
    AcceleratorUnavailableError
        ``prefer="gpu"`` and the GPU probe failed; or the probe passed but an accelerator could
        not be switched on, or the library it replaces was imported before it (proxies and real
        objects would then mix: restart the kernel and import it after ``sb.begin``).
    """
    unknown = sorted(set(accelerators) - set(ACCELERATORS))
    if unknown:
        raise AcceleratorUnavailableError(f"Unknown accelerator {', '.join(unknown)}: use {', '.join(ACCELERATORS)}.")
    prefer = prefer or settings.accelerator
    if prefer == "cpu":
        return AccelStatus("cpu", False, False, "CPU requested (accelerator=cpu)")
    probe = probe_gpu()
    if not probe.ok:
        if prefer == "gpu":
            raise AcceleratorUnavailableError(f"A GPU was required but {probe.detail}. {devices._INSTALL_HINT}")
        return AccelStatus("cpu", False, False, f"no working GPU: {probe.detail}")
    on = {name: _install(name) for name in accelerators}
    return AccelStatus("gpu", on.get("cudf.pandas", False), on.get("cuml.accel", False), "GPU probe passed")


def _installed(name: str) -> bool:
    """Whether ``name`` was already switched on in this process (a notebook run again from the top)."""
    if name == "cudf.pandas":
        module = sys.modules.get("cudf.pandas")
        return bool(module is not None and getattr(module, "LOADED", False))
    return devices.cuml_accel_active()


def _install(name: str) -> bool:
    if _installed(name):
        return True
    late = [lib for lib in ACCELERATORS[name] if lib in sys.modules]
    if late:
        raise AcceleratorUnavailableError(
            f"{', '.join(late)} was imported before {name} was switched on, so this process would mix GPU proxies "
            f"and plain objects. Restart the kernel and import {late[0]} only after `sb.begin(globals())` "
            "(sparkbooks itself imports it lazily), or set SPARKBOOKS_ACCELERATOR=cpu.")
    try:
        if name == "cudf.pandas":
            import cudf.pandas  # noqa: PLC0415

            cudf.pandas.install()
        else:
            import cuml.accel  # noqa: PLC0415

            cuml.accel.install()
    except Exception as exc:  # the probe passed, so this is a broken install: say so rather than run on the CPU silently
        raise AcceleratorUnavailableError(
            f"The GPU works but {name} could not be switched on ({type(exc).__name__}: {exc}). Check that cudf and "
            f"cuml come from the same RAPIDS release (`sparkbooks doctor`), or set SPARKBOOKS_ACCELERATOR=cpu.") from exc
    return True


def backend_of(estimator: object) -> str:
    """What fitted ``estimator``: ``cuML (GPU)``, ``CPU fallback`` (cuml.accel declined it) or its CPU library.

    cuml.accel replaces estimators with proxies that run cuML when it supports the settings and fall
    back to the CPU library silently otherwise; a fitted proxy holds its GPU model only in the first case.
    """
    library = type(estimator).__module__.split(".")[0]
    proxy = sys.modules.get("cuml.accel")
    if proxy is None or not getattr(proxy, "is_proxy", lambda _: False)(estimator):
        return f"{library} (CPU)"
    return "cuML (GPU)" if getattr(estimator, "_gpu", None) is not None else f"{library} (CPU fallback)"
