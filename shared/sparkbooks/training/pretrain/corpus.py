"""The pretraining corpus: registered news prose, split by document, a byte-level BPE trained on the training half.

* :func:`documents` — the texts of registered corpora (:mod:`sparkbooks.corpora`): BBC News
  (2,224 articles) and the 3,823 news articles of 2016–17 — about 18 M characters of English prose;
* :func:`prepare` — a seeded split *by document* (no article is in both halves), a byte-level BPE
  (Hugging Face ``tokenizers``) trained on the training documents only, every document encoded with
  an end-of-text token between documents, saved as ``uint16`` token files beside the tokenizer;
* :func:`check_fits` — the corpus holds at least one batch and one validation window, before any rank starts;
* :func:`eval_offsets` — where the validation windows start: spread evenly over the whole held-out split, so a
  loss averages over many articles (:func:`documents_spanned` counts them), not over the first few.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import fileio
from ...exceptions import InputError

__all__ = ["Corpus", "EOT", "META", "check_fits", "documents", "documents_spanned", "eval_offsets", "load",
           "load_tokenizer", "prepare"]

EOT = "<|endoftext|>"


def documents(names: Sequence[str] = ("bbc-news", "news-articles"), *, limit: int | None = None) -> list[str]:
    """The texts of the registered corpora ``names``, in a fixed order (``limit``: the first N of each)."""
    from ... import corpora as datasets  # noqa: PLC0415

    texts: list[str] = []
    for name in names:
        if name not in datasets.CORPORA:
            raise InputError(f"Unknown corpus {name!r}: use any of {', '.join(datasets.CORPORA)}.")
        frame = datasets.CORPORA[name]()
        texts.extend(frame["text"].tolist()[:limit])
    return [t for t in texts if t.strip()]


@dataclass(frozen=True)
class Corpus:
    """Token files and the tokenizer they were made with."""

    folder: Path
    vocab_size: int
    train_docs: int
    val_docs: int
    train_chars: int
    train_tokens: int
    val_tokens: int

    @property
    def tokenizer_path(self) -> Path:
        return self.folder / "tokenizer.json"

    @property
    def train_path(self) -> Path:
        return self.folder / "train.u16"

    @property
    def val_path(self) -> Path:
        return self.folder / "val.u16"

    def tokens(self, split: str) -> np.ndarray:
        """The token ids of ``split`` ("train" or "val"), memory-mapped."""
        return np.memmap(self.train_path if split == "train" else self.val_path, dtype=np.uint16, mode="r")

    @property
    def chars_per_token(self) -> float:
        return self.train_chars / max(self.train_tokens, 1)


META = "corpus.json"  # written last: a folder with it is whole


def _digest(texts: Sequence[str], vocab_size: int, val_fraction: float, seed: int) -> str:
    h = hashlib.sha256(f"{vocab_size}|{val_fraction}|{seed}|".encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()[:16]


def prepare(texts: Sequence[str], out: Path, *, vocab_size: int = 4096, val_fraction: float = 0.1,
            seed: int = 0) -> Corpus:
    """Split ``texts`` by document, train the tokenizer on the training part, write the token files (cached by content).

    Raises
    ------
    InputError
        Fewer than 2 documents, a vocabulary outside 259…65,535, or a validation fraction outside (0, 0.5].
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415

    if len(texts) < 2:
        raise InputError(f"Pretraining needs at least 2 documents (one to validate on); got {len(texts)}.")
    if not 259 <= vocab_size <= 65_535:
        raise InputError(f"vocab_size must be in 259…65,535 (256 bytes + specials; uint16 ids); got {vocab_size}.")
    if not 0 < val_fraction <= 0.5:
        raise InputError(f"val_fraction must be in (0, 0.5]; got {val_fraction}.")
    folder = Path(out) / f"corpus-{_digest(texts, vocab_size, val_fraction, seed)}"
    meta_path = folder / META
    if meta_path.is_file():
        return load(folder)

    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(texts) * val_fraction))
    val = [texts[i] for i in order[:n_val]]
    train = [texts[i] for i in order[n_val:]]

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(train, trainer=trainer)
    eot = tokenizer.token_to_id(EOT)

    folder.mkdir(parents=True, exist_ok=True)
    arrays = {split: np.concatenate([np.asarray(e.ids + [eot], dtype=np.uint16) for e in tokenizer.encode_batch(docs)])
              for split, docs in (("train", train), ("val", val))}
    counts = {split: int(flat.size) for split, flat in arrays.items()}
    meta = {"vocab_size": tokenizer.get_vocab_size(), "train_docs": len(train), "val_docs": len(val),
            "train_chars": sum(map(len, train)), "train_tokens": counts["train"], "val_tokens": counts["val"]}
    corpus = Corpus(folder=folder, **meta)
    for split, flat in arrays.items():
        fileio.write_bytes_atomic(corpus.train_path if split == "train" else corpus.val_path, flat.tobytes())
    fileio.write_text_atomic(corpus.tokenizer_path, tokenizer.to_str())
    fileio.write_json_atomic(meta_path, meta)  # last: its presence means the folder is whole
    return corpus


