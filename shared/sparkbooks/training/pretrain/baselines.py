"""The trivial language models a pretrained model must beat: unigram and bigram tables counted from the training split.

Both are scored on exactly the validation windows the worker scores (:func:`sparkbooks.training.pretrain.worker._evaluate`):
window ``i`` is tokens ``i·T … i·T + T`` of the validation split, and each of its ``T`` next tokens is predicted
from what precedes it — the unigram table ignores the context, the bigram table reads the one token before.
The result is the mean cross-entropy in nats per token, per window and overall, on the same footing as ``val_loss``.

Smoothing (stated, not tuned on the validation split):

* **unigram** — add-one (Laplace) over the tokenizer's whole vocabulary: ``P(b) = (c(b) + 1) / (N + V)``;
* **bigram** — interpolated absolute discounting with ``d = 0.75`` (the discount Kneser–Ney uses), backing off to
  the unigram above: ``P(b | a) = max(c(a, b) − d, 0) / c(a) + d · n(a) / c(a) · P(b)`` where ``n(a)`` is the
  number of distinct tokens seen after ``a``; an ``a`` never seen in training falls back to ``P(b)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ...exceptions import InputError

__all__ = ["DISCOUNT", "NgramBaselines", "Targets", "bigram_sample", "bigram_table", "known_word_share", "ngram_baselines",
           "unigram_table", "window_targets", "word_set"]

#: The bigram's absolute discount (Kneser–Ney's usual 0.75).
DISCOUNT = 0.75
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class NgramBaselines:
    """Unigram and bigram cross-entropy (nats/token) of the validation windows, overall and per window."""

    unigram_ce: float
    bigram_ce: float
    unigram_windows: list[float]
    bigram_windows: list[float]
    windows: int
    seq_len: int
    train_tokens: int
    smoothing: str = f"unigram add-one; bigram interpolated absolute discounting d = {DISCOUNT} to the unigram"


class Targets(NamedTuple):
    """The token before each prediction and the token predicted, shape (windows, seq_len) each."""

    previous: np.ndarray
    following: np.ndarray


def window_targets(tokens: np.ndarray, *, seq_len: int, windows: int) -> Targets:
    """(previous token, next token) for every prediction of the first ``windows`` consecutive windows, shape (w, T).

    The same windows as the worker's evaluation: ``min(windows, (len − 1) // seq_len)`` of them.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    usable = min(windows, (len(tokens) - 1) // seq_len)
    if usable < 1:
        raise InputError(f"{len(tokens)} validation tokens hold no window of {seq_len} + 1 tokens.")
    rows = np.stack([tokens[i * seq_len:i * seq_len + seq_len + 1] for i in range(usable)])
    return Targets(rows[:, :-1], rows[:, 1:])


