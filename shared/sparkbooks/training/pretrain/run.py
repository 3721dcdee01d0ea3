"""Launch a pretraining run on 1…N ranks (torchrun, the launch helper ``fine-tune`` uses) and read what it measured."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import distributed
from ... import fileio
from ...exceptions import InputError, TrainingDivergedError, require
from . import corpus as corpus_lib
from . import fp4
from . import model as model_lib

__all__ = ["PretrainRun", "compare", "default_precision", "node_command", "train", "train_variants"]

WORKER = "sparkbooks.training.pretrain.worker"


@dataclass
class PretrainRun:
    """One run's record: losses per step, validation per eval, samples, and its throughput."""

    history: Any  # DataFrame: step, loss, grad_norm, seconds, tokens, lr
    evals: Any  # DataFrame: step, tokens_seen, val_loss, val_ppl
    samples: list[dict]
    window_losses: list[float]  # the last evaluation's loss per validation window (for paired comparisons)
    config: dict
    ranks: int
    backend: str
    device: str
    parameters: int
    resumed_from: int
    wall_s: float
    out_dir: Path
    start_window_losses: list[float] | None = None  # step 0's loss per window, where the run was scored before training

    @property
    def timed(self):
        """The steps that count for throughput: after the first 3 (allocation, and compilation when on)."""
        skip = 3 if len(self.history) > 6 else 0
        return self.history.iloc[skip:]

    @property
    def tokens_per_s(self) -> float:
        """Median tokens/s over the timed steps (all ranks together)."""
        t = self.timed
        return float(statistics.median((t["tokens"] / t["seconds"]).tolist()))

    @property
    def tokens_per_s_range(self) -> tuple[float, float]:
        rates = (self.timed["tokens"] / self.timed["seconds"])
        return float(rates.quantile(0.1)), float(rates.quantile(0.9))

    @property
    def flops_per_token(self) -> float:
        c = self.config
        return model_lib.flops_per_token(model_lib.ModelSize(**c["size"]), vocab_size=c["vocab_size"],
                                         seq_len=c["seq_len"])

    def mfu(self, peak_flops: float) -> float:
        """Model FLOPs utilisation: achieved training FLOP/s over ``peak_flops`` (the machine's, all devices)."""
        return self.tokens_per_s * self.flops_per_token / peak_flops

    @property
    def final_val_loss(self) -> float:
        return float(self.evals["val_loss"].iloc[-1])


def default_precision(device: str) -> str:
    """``bf16`` autocast on a GPU that supports it; ``fp32`` on CPUs (most have no fast BF16 matmul)."""
    from ... import devices  # noqa: PLC0415

    if device.startswith("cuda") and devices.use_gpu("torch") and devices.probe().bf16:
        return "bf16"
    return "fp32"


def train(corpus: corpus_lib.Corpus, *, launch, out_dir: Path, size: str | model_lib.ModelSize = "tiny",
          seq_len: int = 128, batch_size: int = 16, steps: int = 100, lr: float = 3e-3, warmup_steps: int = 10,
          weight_decay: float = 0.1, grad_clip: float = 1.0, seed: int = 0, recipe: str | None = None,
          precision: str | None = None, compile: bool = False, eval_every: int = 25, eval_windows: int = 64,
          checkpoint_every: int = 0, resume: bool = False, sample_prompt: str = "The government said",
          sample_tokens: int = 24, stop_after: int | None = None, timeout: float = 3600.0,
          fault: tuple[int, int] | None = None, nan_at_step: int | None = None, save_final: bool = False,
          init_from: str | None = None, keep_last: int | None = None, eval_start: bool = True,
          hadamard_signs: str = "te") -> PretrainRun:
    """Pretrain a fresh model of ``size`` on ``corpus`` with torchrun on every rank of ``launch``.

    ``batch_size`` windows of ``seq_len`` tokens per step whatever the number of ranks (it must split
    evenly). ``recipe`` names an NVFP4 variant of :data:`sparkbooks.training.pretrain.fp4.RECIPES` (``None``:
    the high-precision baseline). ``stop_after`` ends the run early on the schedule of ``steps``.
    ``resume=True`` continues from the newest checkpoint in ``out_dir``; ``resume=False`` starts over
    and replaces that folder's checkpoints. ``save_final=True`` keeps the last weights and optimizer in
    ``out_dir/final``; ``init_from`` (such a folder) starts from them instead of a random initialisation.
    ``keep_last`` overrides the recipe's number of decoder blocks kept in high precision; ``eval_start=False``
    skips the evaluation before the first step. ``hadamard_signs``: the recipe's fixed Hadamard sign vector,
    Transformer Engine's (``"te"``) or one drawn from the seed (``"seeded"``).

    Raises
    ------
    InputError
        Before any rank starts: a corpus smaller than one batch, an unknown size or recipe, a batch
        that does not split over the ranks.
    TrainingDivergedError
        The loss or gradient norm became NaN/inf: the step, the last checkpoint kept, and what to try.
    RankFailedError, RendezvousError
        From :func:`sparkbooks.training.distributed.run`; checkpoints written before the failure stay valid.
    """
    settings = {k: v for k, v in locals().items() if k not in ("corpus", "launch", "out_dir", "timeout")}
    return train_variants(corpus, {".": {}}, launch=launch, out_dir=out_dir, timeout=timeout, **settings)["."]


