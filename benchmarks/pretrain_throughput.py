"""Pretraining throughput and MFU by model size, ranks and torch.compile; the NVFP4 ablation over seeds.

Throughput: each size trains ``--steps`` steps of ``--batch`` × ``--seq-len`` tokens from scratch on
1 rank (all cores), eager and compiled, and the largest size also on 2 ranks (gloo, one thread
each); tokens/s is the median over steps 4…N (compilation falls in the first steps). MFU is the model's
training FLOPs per second over two named peaks: the machine's *nominal* peak (cores × clock × FP32 FLOPs per cycle,
:func:`sparkbooks.training.pretrain.spec_peak`; a GPU's datasheet figure) — the denominator nanoGPT, torchtitan and
nanochat use, which load does not move — and the float32 matmul peak *timed* in this process (context: on shared
cores it times low and inflates MFU over it). Ablation: the
baseline and each NVFP4 recipe train the same tokens from the same initial weights for every seed,
all variants of a seed in one torchrun job; the final validation loss on the same held-out windows.

    python benchmarks/pretrain_throughput.py [--sizes tiny small medium] [--steps 20] [--seeds 0 1 2]
        [--ablation-steps 200] [--recipes nvfp4_rtn nvfp4_recipe] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from sparkbooks.training import distributed
from sparkbooks.training import pretrain
from sparkbooks.hardware import detect
from sparkbooks.intervals import paired_bootstrap


SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"sizes": ["tiny"], "vocab": 512, "seq_len": 32, "batch": 4, "steps": 4, "no_compile": True, "seeds": [0],
         "ablation_steps": 4, "ablation_batch": 4, "ablation_seq_len": 32, "recipes": ["nvfp4_rtn"], "documents": 400}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "medium"])
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ablation-size", default="tiny")
    parser.add_argument("--ablation-steps", type=int, default=200)
    parser.add_argument("--ablation-batch", type=int, default=16)
    parser.add_argument("--ablation-seq-len", type=int, default=64)
    parser.add_argument("--recipes", nargs="+", default=["nvfp4_rtn", "nvfp4_recipe"])
    parser.add_argument("--keep-last", type=int, default=1, help="blocks in high precision in every NVFP4 variant")
    parser.add_argument("--documents", type=int, default=None, help="the first N documents of each corpus (default: all)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()

    peak = pretrain.matmul_peak()
    nominal = pretrain.spec_peak()  # None where /proc/cpuinfo lists no clock: then only the timed MFU is printed
    print(f"timed peak: {peak}\nnominal peak: " + (f"{nominal.flops / 1e9:,.0f} GFLOP/s ({nominal.basis})" if nominal
          else "unknown for this CPU"), flush=True)
    one = distributed.Launch(nproc_per_node=1, threads_per_rank=None)
    two = distributed.Launch(nproc_per_node=2, threads_per_rank=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = pretrain.prepare(pretrain.documents(limit=args.documents), Path(tmp), vocab_size=args.vocab)
        common = dict(seq_len=args.seq_len, batch_size=args.batch, steps=args.steps, eval_every=args.steps,
                      eval_windows=8, sample_tokens=0, lr=1e-3)
        plans = [(size, one, False) for size in args.sizes]
        if not args.no_compile:
            plans += [(size, one, True) for size in args.sizes]
        plans += [(args.sizes[-1], two, False)]
        for size, launch, compiled in plans:
            run = pretrain.train(corpus, launch=launch, out_dir=Path(tmp) / f"{size}-{launch.world_size}-{compiled}",
                                 size=size, compile=compiled, **common)
            rows.append(throughput_row(run, size=size, ranks=launch.world_size, compiled=compiled, timed_peak=peak.flops,
                                       nominal_peak=nominal.flops if nominal else None))
            print(f"  {size} × {launch.world_size} rank(s){' compiled' if compiled else ''}: "
                  f"{run.tokens_per_s:,.0f} tokens/s, MFU {_pct(rows[-1]['mfu_nominal'])} of the nominal peak, "
                  f"{rows[-1]['mfu']:.1%} of the timed one", flush=True)

        losses: dict[str, list[float]] = {"baseline": [], **{r: [] for r in args.recipes}}
        gaps: dict[str, list[float]] = {r: [] for r in args.recipes}
        for seed in args.seeds:
            variants = {"baseline": {}} | {r: {"recipe": r} for r in args.recipes}
            runs = pretrain.train_variants(
                corpus, variants, launch=two, out_dir=Path(tmp) / f"ablation-{seed}", size=args.ablation_size,
                seq_len=args.ablation_seq_len, batch_size=args.ablation_batch, steps=args.ablation_steps, lr=1e-2,
                warmup_steps=args.ablation_steps // 10, eval_every=args.ablation_steps, eval_windows=256,
                sample_tokens=0, seed=seed, keep_last=args.keep_last)  # the same high-precision share in every variant
            for name, run in runs.items():
                losses[name].append(run.final_val_loss)
            baseline_precision = runs["baseline"].config["precision"]  # the "BF16" baseline: fp32 on a CPU
            for r in args.recipes:
                gaps[r].append(paired_bootstrap(runs[r].window_losses, runs["baseline"].window_losses).value)
            print(f"  seed {seed}: " + ", ".join(f"{n} {v[-1]:.4f}" for n, v in losses.items()), flush=True)

    print(f"\nPretraining on {detect().summary()}; timed float32 matmul peak {peak}; nominal peak "
          + (f"{nominal.flops / 1e9:,.0f} GFLOP/s ({nominal.basis})" if nominal else "unknown") + "\n")
    print("| size | parameters | ranks | compiled | tokens/s | MFU (nominal peak) | MFU (timed peak) | first 3 steps (s) |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['params']:,} | {r['ranks']} | {r['compiled']} | {r['tokens_per_s']:,.0f} | "
              f"{_pct(r['mfu_nominal'])} | {r['mfu']:.1%} | {r['first_3_steps_s']:.1f} |")
    print(f"\nNVFP4 ablation: {args.ablation_size}, {args.ablation_steps} steps × {args.ablation_batch} × "
          f"{args.ablation_seq_len} tokens, seeds {args.seeds}, 2 ranks\n")
    print("| run | val loss per seed | mean | gap to baseline per seed | mean gap |\n|---|---|---|---|---|")
    for name, values in losses.items():
        g = gaps.get(name)
        print(f"| {name} | {', '.join(f'{v:.4f}' for v in values)} | {statistics.mean(values):.4f} | "
              + (f"{', '.join(f'{x:+.4f}' for x in g)} | {statistics.mean(g):+.4f} |" if g else "— | — |"))
    eager = {r["size"]: r["tokens_per_s"] for r in rows if r["ranks"] == 1 and not r["compiled"]}
    compiled = {r["size"]: r["tokens_per_s"] for r in rows if r["compiled"]}
    largest = args.sizes[-1]
    print(json.dumps({
        "params": [r["params"] for r in rows if r["ranks"] == 1 and not r["compiled"]],
        "tokens_per_s": [round(v) for v in eager.values()],
        "mfu": [round(r["mfu"], 3) for r in rows if r["ranks"] == 1 and not r["compiled"]],  # over the timed peak
        "mfu_timed": [round(r["mfu"], 3) for r in rows if r["ranks"] == 1 and not r["compiled"]],
        "mfu_nominal": [None if r["mfu_nominal"] is None else round(r["mfu_nominal"], 3)
                        for r in rows if r["ranks"] == 1 and not r["compiled"]],
        "nominal_peak_GFLOPs": round(nominal.flops / 1e9, 1) if nominal else None,
        "nominal_peak_basis": nominal.basis if nominal else None,
        "compiled_speedup": round(compiled[largest] / eager[largest], 2) if largest in compiled else None,
        "two_rank_tokens_per_s": round(next(r["tokens_per_s"] for r in rows if r["ranks"] == 2)),
        "val_loss_bf16": round(statistics.mean(losses["baseline"]), 4), "baseline_precision": baseline_precision,
        "val_loss_nvfp4_rtn": round(statistics.mean(losses["nvfp4_rtn"]), 4) if "nvfp4_rtn" in losses else None,
        "val_loss_nvfp4_recipe": round(statistics.mean(losses["nvfp4_recipe"]), 4) if "nvfp4_recipe" in losses else None,
        "gap_seeds": {r: [round(x, 4) for x in g] for r, g in gaps.items()}, "matmul_peak_GFLOPs": round(peak.flops / 1e9, 1)}))


def throughput_row(run, *, size: str, ranks: int, compiled: bool, timed_peak: float, nominal_peak: float | None) -> dict:
    """One row of the table: tokens/s and MFU over both named peaks (``mfu``: the timed one; ``mfu_nominal``)."""
    util = pretrain.headline_mfu(run.tokens_per_s * run.flops_per_token, timed_peak=timed_peak, nominal_peak=nominal_peak)
    return {"size": size, "params": run.parameters, "ranks": ranks, "compiled": compiled,
            "tokens_per_s": run.tokens_per_s, "mfu": util.timed,
            "mfu_nominal": util.value if util.basis == "nominal" else None,
            "first_3_steps_s": float(run.history["seconds"].iloc[:3].sum())}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


if __name__ == "__main__":
    main()
