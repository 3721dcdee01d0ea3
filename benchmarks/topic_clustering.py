"""Topic clustering, scored fairly: this package's pipeline, BERTopic's, and an ablation between them — on the
health tweets (outlets as weak labels) and on BBC News (topical labels) — over several seeds, in one run.

**Same inputs, same scoring.** Every pipeline gets the same all-MiniLM-L6-v2 embeddings and the
same bag-of-words (``sparkbooks.topics.vectorizer``; BERTopic's own default keeps stop words).
Keywords for *every* row come from one function, ``sparkbooks.topics.keywords``, applied to that
row's clusters — scored twice: the plain top-10 c-TF-IDF words, and the top-10 words found in
at least 3 of the topic's documents (this package's rule). Coherence is NPMI of those top-10 words
counted in the **held-out** tweets (the guide's split: exact duplicates dropped, then a seeded tenth held out,
never in the fitted set); a topic with fewer than two
scorable words scores −1 (not dropped). ``--gensim`` adds gensim's own ``c_npmi`` (sliding
window 10, ε = 1e-12) on the held-out tweets for seed 0.

**Rows.** ``ours`` = ``TopicModel`` (NN-descent graph built once → UMAP 100 epochs from a PCA
start → HDBSCAN ``min_samples`` 5). ``BERTopic default`` = BERTopic 0.17 with its default UMAP
(15 neighbours, 5-D, cosine, min_dist 0, ``n_epochs`` None = 500 below 10k documents, spectral
start) and HDBSCAN (``min_cluster_size`` 10, ``min_samples`` None = 10, prediction data), seeded.
``BERTopic, our settings`` = the same with our UMAP/HDBSCAN settings. The ``ours + …`` rows switch
our settings to BERTopic's one at a time. Each row runs ``--seeds`` times (seeded UMAP runs on one
thread for every row, so times compare like with like); the table shows mean ± sd. numba compiles
on first use in a process, so every pipeline is fitted once before anything is timed.

**Agreement.** AMI against the labels (outliers as one cluster, and on clustered documents only)
with the AMI the same clusters reach against shuffled labels (chance). On the tweets the labels
are the 16 outlets — weak: an outlet's recurring formats ("Move of the Day") are "topics" too. On
BBC News (``--bbc``) they are the editors' 5 sections; there the classic baselines run as well:
LDA and NMF on the bag-of-words and k-means on the embeddings, with k = 5 and k = the number of
topics our pipeline found.

**Reduction** (``--reduce 100``): the tweets but a seeded tenth held out (the guide's split, 54k), clustered with
``min_cluster_size`` 10 (about a thousand topics: correct by HDBSCAN, unreadable), then brought to at
most 100 topics — ours by ``TopicModel.reduce`` (average-linkage merges of topic centroids, and of
c-TF-IDF word weights), BERTopic by its own ``reduce_topics`` on its own clusters of the same
embeddings — and ours again after ``reassign_outliers``; beside them the trivial route, HDBSCAN with a larger
``min_cluster_size`` (``--reduce-mcs``, 100: about as many topics with no merging). Keywords by the one rule, NPMI
counted in the clustered tweets and in the held-out ones, diversity, AMI against the outlets (outliers one cluster,
and clustered only; NMI grows with the number of clusters, AMI is corrected for it); ``--reduce-seeds`` seeds
(default 6, what a seed-level claim decides from), each written to ``benchmarks/results/topic_reduction.json`` as it
finishes (the guide reads it; a rerun resumes at the first missing seed).

    python benchmarks/topic_clustering.py [--size 5000] [--seeds 5] [--bbc] [--gensim] [--reduce 100]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pynndescent

from sparkbooks import topics
from sparkbooks import corpora as datasets
from sparkbooks.retrieval import embeddings
from sparkbooks.topics import evaluate as topic_eval

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"size": 300, "seeds": 1, "corpus": 700, "rows": ["ours", "BERTopic default", "BERTopic, our settings"]}


ROWS = {
    "ours": {},
    "ours + 500 epochs": {"n_epochs": None},
    "ours + spectral init": {"init": "spectral"},
    "ours + min_samples 10": {"min_samples": None},
    "ours, BERTopic's settings": {"n_epochs": None, "init": "spectral", "min_samples": None},
    "BERTopic default": "bertopic-default",
    "BERTopic, our settings": "bertopic-ours",
}


def fit_ours(docs, vectors, seed: int, min_cluster_size: int, **settings):
    start = time.perf_counter()
    model = topics.TopicModel(min_cluster_size=min_cluster_size, random_state=seed, **settings).fit(docs, vectors)
    model.representative_docs(docs, vectors)  # BERTopic computes these inside fit_transform
    return time.perf_counter() - start, model.labels_


def bertopic_model(seed: int, min_cluster_size: int, *, ours: bool):
    """BERTopic with its defaults (``ours=False``) or this package's UMAP / HDBSCAN settings, seeded."""
    import hdbscan
    import umap
    from bertopic import BERTopic

    reducer = umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                        random_state=seed, **({"n_epochs": 100, "init": "pca"} if ours else {}))
    clusterer = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, metric="euclidean", cluster_selection_method="eom",
                                min_samples=5 if ours else None, prediction_data=not ours)
    return BERTopic(umap_model=reducer, hdbscan_model=clusterer, vectorizer_model=topics.vectorizer())


