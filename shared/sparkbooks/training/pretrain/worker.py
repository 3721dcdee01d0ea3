"""The pretraining loop each torchrun rank runs: a transformers Llama, AdamW, warm-up + cosine, DDP.

Started by :func:`sparkbooks.training.pretrain.train` through :func:`sparkbooks.training.distributed.run`
(``torchrun … -m sparkbooks.training.pretrain.worker CONFIG.json [CONFIG.json …]``); never imported by a notebook.
Several configs train one after another in the same job (the ablation's variants: one start-up,
one process group), each from its own seeded initial weights.

* **Data**: step ``s`` draws ``batch_size`` windows of ``seq_len + 1`` tokens at offsets from a
  generator seeded by (seed, s) — the same global batch on 1 or N ranks; rank ``r`` takes every
  ``world``-th window. Validation: fixed windows spread evenly over the held-out documents, split over ranks.
* **Precision**: ``bf16`` autocast on a GPU that supports it, ``fp32`` otherwise; ``recipe`` swaps the
  decoder's linear layers for simulated NVFP4 GEMMs (:mod:`sparkbooks.training.pretrain.fp4`).
* **Checkpoints** (:mod:`sparkbooks.training.checkpoints`): weights, optimizer, schedule, RNG states and history;
  ``resume`` continues to the same losses as an unbroken run.
* **Faults**: a non-finite loss stops every rank at that step and writes ``diverged.json`` (the step,
  the last checkpoint); ``fail_at_step``/``fail_rank`` kill one rank (the fault test); ``nan_at_step``
  poisons the loss (the divergence test).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import checkpoints as ckpt
from .. import distributed
from ... import fileio
from ...exceptions import InputError

__all__ = ["batch_offsets", "main"]


def batch_offsets(step: int, *, n_tokens: int, seq_len: int, batch_size: int, seed: int) -> np.ndarray:
    """The start offsets of global step ``step``'s windows (independent of the number of ranks)."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - seq_len - 1, size=batch_size)


def _windows(tokens: np.ndarray, offsets, seq_len: int):
    import torch  # noqa: PLC0415

    rows = np.stack([np.asarray(tokens[o:o + seq_len + 1], dtype=np.int64) for o in offsets])
    return torch.from_numpy(rows)


def _evaluate(model, tokens: np.ndarray, *, seq_len: int, windows: int, ctx, autocast) -> list[float]:
    """The mean next-token loss of each validation window, spread over the whole split (split over ranks).

    The windows start at :func:`sparkbooks.training.pretrain.corpus.eval_offsets`, as the n-gram baselines' do.
    """
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    from .corpus import eval_offsets  # noqa: PLC0415

    offsets = eval_offsets(len(tokens), seq_len=seq_len, windows=windows)
    usable = len(offsets)
    mine = list(range(usable))[ctx.rank::ctx.world_size]
    losses: dict[int, float] = {}
    model.eval()
    with torch.no_grad(), autocast():
        for start in range(0, len(mine), 8):
            chunk = mine[start:start + 8]
            batch = _windows(tokens, offsets[chunk], seq_len).to(ctx.device)
            logits = model(input_ids=batch[:, :-1]).logits.float()
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none").mean(1)
            losses.update(zip(chunk, loss.tolist()))
    model.train()
    gathered: list = [None] * ctx.world_size
    dist.all_gather_object(gathered, losses)
    merged = {k: v for part in gathered for k, v in part.items()}
    return [merged[i] for i in range(usable)]


