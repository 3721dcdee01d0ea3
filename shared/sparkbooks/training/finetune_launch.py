"""The fine-tune playbook's runs: prepare a config and data, launch torchrun, read the metrics back; node 1's commands.

Part of :mod:`sparkbooks.training.finetune` (which re-exports every public name here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fileio
from ..exceptions import InputError
from .finetune_data import Task, _require_training, tokenise
from .finetune_memory import check_fits

__all__ = ["LINEAR_TARGETS", "SWEEP_ID", "TRAIN_ID", "TrainRun", "WORKER", "default_backend", "node_commands", "prepare",
           "run_dir", "scaling", "train"]

#: Every linear layer of a Llama-style block, as the official 8B recipe targets.
LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainRun:
    """One training run: the loss per step, throughput, memory per rank, and where its adapter is."""

    history: Any  # DataFrame: step, loss, tokens, answer_tokens, seconds, grad_norm, lr
    ranks: int
    backend: str
    wall_s: float
    tokens_per_s: float  # Σ tokens / Σ seconds over every step but the first (prompt + answer tokens, all ranks)
    adapter: Path
    out_dir: Path
    trainable_params: int
    resumed_from: int = 0
    config: dict = field(default_factory=dict)
    memory: list[dict] = field(default_factory=list)  # per rank: rss_*, cuda_peak, activation_bytes, widths

    @property
    def final_loss(self) -> float:
        return float(self.history["loss"].iloc[-1])

    @property
    def step_tokens_per_s(self) -> list[float]:
        """Tokens/s of each timed step (all but the first this run executed): the spread behind ``tokens_per_s``."""
        timed = _timed_steps(self.history, self.resumed_from)
        return (timed["tokens"] / timed["seconds"]).tolist()


def _timed_steps(history, resumed_from: int):
    """The steps throughput is measured on: those this process ran, less the first (allocator growth, warm-up)."""
    ran = history[history["step"] > resumed_from]
    return ran.iloc[1:] if len(ran) > 1 else ran


def train(base: Path, task: Task, *, launch, out_dir: Path, steps: int = 12, global_batch: int = 8,
          lr: float = 2e-3, warmup_steps: int = 2, lora_rank: int = 16, lora_alpha: int = 32,
          targets: Sequence[str] = LINEAR_TARGETS, seed: int = 0, max_len: int = 256, dtype: str = "float32",
          checkpoint_every: int = 0, resume: bool = False, gradient_checkpointing: bool = False,
          timeout: float = 3600.0, fault: tuple[int, int] | None = None, stop_after: int | None = None) -> TrainRun:
    """LoRA-train ``base`` on ``task.train`` with torchrun on every rank of ``launch``; return the run.

    ``global_batch`` examples per optimizer step whatever the number of ranks (it must divide
    evenly among them), so runs on 1 and N ranks take the same steps on the same data.
    ``stop_after`` ends the run after that many steps on the schedule of ``steps`` (a shorter run whose
    losses match the longer one's first steps). ``fault=(step, rank)`` makes that rank exit at that
    step (the fault test).

    Raises
    ------
    RankFailedError, RendezvousError
        From :func:`sparkbooks.training.distributed.run`; checkpoints written before the failure stay valid.
    """
    import pandas as pd  # noqa: PLC0415

    from . import distributed  # noqa: PLC0415

    config = prepare(base, task, launch=launch, out_dir=out_dir, steps=steps, global_batch=global_batch, lr=lr,
                     warmup_steps=warmup_steps, lora_rank=lora_rank, lora_alpha=lora_alpha, targets=targets, seed=seed,
                     max_len=max_len, dtype=dtype, checkpoint_every=checkpoint_every, resume=resume,
                     gradient_checkpointing=gradient_checkpointing, fault=fault, stop_after=stop_after)
    out_dir = Path(out_dir)
    wall = distributed.run(launch, WORKER, [str(out_dir / "config.json")], timeout=timeout)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    history = pd.DataFrame(metrics["history"])
    timed = _timed_steps(history, metrics["resumed_from"])
    memory = sorted(metrics["memory"], key=lambda m: m["rank"])
    return TrainRun(history=history, ranks=metrics["world_size"], backend=metrics["backend"], wall_s=wall,
                    tokens_per_s=float(timed["tokens"].sum() / timed["seconds"].sum()), adapter=out_dir / "adapter", out_dir=out_dir, trainable_params=metrics["trainable_params"],
                    resumed_from=metrics["resumed_from"], config=config, memory=memory)


WORKER = "sparkbooks.training.finetune_worker"


def prepare(base: Path, task: Task, *, launch, out_dir: Path, steps: int = 12, global_batch: int = 8,
            lr: float = 2e-3, warmup_steps: int = 2, lora_rank: int = 16, lora_alpha: int = 32,
            targets: Sequence[str] = LINEAR_TARGETS, seed: int = 0, max_len: int = 256, dtype: str = "float32",
            checkpoint_every: int = 0, resume: bool = False, gradient_checkpointing: bool = False,
            fault: tuple[int, int] | None = None, stop_after: int | None = None) -> dict:
    """Check the run fits, then write its ``config.json`` and tokenised ``train.jsonl`` into ``out_dir``; return the config.

    :func:`train` calls it before launching; on its own it is what a node writes without starting a job.
    Only node 0's copy is ever read (rank 0 sends it to every rank).
    """
    from transformers import AutoTokenizer  # noqa: PLC0415

    _require_training()
    if global_batch % launch.world_size:
        raise InputError(f"global_batch {global_batch} does not split evenly over {launch.world_size} ranks.")
    if steps < 1:
        raise InputError("steps must be ≥ 1.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    data = tokenise(tokenizer, task, task.train, max_len=max_len)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = {"base_dir": str(base), "data": str(out_dir / "train.jsonl"), "out_dir": str(out_dir), "steps": steps,
              "global_batch": global_batch, "lr": lr, "warmup_steps": warmup_steps, "lora_rank": lora_rank,
              "lora_alpha": lora_alpha, "targets": list(targets), "seed": seed, "dtype": dtype, "grad_clip": 1.0,
              "pad_id": pad, "checkpoint_every": checkpoint_every, "resume": resume,
              "gradient_checkpointing": gradient_checkpointing, "stop_after": stop_after}
    if fault is not None:
        config["fail_at_step"], config["fail_rank"] = fault
    check_fits(base, config, data, micro_batch=global_batch // launch.world_size, ranks_here=launch.nproc_per_node,
               device="cuda" if launch.backend == "nccl" else "cpu")
    fileio.write_text_atomic(out_dir / "train.jsonl", "".join(json.dumps(d) + "\n" for d in data))
    fileio.write_json_atomic(out_dir / "config.json", config)
    (out_dir / "metrics.json").unlink(missing_ok=True)
    return config


SWEEP_ID, TRAIN_ID = "link-sweep", "fine-tune"


def run_dir(work_dir: Path, world_size: int) -> Path:
    """Where the run on ``world_size`` ranks keeps its config, data, checkpoints and adapter."""
    return Path(work_dir) / f"ranks-{world_size}"


def node_commands(launch, *, node_rank: int, work_dir: Path, sweep_sizes: Sequence[int]) -> list[str]:
    """The commands node ``node_rank`` types, in order, to join the playbook's two multi-node jobs.

    The link sweep and the training run use fixed rendezvous ids (:data:`SWEEP_ID`, :data:`TRAIN_ID`),
    so each command meets the matching job on node 0 (static rendezvous: ``--node-rank`` is honoured, so
    rank 0 is on node 0 whichever node starts first). Node 1 needs the repository and the model folder at
    the same paths, nothing from ``work_dir``: rank 0 sends the config, data and any checkpoint to every
    rank, and writes every output on node 0. The commands carry the launch's link variables
    (``NCCL_SOCKET_IFNAME``, ``GLOO_SOCKET_IFNAME``, ``UCX_NET_DEVICES``, ``NCCL_IB_HCA``).
    """
    from .collectives import sweep_args  # noqa: PLC0415

    config = run_dir(work_dir, launch.world_size) / "config.json"
    return [launch.named(SWEEP_ID).command_for_node(node_rank, "sparkbooks.training.collectives", sweep_args(sweep_sizes)),
            launch.named(TRAIN_ID).command_for_node(node_rank, "sparkbooks.training.finetune_worker", [str(config)])]


def scaling(one: TrainRun, many: TrainRun) -> dict[str, float]:
    """Tokens/s on 1 rank and on N over the *same* steps, per rank, and the scaling efficiency = (tokens/s N) / (N × tokens/s 1).

    Only the steps both runs timed count (each run's first step is warm-up): the same global batches, so
    the same tokens, on both sides — a longer run's later steps (other batches, other lengths) would
    otherwise weigh on one side only. ``steps`` lists them.

    Raises
    ------
    InputError
        The runs timed no step in common (the 1-rank run must run at least 2 steps of the same schedule).
    """
    timed_one, timed_many = _timed_steps(one.history, one.resumed_from), _timed_steps(many.history, many.resumed_from)
    common = sorted(set(timed_one["step"]) & set(timed_many["step"]))
    if not common:
        raise InputError("The 1-rank and N-rank runs timed no step in common: run the 1-rank run for ≥ 2 steps.")

    def rate(timed) -> float:
        rows = timed[timed["step"].isin(common)]
        return float(rows["tokens"].sum() / rows["seconds"].sum())

    r1, rn = rate(timed_one), rate(timed_many)
    return {"tokens_per_s_1": r1, f"tokens_per_s_{many.ranks}": rn, "per_rank_tokens_per_s": rn / many.ranks,
            "scaling_efficiency": rn / (many.ranks * r1), "steps": [int(x) for x in common]}


def default_backend(ranks_per_node: int = 1) -> str:
    """The device policy's backend (:func:`sparkbooks.devices.dist_backend`): ``nccl`` where NCCL works and each of
    this node's ``ranks_per_node`` ranks gets its own CUDA device, else ``gloo`` (always under ``SPARKBOOKS_ACCELERATOR=cpu``)."""
    from .. import devices  # noqa: PLC0415

    return devices.dist_backend(ranks_per_node)