def fit_bertopic(docs, vectors, seed: int, min_cluster_size: int, *, ours: bool):
    model = bertopic_model(seed, min_cluster_size, ours=ours)
    start = time.perf_counter()
    labels, _ = model.fit_transform(list(docs), vectors)
    return time.perf_counter() - start, np.asarray(labels)


def run(row: str, docs, vectors, seed: int, min_cluster_size: int):
    spec = ROWS[row]
    if isinstance(spec, str):
        return fit_bertopic(docs, vectors, seed, min_cluster_size, ours=spec == "bertopic-ours")
    return fit_ours(docs, vectors, seed, min_cluster_size, **spec)


def score(labels, counts, vocab, held_counts, reference, seed: int) -> dict[str, float]:
    out = topic_eval.agreement(labels, reference, seed=seed)
    for rule, min_docs in (("raw", 1), ("rule", 3)):
        words = list(topics.keywords(counts, labels, vocab, top_n=10, min_word_docs=min_docs).values())
        out[f"npmi_{rule}"] = float(np.mean(topic_eval.coherence(words, held_counts, vocab))) if words else np.nan
        out[f"npmi_eps_{rule}"] = (float(np.mean(topic_eval.coherence(words, held_counts, vocab, eps=1e-12)))
                                   if words else np.nan)
        out[f"diversity_{rule}"] = topics.topic_diversity(words)
        out[f"words_{rule}"] = words
    return out


def gensim_npmi(words: list[list[str]], held_texts: list[list[str]]) -> float:
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel

    dictionary = Dictionary(held_texts)
    known = [[w for w in topic if w in dictionary.token2id] for topic in words]
    known = [t for t in known if len(t) >= 2]
    return float(CoherenceModel(topics=known, texts=held_texts, dictionary=dictionary, coherence="c_npmi",
                                processes=1).get_coherence())


def summarise(results: dict[str, list[dict]], keys: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    return {row: {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))) for k in keys}
            for row, runs in results.items()}


