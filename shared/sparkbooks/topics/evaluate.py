"""Scoring topics fairly: one keyword rule for every pipeline, coherence on held-out text, AMI with a chance
baseline, and the baselines a topic-modelling reader expects (LDA, NMF, k-means).

* :func:`npmi_coherence`, :func:`topic_diversity` — the measures themselves;
* :func:`coherence` — NPMI of a fixed top-k per topic; a topic left with fewer than two scorable
  words scores −1 instead of dropping out of the mean (dropping it flatters the average).
* :func:`split_held_out` — exact duplicates removed, then a seeded tenth held out, never among the texts the model
  was fitted on; :meth:`HeldOutSplit.unseen` — that tenth plus every pool text the sample left out: coherence's reference.
* :func:`agreement` — AMI against reference labels with outliers as one cluster *and* on the
  clustered documents only, NMI and ARI, and the AMI the same clusters reach against shuffled
  labels (mean ± sd over permutations): AMI is chance-corrected, NMI rises with the number of
  clusters.
* :func:`quality` — both for a fitted :class:`~sparkbooks.topics.TopicModel`, the NPMI beside its chance level
  (:func:`shuffled_npmi`: keywords of the same model's labels permuted, same k) and its one-sided permutation p.
* :func:`fit_sample` — the rows a model is fitted on, capped so that enough texts stay unseen for NPMI.
* :func:`baseline` — LDA (tuned: words in more than half the documents dropped, 50 iterations) or NMF on
  the bag-of-words (each document to its largest topic) and k-means on the embeddings, all scikit-learn;
  :func:`labelled_baselines` runs all three, LDA and NMF on the full texts' counts.
* :func:`against_labels` — what the clusters are in terms of the reference labels, in sentences computed
  from the run (which labels the largest cluster mixes; whether any label was split into sub-topics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..evidence import permutation_p
from ..exceptions import InputError
from .model import TopicModel
from .text import vectorizer

__all__ = ["BASELINES", "EPS_NPMI", "EPS_NPMI_TEXT", "HeldOutSplit", "LDA_SETTINGS", "NPMI_REFERENCE_DOCS", "against_labels", "agreement", "baseline", "coherence",
           "fit_sample", "held_out_counts", "labelled_baselines", "npmi_coherence", "quality", "shuffled_npmi", "split_held_out", "topic_diversity"]

#: The ε of the smoothed score ``npmi_docs_eps`` (gensim's value for its ``c_npmi``).
EPS_NPMI = 1e-12
#: The one description of that score, used wherever it is reported.
EPS_NPMI_TEXT = ("document NPMI with ε = 1e-12 added to p(a,b) (gensim's smoothing, but counted over whole documents, "
                 "not gensim c_npmi's 10-word sliding windows): a pair never seen together scores −1 + 2·log p / log ε "
                 "instead of −1 — −0.67 for two words in 1 % of the documents, −0.33 for two in 0.01 % — so rare words "
                 "are penalised less than common ones")


def npmi_coherence(topics: Sequence[Sequence[str]], counts, vocabulary: np.ndarray, *,
                   eps: float | None = None) -> np.ndarray:
    """Mean normalised PMI of each topic's word pairs, from document co-occurrence in ``counts``.

    ``NPMI(a, b) = log(p(a,b) / (p(a) p(b))) / −log p(a,b)`` with probabilities = share of
    documents containing the words. ``eps=None``: a pair that never co-occurs scores −1 (its
    limit). ``eps`` > 0 adds it to ``p(a,b)`` (:data:`EPS_NPMI_TEXT` says what that does to such a pair).
    Range −1 … 1; a topic with fewer than two words in the vocabulary scores NaN.

    Raises
    ------
    InputError
        ``counts`` has no documents: there is nothing to count co-occurrence in (an empty held-out set).
    """
    where = {w: i for i, w in enumerate(vocabulary)}
    present = (counts > 0).astype(np.float64).tocsc()
    n_docs = present.shape[0]
    if n_docs == 0:
        raise InputError("NPMI needs documents to count co-occurrence in, and got none: an empty held-out set? "
                         "Hold texts out with sparkbooks.topics.evaluate.split_held_out before fitting.")
    scores = np.full(len(topics), np.nan)
    for k, words in enumerate(topics):
        cols = [where[w] for w in words if w in where]
        if len(cols) < 2:
            continue
        sub = present[:, cols]
        joint = (sub.T @ sub).toarray() / n_docs
        single = np.diag(joint).copy()
        i, j = np.triu_indices(len(cols), k=1)
        p_ab = joint[i, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            if eps is None:
                npmi = np.where(p_ab > 0, np.log(p_ab / (single[i] * single[j])) / -np.log(p_ab), -1.0)
            else:
                npmi = np.log((p_ab + eps) / (single[i] * single[j])) / -np.log(p_ab + eps)
        npmi[(p_ab >= 1.0)] = 1.0  # both words in every document
        npmi[single[i] * single[j] == 0] = -1.0  # a word absent from these documents: never together, by either rule
        scores[k] = float(np.mean(npmi))
    return scores


def topic_diversity(topics: Sequence[Sequence[str]]) -> float:
    """Share of distinct words among all topics' top words (1 = no word repeats across topics)."""
    words = [w for topic in topics for w in topic]
    return len(set(words)) / len(words) if words else float("nan")


