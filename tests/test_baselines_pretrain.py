"""The pretrain guide's trivial baselines: unigram and bigram cross-entropy of the validation windows."""

import math

import numpy as np
import pytest

from sparkbooks.exceptions import InputError
from sparkbooks.training.pretrain import baselines


def test_unigram_cross_entropy_is_the_add_one_entropy_computed_by_hand():
    train = np.array([0, 1, 1, 2, 1, 0])  # counts 2, 3, 1 over a vocabulary of 4 → add-one: 3/10, 4/10, 2/10, 1/10
    val = np.array([1, 0, 1, 2, 3])  # one window of 4 predictions: 0, 1, 2, 3
    got = baselines.ngram_baselines(train, val, vocab_size=4, seq_len=4, windows=8)
    by_hand = -(math.log(3 / 10) + math.log(4 / 10) + math.log(2 / 10) + math.log(1 / 10)) / 4
    assert got.windows == 1 and got.unigram_ce == pytest.approx(by_hand, rel=1e-12)
    assert got.unigram_windows == [pytest.approx(by_hand, rel=1e-12)]


def test_unigram_on_its_own_training_text_approaches_the_text_entropy():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.125, 0.125])
    train = rng.choice(4, size=200_000, p=p)
    entropy = -(p * np.log(p)).sum()
    got = baselines.ngram_baselines(train, train[:50_001], vocab_size=4, seq_len=100, windows=500)
    assert got.unigram_ce == pytest.approx(entropy, abs=0.01)


def test_bigram_probabilities_sum_to_one_for_every_context():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 7, size=500)
    train[train == 6] = 5  # token 6 never occurs: an unseen context and an unseen next token
    table = baselines.bigram_table(train, 7)
    unigram = baselines.unigram_table(train, 7)
    for a in range(7):
        total = baselines._bigram_probability(np.full(7, a), np.arange(7), table, unigram, 7, baselines.DISCOUNT).sum()
        assert total == pytest.approx(1.0, abs=1e-12), a


def test_bigram_beats_unigram_on_structured_text_and_ties_on_shuffled_text():
    rng = np.random.default_rng(2)
    cycle = np.tile(np.arange(8), 5_000)  # each token fixes the next one
    noisy = np.where(rng.random(cycle.size) < 0.05, rng.integers(0, 8, cycle.size), cycle)
    train, val = noisy[:30_000], noisy[30_000:]
    structured = baselines.ngram_baselines(train, val, vocab_size=8, seq_len=64, windows=100)
    assert structured.bigram_ce < structured.unigram_ce - 1.0  # unigram ≈ log 8 = 2.08, bigram ≈ 0.3
    shuffled = rng.permutation(noisy)
    iid = baselines.ngram_baselines(shuffled[:30_000], shuffled[30_000:], vocab_size=8, seq_len=64, windows=100)
    assert iid.bigram_ce == pytest.approx(iid.unigram_ce, abs=0.02)  # no structure: no better than the unigram
    assert len(structured.bigram_windows) == structured.windows == 100


def test_windows_are_the_workers_validation_windows():
    torch = pytest.importorskip("torch")
    from sparkbooks.training.pretrain import corpus, worker

    val = np.arange(1000) % 251
    prev, nxt = baselines.window_targets(val, seq_len=16, windows=10)
    rows = worker._windows(val, corpus.eval_offsets(len(val), seq_len=16, windows=10), 16)
    assert torch.equal(torch.from_numpy(prev), rows[:, :-1]) and torch.equal(torch.from_numpy(nxt), rows[:, 1:])
    assert baselines.window_targets(val[:40], seq_len=16, windows=10)[0].shape == (2, 16)  # only whole windows
    with pytest.raises(InputError, match="no window"):
        baselines.window_targets(val[:10], seq_len=16, windows=10)