def held_out_split(docs, size: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows to fit (``size`` drawn, seeded, from the fitting side; None = all of it) and rows held out for NPMI:
    the guide's own :func:`~sparkbooks.topics.evaluate.split_held_out` (exact duplicates dropped, a seeded tenth
    held out), so no held-out text also sits verbatim in the fitted set and both report the same held-out tweets."""
    split = topic_eval.split_held_out(list(docs), seed=seed)
    pick = split.fit
    if size is not None and size < len(pick):
        pick = np.sort(np.random.default_rng(seed).choice(pick, size, replace=False))
    return pick, split.held_out


def table(title: str, summary, columns: list[tuple[str, str, str]]) -> None:
    width = max(28, *(len(row) + 2 for row in summary))
    print(f"\n{title}")
    print(f"{'row':{width}}" + "".join(f"{head:>18}" for head, _, _ in columns))
    for row, values in summary.items():
        cells = []
        for _, key, fmt in columns:
            mean, sd = values[key]
            cells.append(f"{format(mean, fmt)} ± {format(sd, fmt)}")
        print(f"{row:{width}}" + "".join(f"{c:>18}" for c in cells))


def tweets_benchmark(size: int, seeds: int, with_gensim: bool, *, rows: list[str] | None = None, corpus: int | None = None,
                     warm_up: bool = True):
    tweets = datasets.health_tweets()
    if corpus is not None:  # a seeded draw of `corpus` tweets (smoke): the sample and the held-out set both come from it
        tweets = tweets.sample(n=min(corpus, len(tweets)), random_state=0).reset_index(drop=True)
    rows = list(rows or ROWS)
    docs = np.array(topics.clean_text(tweets["text"]), dtype=object)
    vectors = embeddings.embed(list(docs), show_progress=False)
    pick, held = held_out_split(docs, size)
    bag = topics.vectorizer().fit(docs[pick])
    counts, vocab = bag.transform(docs[pick]), bag.get_feature_names_out()
    held_counts = topics.vectorizer(vocabulary=vocab, min_df=1).transform(docs[held])
    reference = tweets["source"].to_numpy()[pick]
    if warm_up:
        for row in ("ours", "BERTopic default"):  # numba compilation, outside every timed run
            run(row, docs[pick][:3000], vectors[pick][:3000], 0, 10)
        # below 4,096 rows both fits search exactly: compile NN-descent, which the full-size fits use, on its own
        pynndescent.NNDescent(vectors[:600], n_neighbors=15, random_state=0, low_memory=True)
    else:
        print("smoke: no untimed warm-up fit (numba compiles inside the timed runs; the seconds column means nothing)")
    results: dict[str, list[dict]] = {row: [] for row in rows}
    for seed in range(seeds):
        order = rows if seed % 2 == 0 else list(reversed(rows))  # alternate who runs first
        for row in order:
            seconds, labels = run(row, docs[pick], vectors[pick], seed, 10)
            results[row].append({"s": seconds} | score(labels, counts, vocab, held_counts, reference, seed))
        print(f"  tweets: seed {seed} done", flush=True)
    keys = ["s", "clusters", "outlier_share", "ami", "ami_clustered", "ami_shuffled", "npmi_raw", "npmi_rule",
            "npmi_eps_rule", "diversity_rule"]
    summary = summarise(results, keys)
    table(f"Health tweets: {len(pick):,} sampled, NPMI on the {len(held):,} held out; mean ± sd over {seeds} seeds",
          summary, [("seconds", "s", ".2f"), ("topics", "clusters", ".1f"), ("outliers", "outlier_share", ".3f"),
                    ("AMI", "ami", ".4f"), ("AMI clustered", "ami_clustered", ".4f"),
                    ("AMI shuffled", "ami_shuffled", ".4f"), ("NPMI top-10", "npmi_raw", ".3f"),
                    ("NPMI ≥3 docs", "npmi_rule", ".3f"), ("NPMI ε ≥3 docs", "npmi_eps_rule", ".3f"),
                    ("diversity", "diversity_rule", ".3f")])
    extra = {}
    if with_gensim:
        tokenize = topics.vectorizer().build_analyzer()
        held_texts = [[w for w in tokenize(t) if w in bag.vocabulary_] for t in docs[held]]
        print("\ngensim c_npmi (window 10, ε 1e-12) of the ≥3-docs keywords, seed 0, held-out tweets:")
        for row in ("ours", "BERTopic default", "BERTopic, our settings"):
            extra[row] = gensim_npmi(results[row][0]["words_rule"], held_texts)
            print(f"  {row:28} {extra[row]:.4f}")
    return summary, extra


def bbc_benchmark(seeds: int):
    news = datasets.bbc_news()
    docs = list(news["text"])
    vectors = embeddings.embed(docs, show_progress=False)
    reference = news["label"].to_numpy()
    bag = topics.vectorizer(min_df=2, max_df=0.5)
    counts = bag.fit_transform(docs)
    results: dict[str, list[dict]] = {}
    for seed in range(seeds):
        seconds, ours = fit_ours(docs, vectors, seed, 15)
        k_found = max(int(ours.max()) + 1, 2)
        rows = {"ours (min_cluster_size 15)": (seconds, ours),
                "BERTopic default (15)": fit_bertopic(docs, vectors, seed, 15, ours=False)}
        for method in topic_eval.BASELINES:
            for k in sorted({5, k_found}):
                start = time.perf_counter()
                labels = topic_eval.baseline(method, k, counts=counts, embeddings=vectors, seed=seed)
                rows[f"{method} k={'found' if k == k_found and k != 5 else k}"] = (time.perf_counter() - start, labels)
        for name, (s, labels) in rows.items():
            results.setdefault(name, []).append({"s": s} | topic_eval.agreement(labels, reference, seed=seed))
        print(f"  BBC: seed {seed} done", flush=True)
    summary = summarise(results, ["s", "clusters", "outlier_share", "ami", "ami_clustered", "ami_shuffled"])
    table(f"BBC News: {len(docs):,} articles, 5 editorial sections; mean ± sd over {seeds} seeds", summary,
          [("seconds", "s", ".2f"), ("clusters", "clusters", ".1f"), ("outliers", "outlier_share", ".3f"),
           ("AMI", "ami", ".4f"), ("AMI clustered", "ami_clustered", ".4f"), ("AMI shuffled", "ami_shuffled", ".4f")])
    return summary


REDUCTION = Path(__file__).parent / "results" / "topic_reduction.json"
REDUCTION_KEYS = ["s", "topics", "outlier_share", "npmi", "npmi_held", "diversity", "ami", "ami_clustered", "nmi"]


def reduction_rows(target: int, coarse_mcs: int) -> list[str]:
    """The reduction table's rows, in order (the record keeps them per seed under these names)."""
    return ["ours, as clustered", f"ours, to {target} by centroids", f"ours, to {target} by words",
            "ours, by centroids + outliers placed", f"ours, min_cluster_size {coarse_mcs} (no merging)",
            "BERTopic default, as clustered", f"BERTopic, reduce_topics to {target}"]