def coherence(topic_words: Sequence[Sequence[str]], counts, vocabulary: np.ndarray, *, top_k: int = 10,
              eps: float | None = None) -> np.ndarray:
    """NPMI of each topic's first ``top_k`` words in ``counts`` (documents × ``vocabulary``); fewer than two
    scorable words → −1. ``eps`` as in :func:`~sparkbooks.topics.npmi_coherence` (:data:`EPS_NPMI` for ``npmi_docs_eps``)."""
    scores = npmi_coherence([list(w)[:top_k] for w in topic_words], counts, vocabulary, eps=eps)
    return np.where(np.isnan(scores), -1.0, scores)


def agreement(labels: Sequence, reference: Sequence, *, permutations: int = 20, seed: int = 0) -> dict[str, float]:
    """How well clusters (−1 = outlier) match reference labels: AMI (outliers as one cluster), AMI over the
    clustered documents only, NMI, ARI, and AMI against shuffled references (mean and sd)."""
    from sklearn.metrics import adjusted_mutual_info_score as ami  # noqa: PLC0415
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: PLC0415

    labels, reference = np.asarray(labels), np.asarray(reference)
    if len(labels) != len(reference):
        raise InputError(f"{len(labels)} cluster labels for {len(reference)} reference labels: one each per document.")
    clustered = labels >= 0
    rng = np.random.default_rng(seed)
    shuffled = [ami(rng.permutation(reference), labels) for _ in range(permutations)]
    return {"clusters": int(len(np.unique(labels[clustered]))), "outlier_share": float(1 - clustered.mean()),
            "ami": float(ami(reference, labels)),
            "ami_clustered": float(ami(reference[clustered], labels[clustered])) if clustered.sum() > 1 else float("nan"),
            "nmi": float(normalized_mutual_info_score(reference, labels)),
            "ari": float(adjusted_rand_score(reference, labels)),
            "ami_shuffled": float(np.mean(shuffled)), "ami_shuffled_sd": float(np.std(shuffled))}


