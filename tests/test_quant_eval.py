"""Format effects on a real model (all-MiniLM-L6-v2) and the retrieval metrics."""

import numpy as np
import pytest

from sparkbooks import datasets, embeddings, quant_eval
from sparkbooks.exceptions import ChecksumMismatchError


def test_neighbours_and_recall_by_hand():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=float)
    top = quant_eval.neighbours(emb, [0, 2], k=1)
    assert top.tolist() == [[1], [3]]
    assert quant_eval.recall_at_k(np.array([[1, 2]]), np.array([[2, 3]])) == 0.5
    assert quant_eval.same_label_rate(top, ["a", "a", "b", "c"], [0, 2]) == 0.5


def test_health_tweets_are_the_uci_set(cache):
    tweets = datasets.health_tweets()
    assert len(tweets) == 63_326 and tweets["source"].nunique() == 16
    sample = datasets.health_tweets(n=50, seed=3)
    assert len(sample) == 50 and sample.equals(datasets.health_tweets(n=50, seed=3))


@pytest.fixture(scope="module")
def minilm():
    return embeddings.load_minilm(device="cpu")


def test_quantising_touches_every_linear_layer_and_only_a_copy(minilm):
    before = next(minilm.parameters()).detach().clone()
    done = quant_eval.quantise_linear_layers(minilm, "nvfp4")
    quantised, errors = done.model, done.errors
    assert len(errors) == 37 and (errors["relative_error"] > 0.01).all() and (errors["relative_error"] < 0.3).all()
    assert next(minilm.parameters()).detach().equal(before)
    assert quantised is not minilm


def test_compare_formats_orders_fp8_above_4bit(minilm, cache):
    tweets = datasets.health_tweets(n=200, seed=0)
    summary = quant_eval.compare_formats(minilm, tweets["text"], tweets["source"], formats=["fp8", "nvfp4"],
                                         queries=list(range(0, 200, 5))).summary
    assert summary.loc["fp32", "recall@10"] == 1.0
    assert summary.loc["fp8", "cosine_mean"] > summary.loc["nvfp4", "cosine_mean"] > 0.9


def test_tampered_weights_are_refused(monkeypatch):
    monkeypatch.setattr(embeddings, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ChecksumMismatchError):
        embeddings.load_minilm()
