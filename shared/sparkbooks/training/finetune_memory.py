"""Will the fine-tune fit, and did the planner predict it? The training planner applied to this run; freeing memory.

Part of :mod:`sparkbooks.training.finetune` (which re-exports every public name here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import InputError

if TYPE_CHECKING:
    from .finetune_launch import TrainRun

__all__ = ["available_bytes", "check_fits", "planned_vs_measured", "release_memory"]


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
    from ..fit.training import FIT_GATE  # noqa: PLC0415  (the fit table's ✓ uses the same gate)

    have = available_bytes(device) if available is None else available
    sharing = ranks_here if device == "cpu" else 1
    need = plan.total * sharing
    if need > FIT_GATE * have:
        GiB = 2**30
        raise InputError(
            f"This run will not fit: the planner needs {plan.total / GiB:.1f} GiB per rank × {sharing} rank(s) sharing "
            f"this {device}'s memory = {need / GiB:.1f} GiB (activations {plan.activations / GiB:.1f}, weights "
            f"{plan.weights / GiB:.1f}), and {have / GiB:.1f} GiB is available. Lower global_batch, set "
            f"gradient_checkpointing=True, shorten the examples, or spread the ranks over more machines.")


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