def quality(model: TopicModel, reference: Sequence | None = None, *, corpus: Sequence[str] | None = None,
            counts=None, top_k: int = 10, seed: int = 0, shuffles: int = 5) -> dict[str, float]:
    """Topics, outliers, NPMI of the top ``top_k`` keywords counted in ``corpus`` (``npmi``: strict;
    ``npmi_docs_eps``: :data:`EPS_NPMI_TEXT`) — pass documents the model did not see (:func:`split_held_out`) —
    beside its chance level, diversity, and :func:`agreement` given ``reference``.

    ``npmi_shuffled`` and ``npmi_docs_eps_shuffled`` (mean, ``_sd`` over ``shuffles`` permutations, the same ones,
    :func:`shuffled_npmi`; ``npmi_docs_eps_p`` likewise): the strict
    NPMI of keywords found by the same rule for the model's labels randomly permuted over its documents — the same
    k and topic sizes, no topical grouping. NPMI has no natural zero (a random partition of short texts scores
    well below 0), so the model's figure means something only beside this one. ``npmi_p``: where ``npmi`` falls
    among those draws, :func:`~sparkbooks.evidence.permutation_p` (one-sided, greater; a
    :class:`~sparkbooks.evidence.PermutationP` carrying ``shuffles``; it can fall below 0.05 only from 20 draws).

    ``counts``: ``corpus`` already counted over ``model.vocabulary_`` (:func:`held_out_counts`), to score
    several models that share a vocabulary (a model and its reductions) without counting it again.
    """
    words = list(model.topic_words_.values())
    if counts is None:
        counts = model.counts_ if corpus is None else held_out_counts(model, corpus)
    scores = {"topics": model.n_topics_, "outlier_share": float(np.mean(model.labels_ < 0)),
              "npmi": float(np.mean(coherence(words, counts, model.vocabulary_, top_k=top_k))) if words else float("nan"),
              "npmi_docs_eps": float(np.mean(coherence(words, counts, model.vocabulary_, top_k=top_k, eps=EPS_NPMI)))
              if words else float("nan"),
              "diversity": topic_diversity([w[:top_k] for w in words])}
    runs = (_shuffled_runs(model, counts, top_k=top_k, seed=seed, shuffles=shuffles, eps=(None, EPS_NPMI)) if words
            else dict.fromkeys((None, EPS_NPMI), np.array([np.nan])))
    for key, eps in (("npmi", None), ("npmi_docs_eps", EPS_NPMI)):  # review 48: chance under both conventions
        scores |= {f"{key}_shuffled": float(np.mean(runs[eps])), f"{key}_shuffled_sd": float(np.std(runs[eps])),
                   f"{key}_p": permutation_p(scores[key], runs[eps]) if words else float("nan")}
    if reference is not None:
        scores |= {k: v for k, v in agreement(model.labels_, reference, seed=seed).items()
                   if k not in ("clusters", "outlier_share")}
    return scores


def shuffled_npmi(model: TopicModel, counts, *, top_k: int = 10, seed: int = 0, shuffles: int = 5,
                  eps: float | None = None) -> np.ndarray:
    """NPMI's chance level: NPMI (in ``counts``, documents × ``model.vocabulary_``; strict, or ε-smoothed given
    ``eps``) of keywords found by the model's own rule for its labels permuted over its documents (same k, same
    sizes), one per permutation.

    :func:`coherence`'s rule, computed from one co-occurrence matrix of the permutation's keywords (a permutation
    costs a few ms on 55k documents, not one sparse product per topic): enough draws for a permutation p."""
    return _shuffled_runs(model, counts, top_k=top_k, seed=seed, shuffles=shuffles, eps=(eps,))[eps]


def _shuffled_runs(model: TopicModel, counts, *, top_k: int, seed: int, shuffles: int,
                   eps: tuple[float | None, ...]) -> dict[float | None, np.ndarray]:
    """:func:`shuffled_npmi` under each convention in ``eps``, from the same permutations (keywords found once)."""
    from .compare import _npmi_means, _pairs  # noqa: PLC0415  (compare imports this module)
    from .terms import keywords  # noqa: PLC0415

    npmi_coherence([], counts, model.vocabulary_)  # refuses an empty reference, as coherence() does
    present = (counts > 0).astype(np.float64).tocsc()
    where = {w: i for i, w in enumerate(model.vocabulary_)}
    rng = np.random.default_rng(seed)
    runs: dict[float | None, list[float]] = {e: [] for e in eps}
    for _ in range(max(shuffles, 1)):
        permuted = keywords(model.counts_, rng.permutation(model.labels_), model.vocabulary_, top_n=model.top_n,
                            min_word_docs=model.min_word_docs)
        words = [list(w)[:top_k] for w in permuted.values()]
        if not words:
            for e in eps:
                runs[e].append(float("nan"))
            continue
        cols = sorted({where[w] for topic in words for w in topic if w in where})
        sub = present[:, cols]
        joint = (sub.T @ sub).toarray()
        pairs = _pairs(words, {model.vocabulary_[c]: i for i, c in enumerate(cols)})
        for e in eps:
            runs[e].append(_npmi_means(joint, present.shape[0], pairs, e))
    return {e: np.array(r) for e, r in runs.items()}


def held_out_counts(model: TopicModel, corpus: Sequence[str]):
    """``corpus`` counted over the model's vocabulary (documents × terms, sparse), for :func:`quality`."""
    return vectorizer(vocabulary=model.vocabulary_, min_df=1).transform(corpus)


#: LDA as a topic-modelling reader would tune it: words in more than half the documents ("said", "year") carry no
#: topic and dominate every topic if kept; 50 batch iterations instead of scikit-learn's 10 let it converge.
LDA_SETTINGS = {"max_df": 0.5, "max_iter": 50}


