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


# ---- issue 48: a held-out set on every profile, ε-NPMI named for what it counts, a tuned LDA, prose from the run ----

def test_coherence_refuses_an_empty_held_out_set_instead_of_scoring_minus_one():
    """The spark profile (n_docs None) left no held-out text: NPMI was −1 for every topic, with a RuntimeWarning."""
    _, vocab = _docs()
    empty = sp.csr_matrix((0, len(vocab)))
    with pytest.raises(InputError, match="empty held-out set"):
        topic_eval.coherence([["a", "b"]], empty, vocab)


def test_the_held_out_tenth_is_seeded_deduplicated_and_never_in_the_fitted_set():
    texts = [f"tweet {i}" for i in range(1_000)] + ["the same headline"] * 50 + ["tweet 7"] * 3
    split = topic_eval.split_held_out(texts, seed=3)
    assert split.duplicates == 52 and len(split.fit) + len(split.held_out) == 1_001
    assert len(split.held_out) == 101  # a tenth of the distinct texts, rounded up: never empty
    fitted, held = {texts[i] for i in split.fit}, {texts[i] for i in split.held_out}
    assert not fitted & held
    again = topic_eval.split_held_out(texts, seed=3)
    assert (again.held_out == split.held_out).all() and not (topic_eval.split_held_out(texts, seed=4).held_out
                                                             == split.held_out).all()
    with pytest.raises(InputError, match="fraction"):
        topic_eval.split_held_out(texts, fraction=0.0)


def test_the_smoothed_npmi_is_named_for_documents_and_described_with_the_right_numbers():
    text = topic_eval.EPS_NPMI_TEXT
    assert "documents" in text and "sliding windows" in text and "−0.67" in text and "−0.33" in text
    for p, said in ((1e-2, -0.67), (1e-4, -0.33)):  # the numbers the description gives, by the formula it gives
        assert np.log(topic_eval.EPS_NPMI / p**2) / -np.log(topic_eval.EPS_NPMI) == pytest.approx(said, abs=0.005)
    assert "npmi_gensim_eps" not in topic_eval.quality.__doc__


def test_lda_drops_words_in_more_than_half_the_documents_and_runs_fifty_iterations(monkeypatch):
    import sklearn.decomposition

    seen = {}

    class Spy(sklearn.decomposition.LatentDirichletAllocation):
        def fit_transform(self, X, y=None):
            seen["max_iter"], seen["columns"] = self.max_iter, X.shape[1]
            return super().fit_transform(X, y)

    monkeypatch.setattr(sklearn.decomposition, "LatentDirichletAllocation", Spy)
    rng = np.random.default_rng(0)
    words = rng.poisson(1.0, size=(60, 6)) * (rng.random((60, 6)) < 0.3)
    words[:, 0] = 5  # "said": in every document
    topic_eval.baseline("lda", 2, counts=sp.csr_matrix(words))
    assert seen == {"max_iter": 50, "columns": 5}


def test_the_bbc_prose_comes_from_the_clusters():
    reference = np.array(["business"] * 40 + ["politics"] * 40 + ["sport"] * 60)
    mixed = np.array([0] * 80 + [1] * 60)  # business + politics in one cluster, sport whole
    said = topic_eval.against_labels(mixed, reference)
    assert said["split"] == {} and said["largest"]["mix"] == {"business": 40, "politics": 40}
    assert "No label was split" in said["sentence"] and "80 of 140" in said["sentence"]
    split = np.array([0] * 80 + [1] * 30 + [2] * 30)  # sport into two clusters
    assert topic_eval.against_labels(split, reference)["split"] == {"sport": [1, 2]}
    assert "sport into 2 clusters" in topic_eval.against_labels(split, reference)["sentence"]


def test_a_keyword_absent_from_the_held_out_texts_scores_minus_one_by_both_rules():
    counts, vocab = _docs()
    vocab = np.append(vocab, "never")
    counts = sp.hstack([counts, sp.csr_matrix((counts.shape[0], 1))]).tocsr()
    for eps in (None, topic_eval.EPS_NPMI):
        assert topic_eval.coherence([["a", "never"]], counts, vocab, eps=eps)[0] == -1.0


# ---- issue 48 review: NPMI's chance level, full-text baselines, one split for guide and benchmark ------------------

def test_lda_and_nmf_count_the_full_text_not_the_encoders_cut():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], 40)
    topical = [["vaccine", "virus", "flu"], ["goal", "match", "league"], ["shares", "profit", "market"]]
    preamble = "reporters said on monday that the story was developing " * 12  # > 600 characters, the same for all
    texts = [preamble + " ".join(rng.choice(topical[g], 6).tolist()) for g in groups]
    embeddings = rng.normal(size=(120, 8)) + groups[:, None] * 6
    rows = topic_eval.labelled_baselines(texts, embeddings, 3, seed=0)
    from sklearn.metrics import adjusted_rand_score

    assert set(rows) == set(topic_eval.BASELINES.values())
    for method in ("lda", "nmf"):  # the topical words sit after character 600: a cut text would carry none
        assert adjusted_rand_score(groups, rows[topic_eval.BASELINES[method]]) > 0.9, method


