"""LoRA fine-tuning on 1 rank vs 2 ranks (torchrun, gloo): throughput, scaling, loss agreement, accuracy before/after/served.

Same model (the SmolLM2-135M-Instruct stand-in unless ``--model`` names a local folder), same data,
same optimizer steps and global batch on both runs, one thread per rank — so on this 2-core machine
the 2-rank run has twice the cores of the 1-rank run, as two machines would. Measured:

* tokens/s of each run (every step but the first; per-step range beside it) and the scaling
  efficiency = tokens/s(2) / (2 × tokens/s(1));
* all-reduce bus bandwidth at 64 MiB between the two ranks (``sparkbooks.training.collectives``);
* the final training loss of both runs (the same batches: they must agree);
* held-out field accuracy (birth sentences → JSON, free text, the playbook's task, seeds never used
  for training; two of the eight sentence templates never trained on, reported apart) of the untuned model, the 2-rank tuned model in torch, and the tuned model merged,
  converted to GGUF (q8_0) and served by llama-server — with Wilson intervals and exact McNemar.

    python benchmarks/fine_tune_scaling.py [--steps 48] [--n-train 1024] [--n-held-out 100] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from sparkbooks import documents, intervals, llm
from sparkbooks.training import collectives
from sparkbooks.training import distributed
from sparkbooks.training import finetune


SMOKE_HELP = ("tiny sizes (≤ 30 s): the 2-rank run, both untuned baselines and the tuned torch model end to end "
              "(12-token answers); the 1-rank run, the link sweep and the served GGUF are skipped "
              "(tests/test_finetune.py and tests/test_distributed.py run them); figures mean nothing")
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"steps": 2, "global_batch": 4, "lora_rank": 4, "n_train": 32, "n_held_out": 2, "unseen_templates": [],
         "max_new_tokens": 12}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=finetune.STAND_IN)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--n-held-out", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unseen-templates", nargs="*", default=["married", "parenthesis"],
                        help="sentence templates kept out of training (their held-out sentences test generalisation)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="answer tokens per held-out sentence in torch")
    parser.add_argument("--out", default=None, help="keep adapters and the GGUF here (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()

    # This process's torch work (loading, merging the adapter, greedy answers) is untimed: one thread, as
    # evaluate(threads=1) already does, because on a busy 2-core VM OpenMP threads stall each other (measured:
    # load + LoRA merge 9–14 s with 2 threads, 2.0–2.5 s with 1). The timed training runs in torchrun's ranks.
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    base = finetune.base_model(args.model)
    task = finetune.birth_task(args.n_train, args.n_held_out, seed=args.seed, unseen_templates=args.unseen_templates)
    unseen = [item["unseen_template"] for item in task.held_out]
    two_ranks = distributed.Launch(nproc_per_node=2, threads_per_rank=1)
    one_rank = distributed.Launch(nproc_per_node=1, threads_per_rank=1)
    with tempfile.TemporaryDirectory(prefix="sparkbooks-ft-bench-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        # --smoke skips the link sweep (one more torchrun start; tests/test_distributed.py runs the sweep)
        busbw = None if args.smoke else float(collectives.sweep(two_ranks, [64 * 2**20], iterations=10)["busbw_GBps"].iloc[0])
        common = {"steps": args.steps, "global_batch": args.global_batch, "lr": args.lr, "lora_rank": args.lora_rank,
                  "lora_alpha": 2 * args.lora_rank, "seed": args.seed}
        # --smoke skips the 1-rank run: each torchrun start costs ≈ 10 s on 2 cores, and scaling means nothing at 2 steps
        runs = {} if args.smoke else {1: finetune.train(base, task, launch=one_rank, out_dir=out / "ranks-1", **common)}
        runs[2] = finetune.train(base, task, launch=two_ranks, out_dir=out / "ranks-2", **common)
        scale = finetune.scaling(runs[1], runs[2]) if 1 in runs else None

        model, tokenizer = finetune.load(base)
        # one thread: 2 on a busy 2-core VM stall; --smoke answers in fewer tokens (figures mean nothing there)
        before = finetune.evaluate(model, tokenizer, task, threads=1, max_new_tokens=args.max_new_tokens)
        model, tokenizer = finetune.load(base, runs[2].adapter)
        after = finetune.evaluate(model, tokenizer, task, threads=1, max_new_tokens=args.max_new_tokens)
        del model
        finetune.release_memory("cpu")
        # the fair base: the untuned model decoding under the JSON schema with one worked example (the stand-in's GGUF)
        base_gguf = None if args.model == finetune.STAND_IN else finetune.to_gguf(base, out / "base.q8_0.gguf")
        with (llm.stand_in(ctx_size=2048, parallel=2) if base_gguf is None
              else llm.LlamaServer(base_gguf, alias="base", ctx_size=2048, parallel=2)) as server:
            constrained = llm.run_extractions(llm.connect(server.base_url), task.held_out, schema=task.schema,
                                              instruction=task.instruction, constrained=True,
                                              examples=[documents.BIRTH_EXAMPLE], max_tokens=64, concurrency=2)
        served = None if args.smoke else _served(base, runs[2].adapter, task, out)

    print(f"\nLoRA r{args.lora_rank}, {args.steps} steps × {args.global_batch} sequences, {len(task.train)} training "
          f"and {len(task.held_out)} held-out sentences, model {base.name}\n")
    print(f"{'run':<10}{'tokens/s':>10}{'per-step range':>20}{'final loss':>12}{'wall s':>9}")
    for n, run in runs.items():
        steps = run.step_tokens_per_s
        print(f"{n} rank{'s' if n > 1 else ' ':<4}{run.tokens_per_s:>10.1f}{min(steps):>11.0f} – {max(steps):<6.0f}"
              f"{run.final_loss:>12.4f}{run.wall_s:>9.0f}")
    if scale is not None:
        print(f"\nscaling efficiency {scale['scaling_efficiency']:.3f}; all-reduce busbw at 64 MiB {busbw:.2f} GB/s (gloo)")
    else:
        print("\nscaling and the link's bandwidth not measured (--smoke)")
    overlap = finetune.overlap(task)
    print(f"held-out answers occurring in training sentences: {overlap} (disjoint split: all zero)")
    scores = {"untuned (torch)": before, "untuned, constrained + 1 example": constrained, "tuned (torch)": after,
              "tuned (served q8_0 GGUF)": served}
    print(f"\n{'held-out accuracy, all fields':<32}{'rate':>6}{'95% CI':>16}")
    for name, table in scores.items():
        if table is None:
            print(f"{name:<32}{'skipped (--smoke)':>22}")
            continue
        k, n = int(table["all_ok"].sum()), len(table)
        low, high = intervals.wilson(k, n)
        print(f"{name:<32}{k / n:>6.3f}{low:>9.3f} – {high:.3f}")
    for name, table in (("tuned (torch)", after), ("tuned (served)", served)):
        hits = [] if table is None else [ok for ok, u in zip(table["all_ok"], unseen, strict=True) if u]
        if hits:
            low, high = intervals.wilson(sum(hits), len(hits))
            print(f"{name + ', unseen templates':<32}{sum(hits) / len(hits):>6.3f}{low:>9.3f} – {high:.3f}  (n = {len(hits)})")
    print("tuned vs untuned:", intervals.mcnemar(list(after["all_ok"]), list(before["all_ok"])).verdict("tuned", "untuned"))
    print("tuned vs constrained base:",
          intervals.mcnemar(list(after["all_ok"]), list(constrained["all_ok"])).verdict("tuned", "constrained base"))
    if served is not None:
        cities = [item["expected"]["city"] for item in task.held_out]
        print(f"the same, whole cities as the unit ({len(set(cities))} held-out cities, "
              f"{len({i['expected']['person'] for i in task.held_out})} persons): sign-flip p = "
              f"{finetune.clustered_sign_flip(list(served['all_ok']), list(constrained['all_ok']), cities):.2g} (served)")
        print("served vs torch: ", intervals.mcnemar(list(served["all_ok"]), list(after["all_ok"])).verdict("served", "torch"))
    figures = {"tokens_per_s_2": round(runs[2].tokens_per_s, 1), "busbw_GBps": None if busbw is None else round(busbw, 3),
               "final_loss_2": round(runs[2].final_loss, 4),
               "base_accuracy": round(float(before["all_ok"].mean()), 3),
               "base_constrained_accuracy": round(float(constrained["all_ok"].mean()), 3),
               "held_out_answers_in_training": sum(overlap.values()),
               "tuned_accuracy": round(float(after["all_ok"].mean()), 3),
               "tuned_accuracy_unseen_templates": round(float(after["all_ok"][unseen].mean()), 3) if any(unseen)
               else None}
    if scale is not None:
        figures |= {"tokens_per_s_1": round(scale["tokens_per_s_1"], 1),
                    "scaling_efficiency": round(scale["scaling_efficiency"], 3),
                    "final_loss_1": round(runs[1].final_loss, 4)}
    if served is not None:
        figures["served_accuracy"] = round(float(served["all_ok"].mean()), 3)
    print(json.dumps(figures))


def _served(base: Path, adapter: Path, task: finetune.Task, out: Path) -> pd.DataFrame:
    """The tuned model merged, converted to q8_0 GGUF and served by llama-server: its held-out extractions."""
    gguf = finetune.merge_to_gguf(base, adapter, out / "tuned.q8_0.gguf")
    with llm.LlamaServer(gguf, alias="tuned", ctx_size=2048, parallel=2) as server:
        return llm.run_extractions(llm.connect(server.base_url), task.held_out, schema=task.schema,
                                   instruction=task.instruction, constrained=False, max_tokens=48, concurrency=2)

if __name__ == "__main__":
    main()