def test_validation_windows_spread_over_at_least_fifty_documents():
    from sparkbooks.training.pretrain import corpus

    rng = np.random.default_rng(3)  # 222 held-out documents of 500–4,000 tokens, each ended by the end-of-text id 0
    val = np.concatenate([np.append(rng.integers(1, 259, rng.integers(500, 4000)), 0) for _ in range(222)])
    offsets = corpus.eval_offsets(len(val), seq_len=64, windows=64)
    assert len(offsets) == 64 and offsets[0] == 0 and offsets[-1] == len(val) - 65  # first to last token
    assert np.all(np.diff(offsets) >= 64)  # never overlapping
    assert corpus.documents_spanned(val, offsets, seq_len=64, eot=0) >= 50
    assert corpus.documents_spanned(val, np.arange(64) * 64, seq_len=64, eot=0) <= 3  # consecutive windows: the old way
    short = corpus.eval_offsets(100, seq_len=16, windows=64)  # fewer fit than asked: every whole window, in order
    assert len(short) == 6 and short[-1] == 100 - 17 and np.all(np.diff(short) >= 16)


def test_trigram_is_computed_by_hand_and_sums_to_one_for_every_context():
    # trigram on 0 1 2 0 1 2 0 1 3: c(0,1,·) = 3 with 2 and 3 seen (n = 2); P(2 | 0 1) = (2 − d)/3 + d · 2/3 · P_bi(2 | 1)
    train = np.array([0, 1, 2, 0, 1, 2, 0, 1, 3])
    v, d = 4, baselines.DISCOUNT
    uni = baselines.unigram_table(train, v)
    bigram = baselines._bigram_probability(np.array([1]), np.array([2]), baselines.bigram_table(train, v), uni, v, d)
    tri = baselines._trigram_probability(np.array([0]), np.array([1]), np.array([2]), baselines.trigram_table(train, v),
                                         bigram, v, d)
    assert tri[0] == pytest.approx((2 - d) / 3 + d * 2 / 3 * bigram[0], rel=1e-12)
    rng = np.random.default_rng(4)
    text = rng.integers(0, 6, 400)
    table, bt = baselines.trigram_table(text, 6), baselines.bigram_table(text, 6)
    u = baselines.unigram_table(text, 6)
    for a in range(6):
        for b in range(6):
            nxt = np.arange(6)
            bp = baselines._bigram_probability(np.full(6, b), nxt, bt, u, 6, d)
            total = baselines._trigram_probability(np.full(6, a), np.full(6, b), nxt, table, bp, 6, d).sum()
            assert total == pytest.approx(1.0, abs=1e-12), (a, b)


def test_trigram_beats_bigram_where_two_tokens_fix_the_next():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, 60_000)  # x[t] = (x[t−1] + x[t−2]) mod 4 with 5 % noise: a bigram cannot see x[t−2]
    for t in range(2, a.size):
        a[t] = (a[t - 1] + a[t - 2]) % 4 if rng.random() > 0.05 else a[t]
    got = baselines.ngram_baselines(a[:40_000], a[40_000:], vocab_size=4, seq_len=64, windows=200)
    assert got.trigram_ce < got.bigram_ce - 0.5 and len(got.trigram_windows) == got.windows == 200


def test_a_bigram_sample_follows_the_table_and_words_are_checked_against_the_corpus():
    cycle = np.tile(np.arange(5), 400)  # each token fixes the next: the table can only continue the cycle
    ids = baselines.bigram_sample(cycle, [2], vocab_size=5, tokens=12, seed=0, top_k=1)
    assert ids == [2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert baselines.bigram_sample(cycle, [2], vocab_size=5, tokens=30, seed=1) == \
        baselines.bigram_sample(cycle, [2], vocab_size=5, tokens=30, seed=1)  # seeded
    words = baselines.word_set(["The minister said the budget would rise. " * 5, "Rare words once."])
    assert words == {"the", "minister", "said", "budget", "would", "rise"}  # ≥ 3 letters, ≥ 5 times
    share = baselines.known_word_share("The minister said the budgt would rise sharply", words, prompt="The minister said")
    assert share == pytest.approx(3 / 4)  # the, budgt, would, rise (the cut-off last word left out)
    assert baselines.known_word_share("zq x", words) == 0.0
