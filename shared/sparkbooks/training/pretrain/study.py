"""The NVFP4 ablation: baseline and recipes continued from one checkpoint (or trained from scratch), paired by seed,
each gap with a seed-level interval."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ...exceptions import InputError
from ...intervals import paired_bootstrap
from . import corpus as corpus_lib
from . import model as model_lib
from .run import train_variants

__all__ = ["Ablation", "PAPER_RELATIVE_GAP", "SeedInterval", "ablation", "detectable_gap", "kept_share_note", "seed_interval",
           "seeds_needed"]


#: Student's t 0.975 quantiles for 1…30 degrees of freedom (a 95% interval from a handful of seeds; no SciPy).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

#: The NVFP4 paper's loss gap to its FP8 baseline, relative (arXiv:2509.25149, 12 B model, 10 T tokens: about 1 %
#: through the stable phase, about 1.5 % late in the decay): the effect size an ablation must be able to see.
PAPER_RELATIVE_GAP = 0.015
#: The paper keeps ≈ 16 % of its linear layers in BF16; NVIDIA's Station playbook the last 4 of Llama 3.1 8B's 32 blocks.
NVIDIA_KEPT = "NVIDIA keeps blocks in BF16 too (the paper ≈ 16 % of its linear layers, the Station playbook the last 4 of 32)"


def _power_factor(n: int, alpha: float) -> float:
    """t₁₋α/₂ + t₀.₈₀ at n − 1 degrees of freedom: the minimum detectable effect in standard errors."""
    from scipy import stats  # noqa: PLC0415

    return float(stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(0.8, n - 1))


def detectable_gap(per_seed_gaps: Sequence[float], *, alpha: float = 0.05) -> float:
    """The smallest true mean gap these paired seeds detect with 80 % power by a two-sided t test at ``alpha``.

    (t₁₋α/₂ + t₀.₈₀) · sd / √n over the seeds' gaps: the minimum detectable effect. An interval that straddles zero
    says nothing about gaps below it. A family decided at the Bonferroni level passes ``alpha = 0.05 / m``.
    """
    n = len(per_seed_gaps)
    if n < 2:
        raise InputError(f"A detectable gap needs at least 2 seeds; got {n}.")
    return _power_factor(n, alpha) * statistics.stdev(per_seed_gaps) / n ** 0.5


def seeds_needed(per_seed_gaps: Sequence[float], target: float, *, alpha: float = 0.05) -> int:
    """The fewest paired seeds whose :func:`detectable_gap` reaches ``target`` at these seeds' spread (80 % power),
    and never fewer than :data:`sparkbooks.evidence.MIN_SEEDS` (fewer cannot decide a seed-level claim at all).

    What an underpowered ablation would have needed: its seeds' standard deviation held fixed, n grown until
    (t₁₋α/₂ + t₀.₈₀) · sd / √n ≤ target.
    """
    from ...evidence import MIN_SEEDS  # noqa: PLC0415

    if len(per_seed_gaps) < 2 or target <= 0:
        raise InputError(f"Seeds needed: at least 2 seeds' gaps and a positive target; got {len(per_seed_gaps)}, {target}.")
    sd = statistics.stdev(per_seed_gaps)
    n = MIN_SEEDS
    while _power_factor(n, alpha) * sd / n ** 0.5 > target:
        n += 1
    return n


def kept_share_note(recipe: str, *, keep_last: int, layers: int, share: float) -> str:
    """What an NVFP4 variant keeps in high precision, said against NVIDIA's recipe (never just "NVIDIA's recipe").

    Two shares, stated apart: of the decoder blocks' linear weights (NVIDIA's ≈ 16 % is this one; the blocks are
    identical, so it is ``keep_last / layers``), and of all matmul weights with the LM head (``share``).
    """
    blocks = (f"no decoder block in high precision (0% of the blocks' linear weights) — only embeddings and the LM "
              f"head ({share:.1%} of all matmul weights)" if keep_last == 0 else
              f"the last {keep_last} of {layers} decoder blocks in high precision ({keep_last / layers:.1%} of the "
              f"blocks' linear weights), with the embeddings and the LM head {share:.1%} of all matmul weights")
    from .fp4 import RECIPES  # noqa: PLC0415 (torch: imported only here)

    r = RECIPES.get(recipe)
    on = [w for flag, w in ((r.weight_2d, "2-D weight scales"), (r.hadamard, "Hadamard on wgrad"),
                            (r.stochastic, "stochastic rounding")) if flag] if r else []
    numerics = (f"NVFP4 with {', '.join(on)}" if on else "NVFP4 rounded to nearest (no 2-D scales, Hadamard or "
                "stochastic rounding)") if r else "NVFP4"
    return f"{recipe}: {numerics}, {blocks}; {NVIDIA_KEPT}"


class SeedInterval(NamedTuple):
    """A mean over seeds and its 95% interval."""

    mean: float
    low: float
    high: float


def seed_interval(values: Sequence[float]) -> SeedInterval:
    """Mean and 95% Student-t interval of per-seed values (the seed is the unit of replication).

    A t interval, not a percentile bootstrap: with 5 seeds a bootstrap's interval is too narrow.
    """
    n = len(values)
    if n < 2:
        raise InputError(f"A seed-level interval needs at least 2 seeds; got {n}.")
    mean = statistics.fmean(values)
    half = (_T975[n - 2] if n <= 31 else 1.96) * statistics.stdev(values) / n ** 0.5
    return SeedInterval(mean, mean - half, mean + half)


def _verdict(low: float, high: float) -> str:
    return "above the baseline" if low > 0 else "below the baseline" if high < 0 else "not distinguishable from the baseline"


@dataclass
class Ablation:
    """An NVFP4 ablation over seeds: every run of a seed starts from the same weights (``init_from``, or the seed's
    random initialisation when it is ``None``) and reads the same tokens in the same order as its seed's baseline.

    ``per_seed``: seed, run, the final validation loss (quantised forward for NVFP4 runs), the loss of the same
    run's float32 master weights unquantised (``master_val_loss``), and both gaps to that seed's baseline.
    ``at_start``: the same at step 0, before any arm trained (the first seed's runs: every seed forks the same
    weights) — every arm holds the checkpoint's weights, so an NVFP4 arm's gap there is its forward pass's rounding
    alone (``rounding_gap`` in ``gaps``, with a paired bootstrap interval over the windows, ``rounding_low`` /
    ``rounding_high``), and the baseline's loss is ``start_loss``; ``gaps``' baseline row carries ``moved`` (end −
    start, per seed, with its interval): a continuation that does not move the baseline has trained nothing, and its
    gaps measure rounding, not training.
    ``curve``: per NVFP4 run and evaluation step, the mean gap over seeds with its 95% seed-level interval (the gap
    against tokens). ``gaps``: per run, the final gap, its interval and the verdict read from it, the smallest gap the
    seeds detect and the seeds a gap of the paper's size would need (``seeds_for_paper``), and the same for the
    master weights. ``high_precision_share``: per run, the share of matmul weights kept out of NVFP4 (LM head
    included); ``kept_blocks`` and ``block_share``: the decoder blocks kept in high precision, and their share of
    the blocks' linear weights (NVIDIA's ≈ 16 % is this one). ``init_from``: the checkpoint every run continued from.
    """

    per_seed: Any
    curve: Any
    gaps: Any
    high_precision_share: dict[str, float]
    seeds: list[int]
    steps: int
    tokens_per_run: int
    parameters: int
    wall_s: float
    init_from: str | None = None
    kept_blocks: dict[str, int] | None = None
    block_share: dict[str, float] | None = None
    at_start: Any = None
    start_loss: float | None = None

    def contrast(self, run: str, reference: str) -> dict[str, Any]:
        """``run``'s final loss minus ``reference``'s, per seed, with its 95% seed-level interval and verdict.

        ``contrast("nvfp4_recipe", "nvfp4_rtn")`` below zero: the recipe closes part of round-to-nearest's gap.
        """
        table = self.per_seed.pivot(index="seed", columns="run", values="val_loss")
        missing = {run, reference} - set(table.columns)
        if missing:
            raise InputError(f"No run called {', '.join(sorted(missing))} in this ablation ({', '.join(table.columns)}).")
        diff, low, high = seed_interval((table[run] - table[reference]).tolist())
        return {"run": run, "reference": reference, "difference": diff, "low": low, "high": high,
                "verdict": _verdict(low, high).replace("the baseline", reference)}


def ablation(corpus: corpus_lib.Corpus, *, launch, out_dir: Path, recipes: Sequence[str], seeds: Sequence[int],
             keep_last: int, steps: int, evals: int = 4, timeout: float | None = None, init_from: str | Path | None = None,
             **settings) -> Ablation:
    """The baseline and each NVFP4 recipe, ``steps`` steps per seed, every run of every seed in one torchrun job.

    ``init_from`` (a run saved with ``save_final=True``): every run continues from those weights and AdamW moments —
    as the paper's own ablation continues a partly trained model — so the arms are compared on a model that already
    knows its language; ``None``: every run starts from its seed's random weights (NVFP4 from the first step). A
    seed fixes the batches and the recipe's random draws (and, from scratch, the initial weights): within a seed every
    variant starts from the same weights and sees the same tokens in the same order, so the per-seed gap is paired
    and the seed is the unit of replication. Every run is evaluated ``evals`` times (the gap against tokens); NVFP4
    runs also with their master weights unquantised. ``keep_last`` blocks stay in high precision in every NVFP4
    variant whose recipe keeps blocks (``Recipe.keep_last > 0``: the full recipe and every leave-one-out arm but
    ``nvfp4_no_kept``); the others keep none. The shares are returned and should be stated.
    ``settings`` are :func:`train`'s (``size``, ``seq_len``, ``batch_size``, ``lr``…). ``timeout`` (the one torchrun
    job's): by default an hour, or 5 s per step of every run when that is longer (a simulated NVFP4 step of the
    spark profile's model is seconds on a GB10).
    """
    import pandas as pd  # noqa: PLC0415

    from . import fp4  # noqa: PLC0415 (torch: imported only here)

    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise InputError(f"An ablation needs at least 2 distinct seeds for a seed-level interval; got {list(seeds)}.")
    unknown = [r for r in recipes if r not in fp4.RECIPES]
    if unknown or len(set(recipes)) != len(recipes):
        raise InputError(f"Ablation recipes must be distinct names among {', '.join(fp4.RECIPES)}; got {list(recipes)}.")
    size = model_lib.SIZES.get(settings.get("size", "tiny")) if isinstance(settings.get("size", "tiny"), str) else settings["size"]
    layers = size.layers if size is not None else None
    kept_blocks = {name: (keep_last if fp4.RECIPES[name].keep_last > 0 else 0) for name in recipes}
    names = ["baseline", *recipes]
    variants = {f"seed{seed}/{name}": {"seed": seed, "recipe": None if name == "baseline" else name,
                                       "keep_last": kept_blocks.get(name), "eval_start": seed == seeds[0]}
                for seed in seeds for name in names}  # step 0 is the same checkpoint for every seed: scored once
    settings = {"eval_every": max(steps // evals, 1), "sample_tokens": 0, **settings}
    timeout = timeout if timeout is not None else max(3600.0, 5.0 * steps * len(variants))
    if init_from is not None:
        settings["init_from"] = str(init_from)
    runs = train_variants(corpus, variants, launch=launch, out_dir=out_dir, timeout=timeout, steps=steps, **settings)
    rows = []
    for seed in seeds:
        base = runs[f"seed{seed}/baseline"].evals.set_index("step")["val_loss"]
        for name in names:
            evaluated = runs[f"seed{seed}/{name}"].evals
            master = evaluated["master_val_loss"] if "master_val_loss" in evaluated else evaluated["val_loss"]
            for step, tokens, loss, kept in zip(evaluated["step"], evaluated["tokens_seen"], evaluated["val_loss"], master):
                rows.append({"seed": seed, "run": name, "step": int(step), "tokens": int(tokens), "val_loss": float(loss),
                             "master_val_loss": float(kept), "gap": float(loss - base[step]),
                             "master_gap": float(kept - base[step])})
    every = pd.DataFrame(rows)
    curve = []
    trained = every[every["step"] > 0]  # step 0: the checkpoint itself, scored before any arm trained
    for (name, step), group in trained[trained["run"] != "baseline"].groupby(["run", "step"], sort=False):
        gap, master = seed_interval(group["gap"].tolist()), seed_interval(group["master_gap"].tolist())
        curve.append({"run": name, "step": step, "tokens": int(group["tokens"].iloc[0]), "gap": gap.mean,
                      "gap_low": gap.low, "gap_high": gap.high, "master_gap": master.mean, "master_low": master.low,
                      "master_high": master.high})
    per_seed = every[every["step"] == every["step"].max()].reset_index(drop=True)
    at_start = every[every["step"] == 0].reset_index(drop=True)
    start = float(at_start[at_start["run"] == "baseline"]["val_loss"].iloc[0])
    first_base = runs[f"seed{seeds[0]}/baseline"].start_window_losses
    summary = []
    baseline_loss = float(per_seed[per_seed["run"] == "baseline"]["val_loss"].mean())  # the paper's gap is relative
    for name in names:
        mine = per_seed[per_seed["run"] == name]
        row = {"run": name, "seeds": len(mine), "val_loss": float(mine["val_loss"].mean()),
               "tokens_per_s": statistics.median(runs[f"seed{s}/{name}"].tokens_per_s for s in seeds),
               "high_precision_share": runs[f"seed{seeds[0]}/{name}"].config["high_precision_share"]}
        if name == "baseline":
            moved = seed_interval((mine["val_loss"] - start).tolist())
            row.update(moved=moved.mean, moved_low=moved.low, moved_high=moved.high)
        else:
            gap, master = seed_interval(mine["gap"].tolist()), seed_interval(mine["master_gap"].tolist())
            rounding, low, high = paired_bootstrap(runs[f"seed{seeds[0]}/{name}"].start_window_losses, first_base)
            row.update(rounding_gap=float(at_start[at_start["run"] == name]["gap"].iloc[0]), rounding_low=low,
                       rounding_high=high)
            row.update(gap=gap.mean, gap_low=gap.low, gap_high=gap.high, half_width=(gap.high - gap.low) / 2,
                       detectable=detectable_gap(mine["gap"].tolist()),
                       seeds_for_paper=seeds_needed(mine["gap"].tolist(), PAPER_RELATIVE_GAP * baseline_loss),
                       verdict=_verdict(gap.low, gap.high), master_gap=master.mean, master_low=master.low,
                       master_high=master.high, master_verdict=_verdict(master.low, master.high))
        summary.append(row)
    first = runs[f"seed{seeds[0]}/baseline"]
    gaps = pd.DataFrame(summary).astype({"seeds_for_paper": "Int64"})  # a count: 16, not 16.0 (the baseline row has none)
    return Ablation(per_seed=per_seed, curve=pd.DataFrame(curve), gaps=gaps,
                    high_precision_share={n: runs[f"seed{seeds[0]}/{n}"].config["high_precision_share"] for n in names},
                    seeds=list(seeds), steps=steps,
                    tokens_per_run=steps * first.config["batch_size"] * first.config["seq_len"],
                    parameters=first.parameters, wall_s=sum(r.wall_s for r in runs.values()),
                    init_from=None if init_from is None else str(init_from), kept_blocks=kept_blocks,
                    block_share={n: k / layers for n, k in kept_blocks.items()} if layers else None,
                    at_start=at_start, start_loss=start)
