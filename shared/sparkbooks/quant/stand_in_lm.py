"""The stand-in language model, SmolLM2-135M-Instruct, as transformers loads it — from the shipped GGUF, no model hub —
and the token windows it is scored on.

The one copy ``nvfp4-fit`` scores (:mod:`.evaluate`) and ``fine-tune`` trains.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import InputError, require

__all__ = ["StandInLM", "load_stand_in_lm", "stand_in_folder", "token_windows"]


@dataclass(frozen=True)
class StandInLM:
    """The stand-in language model (a transformers causal LM in eval mode) and its tokenizer."""

    model: Any
    tokenizer: Any


def stand_in_folder() -> Path:
    """SmolLM2-135M-Instruct as a transformers folder: dequantised from the shipped Q4_1 GGUF (checksum-verified) to
    float32 once, then cached as safetensors (the GGUF load takes ~20 s, the folder well under a second).

    The one copy ``nvfp4-fit`` scores and ``fine-tune`` trains. Nothing is fetched from a model hub.
    """
    for module in ("torch", "transformers", "accelerate", "gguf"):
        require(module, extra="models")
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    from .. import log, sources  # noqa: PLC0415
    from ..llm.llamacpp import STAND_IN_SOURCE  # noqa: PLC0415
    from ..settings import settings  # noqa: PLC0415

    gguf = sources.fetch(STAND_IN_SOURCE)
    target = Path(settings.cache_dir) / "models" / f"smollm2-135m-instruct-from-{gguf.parent.name}"
    if (target / "model.safetensors").is_file():
        return target
    start = log.info("dequantising the stand-in GGUF to a transformers folder (once, ~20 s)")
    hf_logging.disable_progress_bar()  # one bar per tensor says nothing a reader needs
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # dequantised already: save it as plain float32 weights
    model.config.__dict__.pop("quantization_config", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)  # whole or absent: a second process never reads half a folder
    log.info(f"cached at {target} ({{time_passed}})", time=start)
    return target


def load_stand_in_lm() -> StandInLM:
    """SmolLM2-135M-Instruct in float32 from :func:`stand_in_folder`, in evaluation mode."""
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    folder = stand_in_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return StandInLM(model.eval(), tokenizer)


def token_windows(tokenizer, texts: Sequence[str], *, length: int = 256, n: int | None = None):
    """The first ``length`` tokens of each text long enough to fill them, as a ``(documents, length)`` tensor."""
    import torch  # noqa: PLC0415

    windows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= length:
            windows.append(ids[:length])
        if n is not None and len(windows) == n:
            break
    if not windows:
        raise InputError(f"No text has {length} tokens: lower `length` or pass longer documents.")
    return torch.tensor(windows, dtype=torch.long)