def unigram_table(train: np.ndarray, vocab_size: int) -> np.ndarray:
    """Add-one unigram probabilities over ``vocab_size`` tokens, counted from ``train``."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).astype(np.float64)
    return (counts + 1.0) / (counts.sum() + vocab_size)


def bigram_table(train: np.ndarray, vocab_size: int):
    """The counts the interpolated bigram needs: sorted pair keys ``a·V + b`` with their counts, c(a·) and n(a·)."""
    train = np.asarray(train, dtype=np.int64)
    keys, pair_counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)
    context_counts = np.bincount(train[:-1], minlength=vocab_size).astype(np.float64)
    distinct_after = np.bincount(keys // vocab_size, minlength=vocab_size).astype(np.float64)
    return keys, pair_counts.astype(np.float64), context_counts, distinct_after


def _bigram_probability(prev: np.ndarray, nxt: np.ndarray, table, unigram: np.ndarray, vocab_size: int,
                        discount: float) -> np.ndarray:
    keys, pair_counts, context_counts, distinct_after = table
    query = prev * vocab_size + nxt
    at = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    c_ab = np.where(keys[at] == query, pair_counts[at], 0.0)
    c_a, n_a = context_counts[prev], distinct_after[prev]
    seen = c_a > 0
    safe = np.where(seen, c_a, 1.0)
    p = np.maximum(c_ab - discount, 0.0) / safe + discount * n_a / safe * unigram[nxt]
    return np.where(seen, p, unigram[nxt])


def ngram_baselines(train: np.ndarray, val: np.ndarray, *, vocab_size: int, seq_len: int, windows: int,
                    discount: float = DISCOUNT) -> NgramBaselines:
    """Unigram and bigram cross-entropy of ``val``'s first ``windows`` windows of ``seq_len``, counted from ``train``.

    ``train`` and ``val`` are token arrays (a corpus's ``tokens("train")`` / ``tokens("val")``); ``vocab_size`` is
    the tokenizer's. Per-window losses come back too, for a paired comparison with the model's ``window_losses``.
    """
    if not 0 < discount < 1:
        raise InputError(f"discount must be in (0, 1); got {discount}.")
    train = np.asarray(train, dtype=np.int64)
    prev, nxt = window_targets(val, seq_len=seq_len, windows=windows)
    unigram = unigram_table(train, vocab_size)
    uni = -np.log(unigram[nxt])
    bi = -np.log(_bigram_probability(prev, nxt, bigram_table(train, vocab_size), unigram, vocab_size, discount))
    return NgramBaselines(unigram_ce=float(uni.mean()), bigram_ce=float(bi.mean()),
                          unigram_windows=uni.mean(axis=1).tolist(), bigram_windows=bi.mean(axis=1).tolist(),
                          windows=int(prev.shape[0]), seq_len=seq_len, train_tokens=int(train.size),
                          smoothing=f"unigram add-one; bigram interpolated absolute discounting d = {discount} "
                                    f"to the unigram")


def bigram_sample(train: np.ndarray, prompt: Sequence[int], *, vocab_size: int, tokens: int, seed: int = 0,
                  temperature: float = 0.8, top_k: int = 40, discount: float = DISCOUNT) -> list[int]:
    """Continue ``prompt`` by ``tokens`` ids drawn from the bigram table, as the worker samples the model.

    The same temperature and top-k as :func:`sparkbooks.training.pretrain.worker._sample`, so the two samples
    can be set side by side: what pair statistics alone write.
    """
    train = np.asarray(train, dtype=np.int64)
    table, unigram = bigram_table(train, vocab_size), unigram_table(train, vocab_size)
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    every = np.arange(vocab_size)
    for _ in range(tokens):
        p = _bigram_probability(np.full(vocab_size, ids[-1]), every, table, unigram, vocab_size, discount)
        logits = np.log(p) / temperature
        top = np.argsort(logits)[-top_k:]
        weights = np.exp(logits[top] - logits[top].max())
        ids.append(int(top[rng.choice(len(top), p=weights / weights.sum())]))
    return ids


def word_set(texts: Sequence[str], *, min_count: int = 5, min_length: int = 3) -> set[str]:
    """The lower-cased words of ``texts`` with at least ``min_length`` letters seen at least ``min_count`` times.

    A dictionary to check samples against: the thresholds leave out the initials, codes and one-off names
    that would let random letters pass as words.
    """
    from collections import Counter  # noqa: PLC0415

    counts = Counter(w.lower() for t in texts for w in _WORD.findall(t) if len(w) >= min_length)
    return {w for w, c in counts.items() if c >= min_count}


def known_word_share(text: str, words: set[str], *, prompt: str = "", min_length: int = 3) -> float:
    """The share of the words of ``text`` (after ``prompt``, at least ``min_length`` letters) found in ``words``.

    A crude, readable measure of a sample: random bytes score near 0, prose near 1; 0 when the sample holds no
    such word. The last word is left out (the sample may stop inside it).
    """
    body = text[len(prompt):] if prompt and text.startswith(prompt) else text
    found = [w for w in _WORD.findall(body)[:-1] if len(w) >= min_length]
    return sum(w.lower() in words for w in found) / len(found) if found else 0.0
