"""The LoRA fine-tuning loop each torchrun rank runs: transformers + peft, gradients averaged by DDP.

Started by :func:`sparkbooks.training.finetune.train` through :func:`sparkbooks.training.distributed.run`
(``torchrun … -m sparkbooks.training.finetune_worker CONFIG.json``); never imported by a notebook.

* **Data**: token ids prepared by the driver (prompt masked out of the loss). Step ``s`` takes the
  same global batch whatever the number of ranks (a per-epoch permutation from the seed); rank
  ``r`` takes every ``world``-th example of it. The loss is normalised by the global count of
  answer tokens, so 1 rank and N ranks compute the same gradient.
* **Node 0 owns every file**: rank 0 (pinned to node 0 by the static rendezvous) reads the config, data and
  checkpoint and sends them to every rank, and it alone writes checkpoints, metrics and the adapter.
* **Checkpoints** every ``checkpoint_every`` steps: adapter weights, optimizer, schedule, losses
  and RNG state in one file written atomically, then ``latest.json`` pointing at it; a run with
  ``resume`` continues from it and reaches the same losses as an unbroken run.
* **Faults**: ``fail_at_step``/``fail_rank`` make one rank exit mid-run (the fault test); a
  collective waiting on a dead peer fails after the launch's ``collective_timeout``.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from pathlib import Path

from . import checkpoints as ckpt
from . import distributed
from .. import fileio

__all__ = ["batch_indices", "main"]


def batch_indices(step: int, *, n_examples: int, global_batch: int, seed: int) -> list[int]:
    """The example indices of global step ``step``: consecutive slices of a per-epoch permutation."""
    out = []
    for j in range(global_batch):
        position = step * global_batch + j
        epoch, offset = divmod(position, n_examples)
        order = list(range(n_examples))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        out.append(order[offset])
    return out


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _collate(examples: list[dict[str, list[int]]], pad_id: int, device):
    """Left-padded ids, labels, mask and position ids: every answer ends at the last column, so the
    logits are computed only for the last ``keep`` columns (the longest answer + 1), not the prompt."""
    import torch  # noqa: PLC0415

    width = max(len(e["input_ids"]) for e in examples)
    keep = max(sum(1 for t in e["labels"] if t != -100) for e in examples) + 1
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, width - n:] = torch.tensor(e["input_ids"])
        labels[i, width - n:] = torch.tensor(e["labels"])
        mask[i, width - n:] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), labels.to(device), mask.to(device), positions.to(device), min(keep, width)


def _recorder(saved: dict[int, int], parameters: set[int]):
    """A pack hook that records each saved tensor's storage once, parameters excluded (they are weights)."""

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    return pack


def _read_inputs(config_path: Path) -> tuple[dict, list[dict]]:
    """The run's config and tokenised examples, as node 0 wrote them (read on rank 0 only)."""
    config = json.loads(config_path.read_text())
    return config, [json.loads(line) for line in Path(config["data"]).read_text().splitlines()]


