"""txt2kg's trivial baselines: the LLM with no context, and the resolver that merges nothing, judged pairwise."""
import math

from types import SimpleNamespace

import numpy as np

import sparkbooks as sb
from sparkbooks.retrieval.kg import ask, baselines, resolve

from .scripted_server import scripted

KEY = {"denmark": "Denmark", "dnk": "Denmark", "germany": "Germany", "deu": "Germany", "niger": "Niger",
       "nigeria": "Nigeria"}
NAMES = ["Denmark", "DNK", "Denmark (DNK)", "Germany", "the Germany", "DEU", "Niger", "Nigeria"]


def test_the_resolver_that_merges_nothing_finds_no_pair_and_misses_every_merge():
    null = baselines.null_resolver(NAMES)
    assert null.merges == [] and null("DNK") == "DNK" and null("Denmark") == "Denmark"
    scores = baselines.pairwise_scores(null, NAMES, KEY)
    # judged: denmark, dnk, germany, deu, niger, nigeria ("the Germany" is germany's surface key; "Denmark (DNK)" unknown)
    assert scores["surfaces"] == 6 and scores["true_pairs"] == 2 and scores["predicted_pairs"] == 0
    assert scores["recall"] == 0 and scores["f1"] == 0 and scores["missed_merges"] == 2


def test_pairwise_scores_credit_right_merges_and_count_wrong_ones():
    rules = resolve.resolve(NAMES)  # "Denmark (DNK)" declares DNK a name of Denmark; nothing joins DEU to Germany
    scores = baselines.pairwise_scores(rules, NAMES, KEY)
    assert (scores["right_pairs"], scores["missed_merges"], scores["wrong_merges"]) == (1, 1, 0)
    assert scores["precision"] == 1 and scores["recall"] == 0.5

    def embed(names):  # a similarity that joins Niger with Nigeria (and nothing else)
        return np.array([[1.0, 0.0] if n.startswith("niger") else [0.0, 1.0 + i] for i, n in enumerate(names)])

    def unit(names):
        v = embed(names)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    risky = resolve.resolve(["Niger", "Nigeria", "Germany"], embed=unit, threshold=0.9)
    wrong = baselines.pairwise_scores(risky, ["Niger", "Nigeria", "Germany"], KEY)
    assert wrong["wrong_merges"] == 1 and wrong["precision"] == 0 and math.isnan(wrong["recall"])  # no true pair: nothing to judge


def test_closed_book_answers_from_memory_with_nothing_in_context():
    q = SimpleNamespace(id="q1", hops=1, question="What is the capital of Denmark?", answers=["Copenhagen"])
    with scripted([{"content": "Copenhagen."}]) as (url, requests):
        endpoint = sb.llm.connect(url)
        table = ask.compare([q], {"closed book": lambda text: baselines.closed_book(endpoint, text, seed=0)})
    assert "Passages" not in requests[0]["messages"][-1]["content"]
    row = table.iloc[0]
    assert row["method"] == "closed book" and row["correct"] and not row["answer_in_context"]


def test_no_pair_to_judge_is_not_a_perfect_score():
    # "0 of 0 true pairs merged" printed as pairwise F1 1.00 in the guide: nothing was judged, so nothing is claimed
    lone = resolve.Resolver({"denmark": "denmark", "berlin": "berlin"}, {"denmark": "Denmark", "berlin": "Berlin"}, [])
    scores = baselines.pairwise_scores(lone, ["Denmark", "Berlin"], {"denmark": "DNK", "berlin": "Berlin"})
    assert scores["true_pairs"] == scores["predicted_pairs"] == 0 and math.isnan(scores["f1"])
