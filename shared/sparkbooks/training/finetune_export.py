"""Serve what you trained: the adapter merged into the base, converted to GGUF by llama.cpp's own converter.

Part of :mod:`sparkbooks.training.finetune` (which re-exports every public name here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .. import log, sources
from ..exceptions import InputError, SourceError, require
from ..settings import settings
from .finetune_scoring import load

__all__ = ["merge", "merge_to_gguf", "to_gguf"]


def merge_to_gguf(base: Path, adapter: Path, out_path: Path, *, outtype: str = "q8_0") -> Path:
    """Merge ``adapter`` into ``base`` and convert the result to GGUF at ``out_path``; the merged folder is removed."""
    merged = Path(out_path).with_name(f".{Path(out_path).stem}-merged")
    try:
        return to_gguf(merge(base, adapter, merged), out_path, outtype=outtype)
    finally:
        shutil.rmtree(merged, ignore_errors=True)


def merge(base: Path, adapter: Path, out_dir: Path, *, dtype: str | None = None) -> Path:
    """The base with the adapter merged in, saved as a transformers folder (written whole, then renamed).

    ``dtype`` defaults to the base's own (its ``config.json``): merging Llama 3.1 8B in FP32 would take
    32 GB of memory and write 32 GB for a BF16 model — on a Spark's unified memory, beside everything else.
    """
    model, tokenizer = load(base, adapter, dtype=dtype or _stored_dtype(base))
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir


def _stored_dtype(model_dir: Path) -> str:
    """The dtype a transformers folder's weights are stored in (``dtype`` or ``torch_dtype`` in its config; float32
    when it names none or a dtype the merge does not handle)."""
    import json  # noqa: PLC0415

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{model_dir} has no readable config.json ({exc}): pass a transformers model folder.") from exc
    named = str(config.get("dtype") or config.get("torch_dtype") or "float32").removeprefix("torch.")
    return named if named in ("float32", "bfloat16", "float16") else "float32"


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

