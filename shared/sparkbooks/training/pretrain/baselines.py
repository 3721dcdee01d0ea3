"""The trivial language models a pretrained model must beat: unigram, bigram and trigram tables counted from the
training split.

All are scored on exactly the validation windows the worker scores (:func:`sparkbooks.training.pretrain.worker._evaluate`):
window ``i`` is the ``T + 1`` tokens from :func:`sparkbooks.training.pretrain.corpus.eval_offsets`'s ``i``-th offset
(spread over the whole split), and each of its ``T`` next tokens is predicted from what precedes it *inside the window*
(the model's context restarts at each window too) — the unigram table ignores the context, the bigram table reads the
one token before, the trigram table the two before (the window's first prediction has one: the bigram's).
The result is the mean cross-entropy in nats per token, per window and overall, on the same footing as ``val_loss``.

Smoothing (stated, not tuned on the validation split):

* **unigram** — add-one (Laplace) over the tokenizer's whole vocabulary: ``P(b) = (c(b) + 1) / (N + V)``;
* **bigram** — interpolated absolute discounting with ``d = 0.75`` (the discount Kneser–Ney uses), backing off to
  the unigram above: ``P(b | a) = max(c(a, b) − d, 0) / c(a) + d · n(a) / c(a) · P(b)`` where ``n(a)`` is the
  number of distinct tokens seen after ``a``; an ``a`` never seen in training falls back to ``P(b)``;
* **trigram** — the same discounting one order up, backing off to the bigram:
  ``P(c | a, b) = max(c(a, b, c) − d, 0) / c(a, b) + d · n(a, b) / c(a, b) · P(c | b)``; an unseen ``(a, b)`` falls
  back to ``P(c | b)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ...exceptions import InputError

__all__ = ["DISCOUNT", "NgramBaselines", "Targets", "bigram_sample", "bigram_table", "known_word_share", "ngram_baselines",
           "trigram_sample", "trigram_table", "unigram_table", "window_targets", "word_set"]

#: The bigram's absolute discount (Kneser–Ney's usual 0.75).
DISCOUNT = 0.75
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class NgramBaselines:
    """Unigram, bigram and trigram cross-entropy (nats/token) of the validation windows, overall and per window."""

    unigram_ce: float
    bigram_ce: float
    trigram_ce: float
    unigram_windows: list[float]
    bigram_windows: list[float]
    trigram_windows: list[float]
    windows: int
    seq_len: int
    train_tokens: int
    smoothing: str = (f"unigram add-one; bigram and trigram interpolated absolute discounting d = {DISCOUNT}, "
                      f"each backing off to the order below")


class Targets(NamedTuple):
    """The token before each prediction and the token predicted, shape (windows, seq_len) each."""

    previous: np.ndarray
    following: np.ndarray


def _window_rows(tokens: np.ndarray, *, seq_len: int, windows: int) -> np.ndarray:
    """The validation windows, shape (w, T + 1), at the worker's offsets."""
    from .corpus import eval_offsets  # noqa: PLC0415

    tokens = np.asarray(tokens, dtype=np.int64)
    offsets = eval_offsets(len(tokens), seq_len=seq_len, windows=windows)
    return np.stack([tokens[o:o + seq_len + 1] for o in offsets])


def window_targets(tokens: np.ndarray, *, seq_len: int, windows: int) -> Targets:
    """(previous token, next token) for every prediction of the validation windows, shape (w, T).

    The worker's windows: ``min(windows, (len − 1) // seq_len)`` of them, spread over the split
    (:func:`sparkbooks.training.pretrain.corpus.eval_offsets`).
    """
    rows = _window_rows(tokens, seq_len=seq_len, windows=windows)
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