def _sample(model, tokenizer, prompt: str, *, tokens: int, seed: int, device) -> str:
    """A short continuation of ``prompt`` (temperature 0.8, top-k 40, seeded): what the model has learnt, read."""
    import torch  # noqa: PLC0415

    ids = torch.tensor([tokenizer.encode(prompt).ids], device=device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    model.eval()
    with torch.no_grad():
        for _ in range(tokens):
            logits = model(input_ids=ids[:, -model.config.max_position_embeddings:]).logits[0, -1].float().cpu()
            top = torch.topk(logits / 0.8, 40)
            choice = top.indices[torch.multinomial(torch.softmax(top.values, -1), 1, generator=generator)]
            ids = torch.cat([ids, choice.view(1, 1).to(device)], dim=1)
    model.train()
    return tokenizer.decode(ids[0].tolist())


def main(argv: list[str] | None = None) -> None:
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    paths = argv or sys.argv[1:]
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    hf_logging.set_verbosity_error()
    ctx = distributed.init_worker()
    for path in paths:
        if not _run(json.loads(Path(path).read_text()), ctx):
            break  # diverged: the driver reports it; the runs after it are not started
    distributed.finish_worker()


def _run(config: dict, ctx) -> bool:
    """Train one config to its end; False when it diverged."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415
    from transformers import get_cosine_schedule_with_warmup  # noqa: PLC0415

    from . import corpus as corpus_lib, fp4, model as model_lib  # noqa: PLC0415

    began = time.perf_counter()
    out = Path(config["out_dir"])
    corpus = corpus_lib.load(Path(config["corpus_folder"]))
    train_tokens, val_tokens = corpus.tokens("train"), corpus.tokens("val")
    tokenizer = corpus_lib.load_tokenizer(corpus)
    seq_len, batch, seed = config["seq_len"], config["batch_size"], config["seed"]

    size = model_lib.ModelSize(**config["size"])
    model = model_lib.build(size, vocab_size=config["vocab_size"], seq_len=seq_len, seed=seed).to(ctx.device)
    initial = None
    if config.get("init_from"):  # continue from another run's final weights (the ablation's shared checkpoint)
        initial = ckpt.load_latest(Path(config["init_from"]))
        if initial is None:
            raise InputError(f"no checkpoint in {config['init_from']}: train the run it names with save_final=True")
        model.load_state_dict(initial["model"])
    generator = None
    if config.get("recipe"):
        recipe = fp4.RECIPES[config["recipe"]]
        fp4.convert(model, recipe, seed=seed, keep_last=config.get("keep_last"),
                    signs=config.get("hadamard_signs", "te"))
        generator = next((m.generator for m in model.modules() if isinstance(m, fp4.NVFP4Linear)), None)
    high_precision = fp4.high_precision_share(model)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config["lr"], betas=(0.9, 0.95), eps=1e-8)
    if initial is not None and initial.get("optimizer") is not None:
        optimizer.load_state_dict(initial["optimizer"])  # Adam's moments too: a continuation, not a restart
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = config["lr"]
    schedule = get_cosine_schedule_with_warmup(optimizer, config["warmup_steps"], config["steps"])
    ddp = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    runner = torch.compile(ddp) if config.get("compile") else ddp
    use_bf16 = config["precision"] == "bf16"

    def autocast():
        return torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=use_bf16)

    checkpoints = out / "checkpoints"
    start, history, evals, samples, window_losses, start_windows = 0, [], [], [], [], []
    if config.get("resume"):
        state = ckpt.load_latest(checkpoints)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["rng"])
            if generator is not None:
                generator.set_state(state["fp4_rng"])
            start, history, evals, samples = state["step"], state["history"], state["evals"], state["samples"]
            distributed.worker_progress(ctx, f"resumed from step {start}")

    def evaluate_now(step: int) -> None:
        per_window = _evaluate(model, val_tokens, seq_len=seq_len, windows=config["eval_windows"], ctx=ctx,
                               autocast=autocast)
        loss = sum(per_window) / len(per_window)
        row = {"step": step, "tokens_seen": step * batch * seq_len, "val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}
        if generator is not None:  # an NVFP4 run: also its float32 master weights, unquantised (training vs inference damage)
            with fp4.quantisation_off(model):
                master = _evaluate(model, val_tokens, seq_len=seq_len, windows=config["eval_windows"], ctx=ctx,
                                   autocast=autocast)
            row["master_val_loss"] = sum(master) / len(master)
        evals.append(row)
        window_losses[:] = per_window
        if step == 0:  # the fork's own score per window: an NVFP4 arm's rounding, paired with the baseline's
            start_windows[:] = per_window
        if ctx.rank == 0 and config.get("sample_tokens"):
            samples.append({"step": step, "text": _sample(model, tokenizer, config["sample_prompt"],
                                                           tokens=config["sample_tokens"], seed=seed, device=ctx.device)})

    if start == 0 and config.get("eval_start", True):
        evaluate_now(0)
    diverged = None
    last = min(config["steps"], config.get("stop_after") or config["steps"])
    every_eval, every_ckpt = config["eval_every"], config.get("checkpoint_every") or 0
    for step in range(start, last):
        if step == config.get("fail_at_step") and ctx.rank == config.get("fail_rank", 1):
            print(f"rank {ctx.rank}: exiting at step {step} on purpose (fault test)", flush=True)
            os._exit(3)
        begun = time.perf_counter()
        offsets = batch_offsets(step, n_tokens=len(train_tokens), seq_len=seq_len, batch_size=batch, seed=seed)
        rows = _windows(train_tokens, offsets[ctx.rank::ctx.world_size], seq_len).to(ctx.device)
        with autocast():
            logits = runner(input_ids=rows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
        if step == config.get("nan_at_step"):
            loss = loss * float("nan")  # the divergence test: what an exploding run produces
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
        seen = torch.stack([loss.detach().float(), norm.detach().float()]).to(ctx.device)
        dist.all_reduce(seen)  # every rank learns of a non-finite loss or gradient and stops at the same step
        mean_loss, mean_norm = float(seen[0] / ctx.world_size), float(seen[1] / ctx.world_size)
        if not (math.isfinite(mean_loss) and math.isfinite(mean_norm)):
            diverged = {"step": step + 1, "loss": mean_loss, "grad_norm": mean_norm,
                        "last_checkpoint": ckpt.latest_step(checkpoints), "lr": schedule.get_last_lr()[0]}
            break
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - begun
        history.append({"step": step + 1, "loss": mean_loss, "grad_norm": mean_norm, "seconds": seconds,
                        "tokens": batch * seq_len, "lr": schedule.get_last_lr()[0]})
        distributed.worker_progress(ctx, f"step {step + 1}/{config['steps']} loss {mean_loss:.3f} "
                                         f"({batch * seq_len / seconds:,.0f} tokens/s)")
        if (step + 1) % every_eval == 0 or step + 1 == config["steps"]:
            evaluate_now(step + 1)
        if every_ckpt and (step + 1) % every_ckpt == 0 and step + 1 < config["steps"]:
            if ctx.rank == 0:
                ckpt.save(checkpoints, step + 1, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "rng": torch.get_rng_state(), "fp4_rng": generator.get_state() if generator is not None else None,
                    "step": step + 1, "history": history, "evals": evals, "samples": samples})
            dist.barrier()

    if ctx.rank == 0:
        if diverged is not None:
            fileio.write_json_atomic(out / "diverged.json", diverged)
        else:
            if config.get("save_final"):  # the weights and optimizer another run continues from (init_from)
                ckpt.save(out / "final", last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                                "step": last})
            fileio.write_json_atomic(out / "metrics.json", {
                "history": history, "evals": evals, "samples": samples, "window_losses": window_losses,
                "start_window_losses": start_windows,
                "world_size": ctx.world_size, "backend": ctx.backend, "device": str(ctx.device),
                "threads": torch.get_num_threads(), "resumed_from": start, "wall_s": time.perf_counter() - began,
                "parameters": sum(p.numel() for p in model.parameters()), "high_precision_share": high_precision})
    dist.barrier()
    return diverged is None


if __name__ == "__main__":
    main()