def test_the_benchmark_holds_out_the_guides_split_with_no_held_out_text_fitted(load_benchmark):
    bench = load_benchmark("topic_clustering")
    docs = np.array([f"tweet {i}" for i in range(600)] + ["the same headline"] * 50 + ["tweet 7"] * 20, dtype=object)
    split = topic_eval.split_held_out(list(docs), seed=0)
    for size in (300, None):  # the tweets benchmark samples; the reduction benchmark fits all the rest
        pick, held = bench.held_out_split(docs, size)
        assert not set(docs[pick]) & set(docs[held])
        assert (held == split.held_out).all() and set(pick) <= set(split.fit)
        assert len(pick) == (size or len(split.fit))


def test_npmi_is_counted_on_every_unseen_text_not_only_the_held_out_tenth():
    # review of issue 48, finding 1: a 6k-tweet tenth is too sparse a reference; every text the model never saw counts
    texts = [f"text {i}" for i in range(1000)] + ["text 3"] * 5
    split = topic_eval.split_held_out(texts, seed=0)
    fitted = np.sort(np.random.default_rng(0).choice(split.fit, 100, replace=False))
    unseen = split.unseen(fitted)
    assert len(unseen) == 1000 - 100 and set(split.held_out) <= set(unseen)
    assert not {texts[i] for i in unseen} & {texts[i] for i in fitted}  # never a fitted text, even a duplicate of one
    assert len(split.unseen(split.fit)) == len(split.held_out)  # all of the pool fitted (spark profile): the tenth


def test_a_seed_bootstrap_refuses_three_seeds_that_share_a_sign():
    # review of issue 48, finding 2: with 3 seeds the 95 % percentile interval is their range, so three null draws of
    # the same sign "decided" a claim one time in four
    from sparkbooks import evidence

    null = np.random.default_rng(3).normal(size=3)
    null = np.abs(null)  # three same-sign draws of noise
    with pytest.raises(InputError, match="at least 6 seeds"):
        evidence.seed_bootstrap(null)
    with pytest.raises(InputError, match="at least 6 seeds"):
        evidence.decide(1.0, 0.0, compare="greater", test="seed-bootstrap", interval=evidence.SeedInterval(0.1, 0.3, 3))
    six = evidence.seed_bootstrap([0.2, -0.1, 0.3, 0.1, -0.2, 0.25], seed=0)
    assert six.n == 6 and six.low < 0.0917 < six.high  # brackets the mean
    assert evidence.decide(1.0, 0.0, compare="greater", test="seed-bootstrap", interval=six) == evidence.NOT_DECIDED
    # under the null the widened interval decides 6 seeds about 7 % of the time (the plain percentile one: 12 %)
    rng = np.random.default_rng(0)
    decided = np.mean([(lambda iv: iv.low > 0 or iv.high < 0)(evidence.seed_bootstrap(rng.normal(size=6), n_boot=1000, seed=s))
                       for s in range(400)])
    assert decided < 0.09


def test_npmi_beats_shuffled_is_a_permutation_test_that_more_draws_cannot_decide_from_mid_null():
    # review of issue 48 (round 5), finding 1: a bootstrap of the null's *mean* narrows as 1/√n, so adding
    # permutations decided a model at the null's 60th–70th percentile; its permutation p stays ≈ 0.4
    from sparkbooks import evidence

    null = np.random.default_rng(0).normal(-0.117, 0.020, size=200)
    model = float(np.percentile(null, 60))
    old = evidence.decide(model, null.mean(), compare="greater", test="paired-bootstrap",
                          interval=evidence.seed_bootstrap(model - null, n_boot=1000, seed=0))
    assert old == evidence.HOLDS  # the old rule: a mid-null model "holds" once there are 200 draws
    for n in (20, 40, 99, 200):
        p = evidence.permutation_p(model, null[:n])
        assert isinstance(p, evidence.PermutationP) and p.n == n and 0.2 < p < 0.7
        assert evidence.decide(model, null[:n].mean(), compare="greater", test="permutation", p=p) == evidence.NOT_DECIDED
    # p = (1 + #null ≥ observed) / (1 + n), one-sided; above every draw → 1/(n+1)
    assert evidence.permutation_p(1.0, [0.0, 1.0, 2.0]) == pytest.approx(3 / 4)
    assert evidence.permutation_p(1.0, [0.0, 1.0, 2.0], compare="smaller") == pytest.approx(3 / 4)
    top = evidence.permutation_p(0.0, null[:99])
    assert top == pytest.approx(0.01) and evidence.decide(0.0, null[:99].mean(), compare="greater", test="permutation",
                                                          p=top) == evidence.HOLDS
    with pytest.raises(InputError, match="at least 20 permutations"):  # 10 draws: p ≥ 1/11 > 0.05, it can never hold
        evidence.decide(0.0, -0.1, compare="greater", test="permutation", p=evidence.permutation_p(0.0, null[:10]))
    with pytest.raises(InputError):
        evidence.permutation_p(0.0, [])
    with pytest.raises(InputError):
        evidence.permutation_p(0.0, [0.1], compare="within")