def trigram_table(train: np.ndarray, vocab_size: int):
    """The counts the interpolated trigram needs: sorted triple keys ``(a·V + b)·V + c`` with their counts, and per
    context ``a·V + b`` (sorted keys) its count c(a, b ·) and the number of distinct tokens after it n(a, b ·)."""
    train = np.asarray(train, dtype=np.int64)
    v = vocab_size
    keys, counts = np.unique((train[:-2] * v + train[1:-1]) * v + train[2:], return_counts=True)
    contexts, first = np.unique(keys // v, return_index=True)
    context_counts = np.add.reduceat(counts, first).astype(np.float64)
    distinct = np.diff(np.append(first, len(keys))).astype(np.float64)
    return keys, counts.astype(np.float64), contexts, context_counts, distinct


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    at = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    return np.where(keys[at] == query, values[at], 0.0)


def _trigram_probability(prev2: np.ndarray, prev: np.ndarray, nxt: np.ndarray, table, bigram_p: np.ndarray,
                         vocab_size: int, discount: float) -> np.ndarray:
    keys, counts, contexts, context_counts, distinct = table
    context = prev2 * vocab_size + prev
    c_abc = _lookup(keys, counts, context * vocab_size + nxt)
    c_ab, n_ab = _lookup(contexts, context_counts, context), _lookup(contexts, distinct, context)
    seen = c_ab > 0
    safe = np.where(seen, c_ab, 1.0)
    p = np.maximum(c_abc - discount, 0.0) / safe + discount * n_ab / safe * bigram_p
    return np.where(seen, p, bigram_p)


def ngram_baselines(train: np.ndarray, val: np.ndarray, *, vocab_size: int, seq_len: int, windows: int,
                    discount: float = DISCOUNT) -> NgramBaselines:
    """Unigram, bigram and trigram cross-entropy of ``val``'s ``windows`` windows of ``seq_len``, counted from ``train``.

    ``train`` and ``val`` are token arrays (a corpus's ``tokens("train")`` / ``tokens("val")``); ``vocab_size`` is
    the tokenizer's. Per-window losses come back too, for a paired comparison with the model's ``window_losses``.
    """
    if not 0 < discount < 1:
        raise InputError(f"discount must be in (0, 1); got {discount}.")
    train = np.asarray(train, dtype=np.int64)
    rows = _window_rows(val, seq_len=seq_len, windows=windows)
    prev, nxt = rows[:, :-1], rows[:, 1:]
    unigram = unigram_table(train, vocab_size)
    uni = -np.log(unigram[nxt])
    bigram_p = _bigram_probability(prev, nxt, bigram_table(train, vocab_size), unigram, vocab_size, discount)
    bi = -np.log(bigram_p)
    tri_p = bigram_p.copy()  # the window's first prediction sees one token: the bigram's
    tri_p[:, 1:] = _trigram_probability(rows[:, :-2], rows[:, 1:-1], rows[:, 2:], trigram_table(train, vocab_size),
                                        bigram_p[:, 1:], vocab_size, discount)
    tri = -np.log(tri_p)
    return NgramBaselines(unigram_ce=float(uni.mean()), bigram_ce=float(bi.mean()), trigram_ce=float(tri.mean()),
                          unigram_windows=uni.mean(axis=1).tolist(), bigram_windows=bi.mean(axis=1).tolist(),
                          trigram_windows=tri.mean(axis=1).tolist(),
                          windows=int(prev.shape[0]), seq_len=seq_len, train_tokens=int(train.size),
                          smoothing=f"unigram add-one; bigram and trigram interpolated absolute discounting "
                                    f"d = {discount}, each backing off to the order below")


def bigram_sample(train: np.ndarray, prompt: Sequence[int], *, vocab_size: int, tokens: int, seed: int = 0,
                  temperature: float = 0.8, top_k: int = 40, discount: float = DISCOUNT) -> list[int]:
    """Continue ``prompt`` by ``tokens`` ids drawn from the bigram table, as the worker samples the model.

    The same temperature and top-k as :func:`sparkbooks.training.pretrain.worker._sample`, so the two samples
    can be set side by side: what pair statistics alone write.
    """
    return _table_sample(train, prompt, order=2, vocab_size=vocab_size, tokens=tokens, seed=seed,
                         temperature=temperature, top_k=top_k, discount=discount)


def trigram_sample(train: np.ndarray, prompt: Sequence[int], *, vocab_size: int, tokens: int, seed: int = 0,
                   temperature: float = 0.8, top_k: int = 40, discount: float = DISCOUNT) -> list[int]:
    """Continue ``prompt`` from the trigram table (backing off to the bigram), drawn as :func:`bigram_sample` draws.

    The table the small model does not beat on the `cpu` profile: its sample is the fair one to set beside the model's.
    """
    return _table_sample(train, prompt, order=3, vocab_size=vocab_size, tokens=tokens, seed=seed,
                         temperature=temperature, top_k=top_k, discount=discount)


def _table_sample(train: np.ndarray, prompt: Sequence[int], *, order: int, vocab_size: int, tokens: int, seed: int,
                  temperature: float, top_k: int, discount: float) -> list[int]:
    train = np.asarray(train, dtype=np.int64)
    unigram, pairs = unigram_table(train, vocab_size), bigram_table(train, vocab_size)
    triples = trigram_table(train, vocab_size) if order == 3 else None
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    every = np.arange(vocab_size)
    for _ in range(tokens):
        p = _bigram_probability(np.full(vocab_size, ids[-1]), every, pairs, unigram, vocab_size, discount)
        if triples is not None and len(ids) >= 2:
            p = _trigram_probability(np.full(vocab_size, ids[-2]), np.full(vocab_size, ids[-1]), every, triples, p,
                                     vocab_size, discount)
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