def load(folder: Path) -> Corpus:
    """The corpus :func:`prepare` wrote to ``folder`` (as the training ranks open it)."""
    meta = Path(folder) / META
    if not meta.is_file():
        raise InputError(f"{folder} holds no prepared corpus ({META} missing): run sb.training.pretrain.corpus.prepare first.")
    return Corpus(folder=Path(folder), **json.loads(meta.read_text()))


def load_tokenizer(corpus: Corpus):
    """The corpus's tokenizer (``tokenizers.Tokenizer``)."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    return Tokenizer.from_file(str(corpus.tokenizer_path))


def check_fits(corpus: Corpus, *, seq_len: int, batch_size: int, vocab_size: int) -> None:
    """Refuse, before training, a corpus smaller than one batch or a model whose vocabulary cannot hold its ids."""
    need = seq_len * batch_size + 1
    if corpus.train_tokens < need:
        raise InputError(f"The training split holds {corpus.train_tokens:,} tokens, less than one batch "
                         f"({batch_size} × {seq_len} + 1 = {need:,}): give more text or lower batch_size / seq_len.")
    if corpus.val_tokens < seq_len + 1:
        raise InputError(f"The validation split holds {corpus.val_tokens:,} tokens, less than one window of "
                         f"{seq_len + 1}: give more documents or raise val_fraction.")
    if vocab_size < corpus.vocab_size:
        raise InputError(f"The model's vocabulary ({vocab_size:,}) is smaller than the tokenizer's "
                         f"({corpus.vocab_size:,}): ids ≥ {vocab_size:,} would index past the embedding. "
                         f"Build the model with vocab_size={corpus.vocab_size}.")


def eval_offsets(n_tokens: int, *, seq_len: int, windows: int) -> np.ndarray:
    """Start offsets of the validation windows: ``windows`` windows of ``seq_len + 1`` tokens spread evenly from the
    first token to the last, never overlapping (as many as fit, where fewer fit).

    Consecutive windows from the start would score only the first few held-out articles; evenly spaced ones score
    as many articles as there are windows (nanoGPT averages random batches over the split for the same reason).
    The worker and the n-gram baselines both use these offsets, so their losses are on the same windows.
    """
    usable = min(windows, (n_tokens - 1) // seq_len)
    if usable < 1:
        raise InputError(f"{n_tokens} validation tokens hold no window of {seq_len} + 1 tokens.")
    if usable == 1:
        return np.zeros(1, dtype=np.int64)
    return np.floor(np.linspace(0, n_tokens - seq_len - 1, usable)).astype(np.int64)


def documents_spanned(tokens: np.ndarray, offsets, *, seq_len: int, eot: int) -> int:
    """How many documents (separated by the end-of-text id ``eot``) the windows at ``offsets`` take tokens from."""
    tokens = np.asarray(tokens)
    ends = np.flatnonzero(tokens == eot)  # document k is the tokens after end k−1 up to end k
    docs: set[int] = set()
    for o in offsets:
        first, last = np.searchsorted(ends, [o, o + seq_len], side="left")
        docs.update(range(int(first), int(last) + 1))
    return len(docs)