def reduction_benchmark(target: int, seeds: int, *, coarse_mcs: int = 100, out: Path | None = REDUCTION,
                        corpus: int | None = None, first: int = 0) -> dict[str, float]:
    """All tweets but a held-out tenth, ~1,000 HDBSCAN topics, reduced to ``target``: ours (by centroids, by words,
    + outliers placed) against BERTopic's ``reduce_topics`` and against the trivial route — HDBSCAN with a larger
    ``min_cluster_size`` (``coarse_mcs``: about ``target`` topics straight away, no merging). NPMI counted in the fitted
    tweets and in the held-out ones; AMI against the outlets (NMI rises with the number of clusters, AMI does not).
    Each seed is written to ``out`` as it finishes; seeds already there (same settings) are not run again. Seeds
    ``first`` … ``first + seeds − 1`` run, so two machines (or cores) can share the seeds and merge their records."""
    tweets = datasets.health_tweets()
    if corpus:  # smoke: a seeded subset
        tweets = tweets.sample(n=corpus, random_state=0).reset_index(drop=True)
    docs = np.array(topics.clean_text(tweets["text"]), dtype=object)
    vectors = embeddings.embed(list(docs), show_progress=False)
    fit_rows, held = held_out_split(docs, None)  # the guide's split: duplicates dropped, a seeded tenth held out
    fit_docs, fit_vectors, reference = list(docs[fit_rows]), vectors[fit_rows], tweets["source"].to_numpy()[fit_rows]
    bag = topics.vectorizer().fit(fit_docs)
    counts, vocab = bag.transform(fit_docs), bag.get_feature_names_out()
    held_counts = topics.vectorizer(vocabulary=vocab, min_df=1).transform(docs[held])
    mcs = 10 if corpus is None else 5
    settings = {"target": target, "coarse_mcs": coarse_mcs, "min_cluster_size": mcs, "clustered": len(fit_rows),
                "held_out": len(held)}
    record = json.loads(out.read_text()) if out is not None and out.exists() else {}
    if record.get("settings") != settings:
        record = {"settings": settings, "seeds": {}}

    def scored(labels, seconds):
        words = list(topics.keywords(counts, labels, vocab, top_n=10, min_word_docs=3).values())
        agree = topic_eval.agreement(labels, reference, permutations=1, seed=0)
        return {"s": seconds, "topics": len(words), "outlier_share": float(np.mean(labels < 0)),
                "npmi": float(np.mean(topic_eval.coherence(words, counts, vocab))) if words else np.nan,
                "npmi_held": float(np.mean(topic_eval.coherence(words, held_counts, vocab))) if words else np.nan,
                "diversity": topics.topic_diversity(words), "ami": agree["ami"], "ami_clustered": agree["ami_clustered"],
                "nmi": agree["nmi"]}

    def timed(fn):
        start = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - start

    names = reduction_rows(target, coarse_mcs)
    for seed in range(first, first + seeds):
        if str(seed) in record["seeds"]:
            continue
        ours, fit_s = timed(lambda: topics.TopicModel(min_cluster_size=mcs, random_state=seed).fit(fit_docs, fit_vectors))
        by_centroid, centroid_s = timed(lambda: ours.reduce(fit_vectors, n_topics=target))
        by_words, words_s = timed(lambda: ours.reduce(fit_vectors, n_topics=target, by="words"))
        placed, placed_s = timed(lambda: by_centroid.reassign_outliers(fit_vectors, threshold=0.5))
        coarse, coarse_s = timed(lambda: topics.TopicModel(min_cluster_size=coarse_mcs, random_state=seed).fit(fit_docs, fit_vectors))
        model = bertopic_model(seed, mcs, ours=False)
        _, bert_fit_s = timed(lambda: model.fit_transform(fit_docs, fit_vectors))
        before = np.asarray(model.topics_)
        # BERTopic counts its outlier topic −1 among nr_topics: target + 1 leaves `target` real topics
        _, bert_reduce_s = timed(lambda: model.reduce_topics(fit_docs, nr_topics=target + 1))
        labelled = (ours.labels_, by_centroid.labels_, by_words.labels_, placed.labels_, coarse.labels_, before,
                    np.asarray(model.topics_))
        spent = (fit_s, centroid_s, words_s, placed_s, coarse_s, bert_fit_s, bert_reduce_s)
        record["seeds"][str(seed)] = {name: scored(labels, seconds) for name, labels, seconds in zip(names, labelled, spent)}
        record["seeds"][str(seed)]["run"] = machine_row()
        if out is not None:
            write_atomically(out, record)
        print(f"  reduction: seed {seed} done", flush=True)
    done = sorted(record["seeds"], key=int)
    rows = {name: [record["seeds"][s][name] for s in done] for name in names}
    summary = summarise(rows, REDUCTION_KEYS)
    table(f"Health tweets: {len(fit_rows):,} clustered (min_cluster_size {mcs}), {len(held):,} held out; reduced to "
          f"≤ {target}; NPMI of the ≥3-docs keywords; mean ± sd over {len(done)} seed(s)", summary,
          [("seconds", "s", ".2f"), ("topics", "topics", ".1f"), ("outliers", "outlier_share", ".3f"),
           ("NPMI fitted", "npmi", ".4f"), ("NPMI held out", "npmi_held", ".4f"), ("diversity", "diversity", ".3f"),
           ("AMI outlets", "ami", ".4f"), ("AMI clustered", "ami_clustered", ".4f")])
    pick = lambda row, key: round(summary[row][key][0], 4)  # noqa: E731
    short = dict(zip(("ours", "ours_reduced", "ours_words", "ours_placed", "coarse", "bertopic", "bertopic_reduced"), names))
    return {"reduce_seeds": len(done)} | {f"{key}_{stat}": pick(row, stat) for key, row in short.items()
                                          for stat in ("topics", "npmi_held", "ami")}