def _lda(counts, embeddings, k: int, seed: int) -> np.ndarray:
    import scipy.sparse as sp  # noqa: PLC0415
    from sklearn.decomposition import LatentDirichletAllocation  # noqa: PLC0415

    counts = sp.csr_matrix(counts)
    doc_share = np.asarray((counts > 0).sum(axis=0)).ravel() / max(counts.shape[0], 1)
    kept = counts[:, doc_share <= LDA_SETTINGS["max_df"]]  # CountVectorizer's max_df, on an existing bag-of-words
    lda = LatentDirichletAllocation(k, learning_method="batch", max_iter=LDA_SETTINGS["max_iter"], random_state=seed)
    return lda.fit_transform(kept).argmax(axis=1)


def _nmf(counts, embeddings, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import NMF  # noqa: PLC0415
    from sklearn.feature_extraction.text import TfidfTransformer  # noqa: PLC0415

    tfidf = TfidfTransformer().fit_transform(counts)  # NMF topic models work on TF-IDF, not raw counts
    return NMF(k, init="nndsvda", max_iter=400, random_state=seed).fit_transform(tfidf).argmax(axis=1)


def _kmeans(counts, embeddings, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans  # noqa: PLC0415

    return KMeans(k, n_init=10, random_state=seed).fit_predict(embeddings)


#: Baselines by name: what each clusters, in words.
BASELINES = {"lda": "LDA on the bag-of-words (max_df 0.5, 50 iterations)", "nmf": "NMF on TF-IDF", "kmeans": "k-means on the embeddings"}
_BASELINE_FUNCTIONS = {"lda": _lda, "nmf": _nmf, "kmeans": _kmeans}


def baseline(method: str, k: int, *, counts=None, embeddings: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """One cluster per document (no outliers) from a classic method with ``k`` topics: ``lda`` / ``nmf`` need
    ``counts`` (documents × terms), ``kmeans`` needs ``embeddings``."""
    if method not in _BASELINE_FUNCTIONS:
        raise InputError(f"Unknown baseline {method!r}: use one of {', '.join(BASELINES)}.")
    needed = embeddings if method == "kmeans" else counts
    if needed is None:
        raise InputError(f"Baseline {method!r} needs {'embeddings' if method == 'kmeans' else 'counts'}.")
    if k < 2:
        raise InputError(f"A baseline needs k ≥ 2 topics. Got {k}.")
    return np.asarray(_BASELINE_FUNCTIONS[method](counts, embeddings, k, seed), dtype=int)


def labelled_baselines(texts: Sequence[str], embeddings: np.ndarray, k: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Every :data:`BASELINES` method with ``k`` topics, keyed by its :data:`BASELINES` text: LDA and NMF on counts of
    the **full** ``texts`` (a bag-of-words has no token limit: cutting it to what an encoder reads handicaps them),
    k-means on ``embeddings`` (which may come from shortened texts)."""
    counts = vectorizer().fit_transform(list(texts))
    return {label: baseline(method, k, counts=counts, embeddings=embeddings, seed=seed) for method, label in BASELINES.items()}


@dataclass(frozen=True)
class HeldOutSplit:
    """Row positions of the texts a model is fitted on and of those held out for scoring, after exact duplicates
    were dropped (``duplicates`` rows: the first copy of each text stays)."""

    fit: np.ndarray
    held_out: np.ndarray
    duplicates: int

    def describe(self) -> str:
        return (f"{len(self.fit):,} texts to fit, {len(self.held_out):,} held out (a seeded tenth), "
                f"{self.duplicates:,} exact duplicates dropped first")

    def unseen(self, fitted: np.ndarray) -> np.ndarray:
        """Every distinct text the model never saw: the held-out tenth plus the fit pool's texts not among ``fitted``
        (the sample it was fitted on), sorted. The reference to count NPMI on — a tenth of a 5,000-tweet sample's pool
        is too sparse: most keyword pairs of 8-word tweets never meet in 6k documents and score −1 for any topics."""
        return np.sort(np.concatenate([self.held_out, np.setdiff1d(self.fit, fitted)]))


#: The fewest unseen texts NPMI is counted on when the corpus allows it: on 8-word tweets a 6,000-text reference
#: left most keyword pairs never together (−1 for any topics) and ranked random topics above real ones.
NPMI_REFERENCE_DOCS = 50_000


def fit_sample(split: HeldOutSplit, n_docs: int | None, *, reference_docs: int = NPMI_REFERENCE_DOCS,
               min_fit: int = 10_000, seed: int = 0) -> np.ndarray:
    """The sorted rows to fit on: a seeded sample of ``n_docs`` from ``split.fit`` (``None``: as many as allowed),
    capped so that :meth:`HeldOutSplit.unseen` keeps at least ``reference_docs`` texts — unless that would leave
    fewer than ``min_fit`` to fit (a small corpus: then its held-out tenth is what there is). On a million documents
    the held-out tenth alone exceeds ``reference_docs`` and every pool text can be fitted."""
    pool = len(split.fit)
    cap = max(pool - max(reference_docs - len(split.held_out), 0), min(min_fit, pool))
    take = cap if n_docs is None else min(n_docs, cap)
    if take >= pool:
        return split.fit
    return np.sort(np.random.default_rng(seed).choice(split.fit, take, replace=False))


def split_held_out(texts: Sequence[str], *, fraction: float = 0.1, seed: int = 0) -> HeldOutSplit:
    """Drop exact duplicate texts (keep the first), then hold out a seeded ``fraction`` of what is left.

    Duplicates go first so that no held-out text also sits, verbatim, in the fitted set (a retweeted headline
    would otherwise be scored on itself). Both index arrays are sorted positions into ``texts``.

    Raises
    ------
    InputError
        ``fraction`` outside (0, 0.5], or too few distinct texts to hold any out.
    """
    if not 0 < fraction <= 0.5:
        raise InputError(f"fraction must be in (0, 0.5]: the share of texts held out for scoring. Got {fraction}.")
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)
    unique = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    n_held = int(np.ceil(fraction * len(unique)))
    if len(unique) < 20:
        raise InputError(f"{len(unique)} distinct texts are too few to hold {fraction:.0%} out for scoring.")
    shuffled = np.random.default_rng(seed).permutation(unique)
    return HeldOutSplit(fit=np.sort(shuffled[n_held:]), held_out=np.sort(shuffled[:n_held]),
                        duplicates=len(texts) - len(unique))


def against_labels(labels: Sequence, reference: Sequence, *, purity: float = 0.8) -> dict[str, object]:
    """What the clusters are in terms of the reference labels, computed from the run.

    ``largest``: the largest cluster's size, share and label counts (``mix``); ``split``: each label that is the
    majority (≥ ``purity``) of two or more clusters — a label split into sub-topics — with those clusters;
    ``sentence``: both in words, for a guide's prose.
    """
    import pandas as pd  # noqa: PLC0415

    labels, reference = np.asarray(labels), np.asarray(reference)
    if len(labels) != len(reference):
        raise InputError(f"{len(labels)} cluster labels for {len(reference)} reference labels: one each per document.")
    table = pd.crosstab(labels, reference)
    clustered = table.loc[table.index >= 0] if (table.index >= 0).any() else table
    sizes = clustered.sum(axis=1)
    top = sizes.idxmax()
    mix = clustered.loc[top].sort_values(ascending=False)
    mix = {str(k): int(v) for k, v in mix.items() if v > 0}
    pure = clustered.div(sizes, axis=0)
    owners: dict[str, list[int]] = {}
    for cluster, row in pure.iterrows():
        if row.max() >= purity:
            owners.setdefault(str(row.idxmax()), []).append(int(cluster))
    split = {label: clusters for label, clusters in owners.items() if len(clusters) >= 2}
    n = len(labels)
    mixed = [f"{name} {count}" for name, count in mix.items() if count >= 0.1 * sizes[top]]
    sentence = (f"The largest of the {len(clustered)} clusters holds {int(sizes[top]):,} of {n:,} documents "
                f"({sizes[top] / n:.0%}): " + ", ".join(mixed) + (" — several labels in one cluster" if len(mixed) > 1 else "")
                + ". ")
    if split:
        sentence += "Split into sub-topics (two or more clusters each ≥ {:.0%} one label): ".format(purity) + "; ".join(
            f"{label} into {len(c)} clusters" for label, c in sorted(split.items())) + "."
    else:
        sentence += f"No label was split into sub-topics (no label is ≥ {purity:.0%} of two or more clusters)."
    return {"largest": {"size": int(sizes[top]), "share": float(sizes[top] / n), "mix": mix}, "split": split,
            "sentence": sentence}