def train_variants(corpus: corpus_lib.Corpus, variants: Mapping[str, Mapping[str, Any]], *, launch, out_dir: Path,
                   timeout: float = 3600.0, **settings) -> dict[str, PretrainRun]:
    """Train several variants of one run in a single torchrun job, one after another: ``{name: overrides}``.

    Each variant takes :func:`train`'s keyword ``settings`` with its overrides applied and writes to
    ``out_dir / name``; all share one start-up and one process group (the NVFP4 ablation's runs).
    Every config is checked before the job starts; the first variant that diverges raises.
    """
    for module in ("torch", "transformers", "tokenizers"):
        require(module, extra="models")
    device = "cuda" if launch.backend == "nccl" else "cpu"
    configs = {name: _config(corpus, launch, Path(out_dir) / name, device, {**settings, **overrides})
               for name, overrides in variants.items()}
    paths = []
    for config in configs.values():
        folder = Path(config["out_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        fileio.write_json_atomic(folder / "config.json", config)
        for stale in ("metrics.json", "diverged.json"):
            (folder / stale).unlink(missing_ok=True)
        if not config["resume"]:  # a fresh start: an earlier run's checkpoints must not be named or resumed as this one's
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        paths.append(str(folder / "config.json"))
    wall = distributed.run(launch, WORKER, paths, timeout=timeout)
    # one run: its wall time is the job's (start-up included); several: each run's own, measured by the worker
    return {name: _result(config, wall if len(configs) == 1 else None) for name, config in configs.items()}


def _config(corpus: corpus_lib.Corpus, launch, out_dir: Path, device: str, settings: dict) -> dict:
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()
                if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}
    unknown = set(settings) - set(defaults)
    if unknown:
        raise InputError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
    c = {**defaults, **settings}
    c.pop("timeout")
    size, recipe = c.pop("size"), c["recipe"]
    s = model_lib.SIZES.get(size) if isinstance(size, str) else size
    if not isinstance(s, model_lib.ModelSize):
        raise InputError(f"Unknown model size {size!r}: use one of {', '.join(model_lib.SIZES)}.")
    if recipe is not None and recipe not in fp4.RECIPES:
        raise InputError(f"Unknown NVFP4 recipe {recipe!r}: use one of {', '.join(fp4.RECIPES)} or None.")
    if c["batch_size"] % launch.world_size:
        raise InputError(f"batch_size {c['batch_size']} does not split evenly over {launch.world_size} ranks.")
    if c["init_from"] is not None:
        c["init_from"] = str(c["init_from"])
        if not (Path(c["init_from"]) / "latest.json").is_file():
            raise InputError(f"init_from={c['init_from']!r} holds no checkpoint: train that run with save_final=True.")
    if c["keep_last"] is not None and not 0 <= c["keep_last"] <= s.layers:
        raise InputError(f"keep_last must be in 0…{s.layers} (the model's blocks); got {c['keep_last']}.")
    if c["hadamard_signs"] not in ("te", "seeded"):
        raise InputError(f"hadamard_signs must be 'te' or 'seeded'; got {c['hadamard_signs']!r}.")
    if c["steps"] < 1 or c["seq_len"] < 8:
        raise InputError(f"steps must be ≥ 1 and seq_len ≥ 8 (got {c['steps']}, {c['seq_len']}).")
    corpus_lib.check_fits(corpus, seq_len=c["seq_len"], batch_size=c["batch_size"], vocab_size=corpus.vocab_size)
    fault = c.pop("fault")
    if fault is not None:
        c["fail_at_step"], c["fail_rank"] = fault
    c["precision"] = c["precision"] or default_precision(device)
    return {**c, "size": dataclasses.asdict(s), "corpus_folder": str(corpus.folder), "vocab_size": corpus.vocab_size,
            "out_dir": str(out_dir)}


def _result(config: dict, job_wall: float | None) -> PretrainRun:
    import pandas as pd  # noqa: PLC0415

    out_dir = Path(config["out_dir"])
    diverged = fileio.read_json(out_dir / "diverged.json")
    if diverged:
        kept = (f"the last finite checkpoint is step {diverged['last_checkpoint']} in {out_dir / 'checkpoints'} "
                f"(resume=True continues from it)" if diverged["last_checkpoint"] else
                "no checkpoint was written before it (set checkpoint_every)")
        raise TrainingDivergedError(
            f"Training diverged at step {diverged['step']}: loss {diverged['loss']}, gradient norm "
            f"{diverged['grad_norm']} (learning rate then {diverged['lr']:.2e}); {kept}. Lower lr (now "
            f"{config['lr']:g}) or lengthen warmup_steps (now {config['warmup_steps']}), and keep grad_clip on.")
    metrics = json.loads((out_dir / "metrics.json").read_text())
    config = {**config, "high_precision_share": metrics.get("high_precision_share", 1.0)}
    return PretrainRun(history=pd.DataFrame(metrics["history"]), evals=pd.DataFrame(metrics["evals"]),
                       samples=metrics["samples"], window_losses=metrics["window_losses"], config=config,
                       start_window_losses=metrics.get("start_window_losses") or None,
                       ranks=metrics["world_size"], backend=metrics["backend"], device=metrics["device"],
                       parameters=metrics["parameters"], resumed_from=metrics["resumed_from"],
                       wall_s=job_wall if job_wall is not None else metrics["wall_s"], out_dir=out_dir)


def compare(runs: dict[str, PretrainRun], *, baseline: str):
    """Each run's final validation loss, its gap to ``baseline`` with a 95% paired-bootstrap interval over the
    validation windows (the same windows for every run), and the share of the first variant's gap the others close."""
    import pandas as pd  # noqa: PLC0415

    from ...intervals import paired_bootstrap  # noqa: PLC0415

    if baseline not in runs:
        raise InputError(f"No run called {baseline!r} among {', '.join(runs)}.")
    base = runs[baseline].window_losses
    variants = [n for n in runs if n != baseline]
    rows, first_gap = [], None
    for name, run in runs.items():
        row = {"run": name, "val_loss": run.final_val_loss, "tokens_seen": int(run.evals["tokens_seen"].iloc[-1]),
               "tokens_per_s": run.tokens_per_s, "gap": 0.0, "gap_low": None, "gap_high": None, "gap_closed": None}
        if name != baseline:
            gap, low, high = paired_bootstrap(run.window_losses, base)
            row.update(gap=gap, gap_low=low, gap_high=high)
            if name == variants[0]:
                first_gap = gap if low > 0 else None  # a share of a gap only where the gap exceeds its noise
            elif first_gap:
                row["gap_closed"] = 1 - gap / first_gap
        rows.append(row)
    return pd.DataFrame(rows)


def node_command(launch, out_dirs: Path | Sequence[Path], *, node_rank: int = 1) -> str:
    """What node ``node_rank`` types to join a job whose ``config.json`` files sit in ``out_dirs`` (shared storage).

    One folder for :func:`train`; the variants' folders, in order, for :func:`train_variants`.
    """
    dirs = [out_dirs] if isinstance(out_dirs, (str, Path)) else list(out_dirs)
    return launch.command_for_node(node_rank, WORKER, [str(Path(d) / "config.json") for d in dirs])