def machine_row() -> dict:
    """When, where and under what load a seed ran."""
    import datetime as dt
    import os
    import platform

    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_1min": round(os.getloadavg()[0], 2),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_atomically(path: Path, record: dict) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(record, tmp, indent=1)
    os.replace(tmp.name, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bbc", action="store_true", help="also score on BBC News with LDA / NMF / k-means baselines")
    parser.add_argument("--gensim", action="store_true", help="also compute gensim's c_npmi for seed 0")
    parser.add_argument("--reduce", type=int, default=None, help="only the reduction benchmark: all tweets to this many topics")
    parser.add_argument("--reduce-seeds", type=int, default=6, help="seeds (6: what a seed-level claim decides from)")
    parser.add_argument("--reduce-mcs", type=int, default=100, help="the trivial route's min_cluster_size (≈ --reduce topics)")
    parser.add_argument("--reduce-out", type=Path, default=REDUCTION, help="the record the guide reads (resumes by seed)")
    parser.add_argument("--reduce-first", type=int, default=0, help="the first seed (machines sharing the seeds)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="the tweets table's rows")
    parser.add_argument("--corpus", type=int, default=None, help="draw from N tweets (seeded) instead of all")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    warnings.filterwarnings("ignore")  # UMAP / BERTopic chatter about seeds and deprecations
    if args.reduce:
        print(json.dumps(reduction_benchmark(args.reduce, args.reduce_seeds, coarse_mcs=args.reduce_mcs,
                                             out=args.reduce_out, first=args.reduce_first)))
        return
    tweets, gensim = tweets_benchmark(args.size, args.seeds, args.gensim, rows=args.rows, corpus=args.corpus,
                                     warm_up=not args.smoke)
    headline = {"n_docs": args.size, "seeds": args.seeds}
    for row, key in (("ours", "ours"), ("BERTopic default", "bertopic"), ("BERTopic, our settings", "bertopic_same")):
        headline |= {f"{key}_s": round(tweets[row]["s"][0], 2), f"{key}_ami": round(tweets[row]["ami"][0], 4),
                     f"{key}_npmi_rule": round(tweets[row]["npmi_rule"][0], 4)}
    headline["ami_shuffled"] = round(tweets["ours"]["ami_shuffled"][0], 4)
    headline |= {f"gensim_cnpmi_{k.split()[0].lower()}": round(v, 4) for k, v in gensim.items() if k != "BERTopic, our settings"}
    if args.bbc:
        bbc = bbc_benchmark(args.seeds)
        headline |= {f"bbc_ami_{k.split()[0].lower()}_{k.split()[1].replace('=', '')}": round(v["ami"][0], 4)
                     for k, v in bbc.items() if k.split()[0] in ("lda", "nmf", "kmeans") and "k=5" in k}
        headline |= {"bbc_ami_ours": round(bbc["ours (min_cluster_size 15)"]["ami"][0], 4),
                     "bbc_ami_bertopic": round(bbc["BERTopic default (15)"]["ami"][0], 4)}
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
