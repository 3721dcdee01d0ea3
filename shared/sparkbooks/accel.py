"""Zero-code-change GPU acceleration, switched on only when a GPU operation really works.

``import cudf`` succeeds on machines without a GPU, so availability is decided by running
a small cuDF computation and checking its answer, never by the import alone.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import util

from .exceptions import AcceleratorUnavailableError
from .settings import Accelerator, settings

__all__ = ["AccelStatus", "GpuProbe", "enable", "probe_gpu"]

_INSTALL_HINT = (
    "On a DGX Spark or Station create the environment with `conda env create -f environment.yml` "
    "(RAPIDS cudf/cuml for CUDA 13), then check with `sparkbooks doctor`."
)


@dataclass(frozen=True)
class GpuProbe:
    """Outcome of running one real cuDF operation."""

    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class AccelStatus:
    """Which path this process takes: ``gpu`` (cudf.pandas + cuml.accel installed) or ``cpu``."""

    path: str
    cudf_pandas: bool
    cuml_accel: bool
    reason: str

    @property
    def on_gpu(self) -> bool:
        return self.path == "gpu"

    def describe(self) -> str:
        if self.on_gpu:
            parts = [n for n, on in (("cudf.pandas", self.cudf_pandas), ("cuml.accel", self.cuml_accel)) if on]
            return f"GPU path: {' + '.join(parts)} active ({self.reason})"
        return f"CPU path: plain pandas / scikit-learn ({self.reason})"


_PROBE = "import cudf; print(int(cudf.Series([1, 2, 3]).sum()))"


@functools.lru_cache(maxsize=1)
def probe_gpu(*, timeout: float = 120) -> GpuProbe:
    """Run ``cudf.Series([1, 2, 3]).sum()`` in a child process and check that it prints 6.

    A child keeps a broken CUDA initialisation, or cuDF's own pandas import, out of the
    calling process, so ``cudf.pandas`` can still be installed cleanly afterwards.

    Examples
    --------
    >>> probe = probe_gpu()
    >>> isinstance(probe.ok, bool)
    True
    """
    start = time.perf_counter()
    if util.find_spec("cudf") is None:
        return GpuProbe(False, "RAPIDS cudf is not installed", time.perf_counter() - start)
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return GpuProbe(False, f"the cudf probe did not finish in {timeout:.0f} s", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        return GpuProbe(False, f"cudf is installed but a GPU operation failed: {last}", seconds)
    answer = done.stdout.strip().splitlines()[-1:] or [""]
    if answer[0] != "6":
        return GpuProbe(False, f"cudf returned {answer[0]!r} for 1+2+3", seconds)
    return GpuProbe(True, "cudf computed 1+2+3 on the GPU", seconds)


def enable(*, prefer: Accelerator | None = None) -> AccelStatus:
    """Install ``cudf.pandas`` and ``cuml.accel`` in this process when a GPU works.

    Parameters
    ----------
    prefer
        ``auto`` (GPU when the probe passes), ``gpu`` (raise when it does not) or ``cpu``.
        Defaults to ``settings.accelerator``.

    Returns
    -------
    AccelStatus
        The path taken and why.

    Raises
    ------
    AcceleratorUnavailableError
        ``prefer="gpu"`` and the GPU probe failed.
    """
    prefer = prefer or settings.accelerator
    if prefer == "cpu":
        return AccelStatus("cpu", False, False, "CPU requested (accelerator=cpu)")
    probe = probe_gpu()
    if not probe.ok:
        if prefer == "gpu":
            raise AcceleratorUnavailableError(f"A GPU was required but {probe.detail}. {_INSTALL_HINT}")
        return AccelStatus("cpu", False, False, f"no working GPU: {probe.detail}")
    late = [m for m in ("pandas", "sklearn") if m in sys.modules]
    cudf_pandas = _install("cudf.pandas")
    cuml_accel = _install("cuml.accel")
    reason = "GPU probe passed"
    if late:
        reason += f"; {', '.join(late)} was imported before acceleration, restart the kernel for full effect"
    return AccelStatus("gpu", cudf_pandas, cuml_accel, reason)


def _install(module: str) -> bool:
    if util.find_spec(module.split(".")[0]) is None:
        return False
    try:
        mod = __import__(module, fromlist=["install"])
        mod.install()
    except Exception:  # an accelerator that fails to install leaves the CPU implementation in place
        return False
    return True