def test_quality_reports_the_permutation_p_of_npmi_from_the_same_draws():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    vocab = np.array(list("abcdefghij"))
    groups = np.repeat([0, 1], 30)
    dense = np.zeros((60, 10))
    dense[groups == 0, :5], dense[groups == 1, 5:] = rng.random((30, 5)) < 0.8, rng.random((30, 5)) < 0.8
    counts = sp.csr_matrix(dense)
    words = topics.keywords(counts, groups, vocab, top_n=5)
    model = SimpleNamespace(counts_=counts, labels_=groups, vocabulary_=vocab, top_n=5, min_word_docs=1,
                            topic_words_=words, n_topics_=2)
    scores = topic_eval.quality(model, counts=counts, top_k=5, shuffles=30, seed=0)
    runs = topic_eval.shuffled_npmi(model, counts, top_k=5, shuffles=30, seed=0)
    assert scores["npmi_p"] == pytest.approx((1 + (runs >= scores["npmi"]).sum()) / 31) and scores["npmi_p"].n == 30
    # the fast chance level (one co-occurrence matrix per permutation) is coherence()'s rule on the same keywords
    again = np.random.default_rng(0)
    slow = [float(np.mean(topic_eval.coherence(list(topics.keywords(counts, again.permutation(groups), vocab, top_n=5)
                                                    .values()), counts, vocab, top_k=5))) for _ in range(30)]
    assert np.allclose(runs, slow)
    # review 48 (round 6): chance under gensim's ε convention too, from the same permutations
    eps = topic_eval.shuffled_npmi(model, counts, top_k=5, shuffles=30, seed=0, eps=topic_eval.EPS_NPMI)
    again = np.random.default_rng(0)
    slow_eps = [float(np.mean(topic_eval.coherence(list(topics.keywords(counts, again.permutation(groups), vocab, top_n=5)
                                                        .values()), counts, vocab, top_k=5, eps=topic_eval.EPS_NPMI)))
                for _ in range(30)]
    assert np.allclose(eps, slow_eps) and scores["npmi_docs_eps_shuffled"] == pytest.approx(np.mean(eps))
    assert scores["npmi_docs_eps_p"] == pytest.approx((1 + (eps >= scores["npmi_docs_eps"]).sum()) / 31)
    with pytest.raises(InputError, match="no documents|got none"):
        topic_eval.shuffled_npmi(model, counts[:0], top_k=5)


def test_every_profile_counts_npmi_on_at_least_fifty_thousand_unseen_tweets():
    # review of issue 48 (round 5), finding 2: the spark profile's n_docs None fitted the whole pool and NPMI went back
    # to the 6k held-out tenth, the reference the guide itself shows ranks random topics above real ones
    import sparkbooks as sb

    playbook = sb.catalog.get("topic-clustering")
    defaults = {name: p.default for name, p in playbook.parameters.items()}
    cleaned = topics.clean_text(datasets.corpus("health-tweets")["text"].astype(str))
    split = topic_eval.split_held_out(cleaned, seed=0)
    assert len(split.held_out) < topic_eval.NPMI_REFERENCE_DOCS  # the tenth alone is too sparse: the cap matters
    for name, overrides in playbook.profiles.items():
        params = defaults | overrides
        fitted = topic_eval.fit_sample(split, params["n_docs"], seed=0)
        assert len(split.unseen(fitted)) >= topic_eval.NPMI_REFERENCE_DOCS, name
        assert len(fitted) >= min(params["n_docs"] or 10_000, 10_000), name
    # a million documents: the tenth exceeds the reference, every pool text is fitted; a small corpus fits its pool
    big = topic_eval.HeldOutSplit(fit=np.arange(900_000), held_out=np.arange(900_000, 1_000_000), duplicates=0)
    assert len(topic_eval.fit_sample(big, None)) == 900_000
    small = topic_eval.HeldOutSplit(fit=np.arange(3_000), held_out=np.arange(3_000, 3_400), duplicates=0)
    assert len(topic_eval.fit_sample(small, None)) == 3_000
    # the guide samples through it, so the profiles' parameters reach it
    import json
    from pathlib import Path

    nb = Path(__file__).resolve().parents[1] / "playbooks" / "topic-clustering" / "topic-clustering.ipynb"
    code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    assert "fit_sample(split, n_docs, seed=sample_seed)" in code
