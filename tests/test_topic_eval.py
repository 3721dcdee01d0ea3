"""Fair topic scoring: fixed top-k coherence, gensim-style smoothing, AMI with a chance baseline, baselines."""

import numpy as np
import pytest
import scipy.sparse as sp

from sparkbooks import topics
from sparkbooks import corpora as datasets
from sparkbooks.topics import evaluate as topic_eval
from sparkbooks.exceptions import InputError


def _docs():
    vocab = np.array(["a", "b", "c", "d"])
    # a and b always together; c and d never together
    rows = [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    return sp.csr_matrix(np.array(rows)), vocab


def test_short_topics_score_minus_one_instead_of_leaving_the_mean():
    counts, vocab = _docs()
    scores = topic_eval.coherence([["a", "b"], ["a"], ["zzz", "a"]], counts, vocab)
    assert scores[0] == pytest.approx(np.log(0.5 / 0.25) / -np.log(0.5))
    assert scores[1] == -1 and scores[2] == -1  # one word, or one known word: nothing to co-occur


def test_gensim_smoothing_by_hand():
    counts, vocab = _docs()
    strict = topic_eval.coherence([["c", "d"]], counts, vocab)
    smooth = topic_eval.coherence([["c", "d"]], counts, vocab, eps=1e-12)
    assert strict[0] == -1.0
    assert smooth[0] == pytest.approx(np.log(1e-12 / (0.5 * 0.25)) / -np.log(1e-12))  # ≈ −0.83, not −1


def test_fixed_top_k_cuts_every_topic_to_the_same_length():
    counts, vocab = _docs()
    assert topic_eval.coherence([["a", "b", "c", "d"]], counts, vocab, top_k=2)[0] == topic_eval.coherence(
        [["a", "b"]], counts, vocab)[0]


def test_agreement_by_hand_and_against_chance():
    rng = np.random.default_rng(0)
    reference = np.repeat(["x", "y", "z"], 100)
    perfect = np.repeat([0, 1, 2], 100)
    noisy = np.where(rng.random(300) < 0.1, -1, perfect)
    scores = topic_eval.agreement(noisy, reference, permutations=10)
    assert scores["ami_clustered"] == pytest.approx(1.0) and scores["ami"] < 1.0
    assert abs(scores["ami_shuffled"]) < 0.02 and scores["clusters"] == 3
    assert scores["outlier_share"] == pytest.approx(np.mean(noisy < 0))
    with pytest.raises(InputError, match="one each"):
        topic_eval.agreement(perfect[:10], reference)


def test_baselines_recover_separable_groups_and_refuse_bad_input():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], 60)
    embeddings = rng.normal(size=(180, 8)) + groups[:, None] * 6
    words = np.zeros((180, 9))
    for g in range(3):
        words[groups == g, 3 * g:3 * g + 3] = rng.poisson(3, size=(60, 3)) + 1
    counts = sp.csr_matrix(words)
    from sklearn.metrics import adjusted_rand_score

    for method in ("lda", "nmf"):
        assert adjusted_rand_score(groups, topic_eval.baseline(method, 3, counts=counts)) > 0.9, method
    assert adjusted_rand_score(groups, topic_eval.baseline("kmeans", 3, embeddings=embeddings)) == 1.0
    with pytest.raises(InputError, match="Unknown baseline"):
        topic_eval.baseline("bertopic", 3, counts=counts)
    with pytest.raises(InputError, match="needs embeddings"):
        topic_eval.baseline("kmeans", 3, counts=counts)


def test_bbc_news_has_its_five_editorial_classes():
    news = datasets.bbc_news()
    assert len(news) == 2224 and news["label"].value_counts().to_dict() == {
        "business": 510, "sport": 510, "politics": 417, "tech": 401, "entertainment": 386}
    assert not news["text"].str.contains("Â").any()  # decoded as UTF-8, not mojibake
    assert len(datasets.corpus("bbc-news", n=100, seed=1)) == 100
