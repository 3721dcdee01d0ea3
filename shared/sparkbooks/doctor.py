"""The ``sparkbooks doctor`` report: machine, GPU probe, packages, what would be accelerated."""

from __future__ import annotations

import platform
import shutil
from typing import Any

from . import devices
from .hardware import detect
from .settings import settings

__all__ = ["report"]

#: (workload, package, how, the devices kind that decides it)
_ACCELERATED = (
    ("pandas", "cudf", "cudf.pandas", "cudf"),
    ("scikit-learn, umap-learn, hdbscan", "cuml", "cuml.accel", "cuml"),
    ("scanpy (single-cell)", "rapids-singlecell", "rapids_singlecell", "rapids_singlecell"),
    ("LP / MILP solvers", "cuopt", "cuOpt", "cuopt"),
    ("torch (training, embeddings)", "torch", "torch CUDA", "torch"),
    ("LLM serving", "vllm", "vLLM", "torch"),
)


def report() -> dict[str, Any]:
    """Collect the report as a dict; ``report()["text"]`` is the printable form.

    Only the device policy's probes (:func:`sparkbooks.devices.probe`) decide "on the GPU": no figure here is assumed.
    """
    hw = detect()
    report = devices.probe()
    probe = devices.probe_cudf() if report.policy != "cpu" else None
    accelerated = []
    for workload, package, via, kind in _ACCELERATED:
        installed = hw.packages.get(package)
        on_gpu = bool(installed) and report.can(kind)
        accelerated.append({"workload": workload, "via": via, "installed": installed, "on_gpu": on_gpu})
    llama = shutil.which("llama-server")
    lines = [
        "sparkbooks doctor",
        f"  machine     : {hw.summary()}",
        f"  host        : {hw.hostname} · {hw.system} · Python {platform.python_version()}",
        f"  cpu         : {hw.cpu_model} ({hw.cpu_cores} cores)",
    ]
    if hw.gpus:
        for g in hw.gpus:
            mem = f"{hw.memory_gib:.0f} GiB unified with the CPU" if g.unified_memory else f"{g.memory_gib:.0f} GiB"
            lines.append(f"  gpu {g.index}       : {g.name} · {mem} · driver {g.driver} · sm {g.compute_capability}")
    else:
        lines.append("  gpu         : none found (nvidia-smi " + ("reported none)" if hw.nvidia_smi else "not on PATH)"))
    lines.append(f"  devices     : {report.summary()}")
    if probe is None:
        lines.append("  gpu probe   : skipped (SPARKBOOKS_ACCELERATOR=cpu)")
    else:
        lines.append(f"  gpu probe   : {'PASS' if probe.ok else 'no'} — {probe.detail} ({probe.seconds:.2f} s)")
    lines.append("  accelerated :")
    for a in accelerated:
        state = "GPU" if a["on_gpu"] else ("installed, CPU" if a["installed"] else "CPU (accelerator not installed)")
        lines.append(f"    {a['workload']:36} {a['via']:18} {state}")
    lines.append(f"  llama-server: {llama or 'not on PATH'}")
    lines.append("  packages    : " + ", ".join(f"{k} {v}" for k, v in hw.packages.items() if v))
    lines.append(f"  cache       : {settings.cache_dir}")
    return {
        "hardware": hw.to_dict(),
        "gpu_probe": None if probe is None else {"ok": probe.ok, "detail": probe.detail, "seconds": probe.seconds},
        "devices": report.to_dict(),
        "accelerated": accelerated,
        "llama_server": llama,
        "cache_dir": str(settings.cache_dir),
        "text": "\n".join(lines),
    }