def main(argv: list[str] | None = None) -> None:
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    config_path = Path((argv or sys.argv[1:])[0])
    rss_start = _rss_bytes()
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    ctx = distributed.init_worker()
    # Node 0's config and data for every rank: the path on node 1 need not exist (nor hold a stale copy).
    config, examples = distributed.from_rank_zero(ctx, lambda: _read_inputs(config_path))

    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict  # noqa: PLC0415
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.set_verbosity_error()
    torch.manual_seed(config["seed"])
    dtype = getattr(torch, config["dtype"])
    rss_imported = _rss_bytes()
    model = AutoModelForCausalLM.from_pretrained(config["base_dir"], dtype=dtype).to(ctx.device)
    if config.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(r=config["lora_rank"], lora_alpha=config["lora_alpha"], lora_dropout=0.0,
                      target_modules=config["targets"], task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    out = Path(config["out_dir"])
    checkpoints = out / "checkpoints"
    # Node 0's checkpoint, loaded into every rank before DDP is built (DDP broadcasts rank 0's weights at construction).
    state = distributed.from_rank_zero(ctx, lambda: ckpt.load_latest(checkpoints)) if config.get("resume") else None
    if state is not None:
        set_peft_model_state_dict(model, state["adapter"])
    ddp = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(trainable, lr=config["lr"], weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, config["warmup_steps"], config["steps"])

    start_step, history = 0, []
    activation_bytes = activation_tokens = activation_width = activation_keep = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        start_step, history = state["step"], state["history"]
        distributed.worker_progress(ctx, f"resumed from step {start_step}")

    ddp.train()
    last = min(config["steps"], config.get("stop_after") or config["steps"])
    for step in range(start_step, last):
        if step == config.get("fail_at_step") and ctx.rank == config.get("fail_rank", 1):
            print(f"rank {ctx.rank}: exiting at step {step} on purpose (fault test)", flush=True)
            os._exit(3)
        started = time.perf_counter()
        chosen = batch_indices(step, n_examples=len(examples), global_batch=config["global_batch"], seed=config["seed"])
        mine = [examples[i] for i in chosen[ctx.rank::ctx.world_size]]
        ids, labels, mask, positions, keep = _collate(mine, config["pad_id"], ctx.device)
        targets = labels[:, -keep + 1:]  # the token each kept position predicts
        counts = torch.tensor([float((targets != -100).sum()), float(mask.sum())], device=ctx.device)
        dist.all_reduce(counts)  # answer tokens and all tokens of the global batch
        if step == start_step:  # once: the bytes autograd keeps for backward (what the planner calls activations)
            saved: dict[int, int] = {}
            with torch.autograd.graph.saved_tensors_hooks(_recorder(saved, parameters), lambda t: t):
                logits = ddp(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
            activation_bytes, activation_tokens = sum(saved.values()), int(mask.numel())
            activation_width, activation_keep = int(mask.shape[1]), keep
        else:
            logits = ddp(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        logits = logits[:, :-1].float()
        summed = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                   ignore_index=-100, reduction="sum")
        # DDP averages gradients over ranks: scale so the result is Σ token losses / global answer tokens.
        (summed * ctx.world_size / counts[0]).backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable, config["grad_clip"])
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss = summed.detach().clone()
        dist.all_reduce(loss)
        seconds = time.perf_counter() - started
        history.append({"step": step + 1, "loss": float(loss / counts[0]), "tokens": int(counts[1]),
                        "answer_tokens": int(counts[0]), "seconds": seconds, "grad_norm": float(norm),
                        "lr": schedule.get_last_lr()[0]})
        distributed.worker_progress(ctx, f"step {step + 1}/{config['steps']} loss {history[-1]['loss']:.3f} "
                                         f"({counts[1] / seconds:.0f} tokens/s)")
        every = config.get("checkpoint_every") or 0
        if every and (step + 1) % every == 0 and step + 1 < last:
            if ctx.rank == 0:
                ckpt.save(checkpoints, step + 1, {
                    "adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "rng": torch.get_rng_state(), "step": step + 1,
                    "history": history})
            dist.barrier()

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    memory = [None] * ctx.world_size
    cuda_peak = torch.cuda.max_memory_allocated(ctx.device) if ctx.device.type == "cuda" else None
    dist.all_gather_object(memory, {"rank": ctx.rank, "rss_start": rss_start, "rss_imported": rss_imported,
                                    "rss_peak": peak, "cuda_peak": cuda_peak, "activation_bytes": activation_bytes,
                                    "activation_tokens": activation_tokens, "padded_width": activation_width,
                                    "loss_width": activation_keep})
    if ctx.rank == 0:
        adapter = out / "adapter"
        staging = out / ".adapter.tmp"
        model.save_pretrained(staging)
        if adapter.exists():
            import shutil  # noqa: PLC0415

            shutil.rmtree(adapter)
        os.replace(staging, adapter)
        trainable_count = sum(p.numel() for p in trainable)
        fileio.write_json_atomic(out / "metrics.json", {
            "history": history, "memory": memory, "world_size": ctx.world_size, "backend": ctx.backend,
            "trainable_params": trainable_count, "resumed_from": start_step,
            "threads": torch.get_num_threads()})
    distributed.finish_worker()


if __name__ == "__main__":
    main()
