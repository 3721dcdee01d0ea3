"""Topic clustering: this package's pipeline vs BERTopic's default pipeline on the same embeddings.

Both get the same all-MiniLM-L6-v2 embeddings of the health tweets (computed once, cached) and
the same bag-of-words (``sparkbooks.topics.vectorizer``: BERTopic's default keeps stop words,
which would make its keywords "the, to, of" and its coherence incomparable). BERTopic runs with
its defaults otherwise: UMAP(15 neighbours, 5-D, cosine, NN-descent on all 384 dimensions),
HDBSCAN(min_cluster_size 10, prediction data), c-TF-IDF, representative documents. Ours:
``TopicModel(min_cluster_size=10)`` — NN-descent graph built once, UMAP from it (100 epochs,
PCA init), HDBSCAN(min_samples 5, no prediction data), c-TF-IDF keywords that occur in at
least 3 of their topic's documents (most of the NPMI difference comes from that rule: applied to
BERTopic's clusters it lifts theirs similarly), then representative documents. Both unseeded (all cores), so figures vary a little from run to run.

numba compiles UMAP / NN-descent / HDBSCAN code on first use in a process (~20–60 s); both
pipelines are fitted once on 5,000 documents before anything is timed. Each size is run
``--repeats`` times, alternating which pipeline goes first: times are medians, quality figures
means. NMI: topics (outliers as one cluster) vs the 16 outlets; NPMI: the top-10 keywords'
document co-occurrence over all 63,326 tweets.

    python benchmarks/topic_clustering.py [--sizes 5000,20000,63326] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np

from sparkbooks import datasets, embeddings, topics


def ours(docs, vectors):
    start = time.perf_counter()
    model = topics.TopicModel(min_cluster_size=10).fit(docs, vectors)
    model.representative_docs(docs, vectors)
    return time.perf_counter() - start, model.labels_, list(model.topic_words_.values())


def bertopic(docs, vectors):
    from bertopic import BERTopic

    model = BERTopic(vectorizer_model=topics.vectorizer())
    start = time.perf_counter()
    labels, _ = model.fit_transform(list(docs), vectors)
    seconds = time.perf_counter() - start
    words = [[w for w, _ in model.get_topic(k)] for k in sorted(model.get_topics()) if k >= 0]
    return seconds, np.asarray(labels), words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000,63326")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # UMAP / BERTopic chatter about seeds and deprecations
    from sklearn.metrics import normalized_mutual_info_score

    tweets = datasets.health_tweets()
    docs = np.array(topics.clean_text(tweets["text"]), dtype=object)
    vectors = embeddings.embed(list(docs), show_progress=False)
    whole = topics.vectorizer().fit(docs)
    counts, vocab = whole.transform(docs), whole.get_feature_names_out()
    for pipeline in (ours, bertopic):  # numba compilation, kept out of the timed runs
        pipeline(docs[:5000], vectors[:5000])

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        pick = np.random.default_rng(0).choice(len(docs), size=min(n, len(docs)), replace=False)
        runs = {"ours": [], "bertopic": []}
        for repeat in range(args.repeats):
            order = (ours, bertopic) if repeat % 2 == 0 else (bertopic, ours)
            for pipeline in order:
                seconds, labels, words = pipeline(docs[pick], vectors[pick])
                runs[pipeline.__name__].append({
                    "s": seconds, "topics": int(labels.max() + 1), "outliers": float(np.mean(labels < 0)),
                    "nmi": normalized_mutual_info_score(tweets["source"].to_numpy()[pick], labels),
                    "npmi": float(np.nanmean(topics.npmi_coherence(words, counts, vocab)))})
        row = {"n_docs": len(pick)}
        for name, results in runs.items():
            row[f"{name}_s"] = statistics.median(r["s"] for r in results)
            for key in ("topics", "outliers", "nmi", "npmi"):
                row[f"{name}_{key}"] = statistics.fmean(r[key] for r in results)
        rows.append(row)
        print(f"  {len(pick):,} docs done: ours {row['ours_s']:.2f} s, BERTopic {row['bertopic_s']:.2f} s", flush=True)

    print(f"\n{'docs':>7} | {'ours s':>7} {'BERTopic s':>10} {'speed-up':>8} | "
          f"{'topics':>13} {'outliers':>13} {'NMI':>13} {'NPMI':>15}  (ours / BERTopic)")
    for r in rows:
        pair = lambda key, fmt: f"{format(r['ours_' + key], fmt)}/{format(r['bertopic_' + key], fmt)}"  # noqa: E731
        print(f"{r['n_docs']:>7,} | {r['ours_s']:7.2f} {r['bertopic_s']:10.2f} {r['bertopic_s'] / r['ours_s']:7.2f}× | "
              f"{pair('topics', '.0f'):>13} {pair('outliers', '.3f'):>13} {pair('nmi', '.4f'):>13} {pair('npmi', '.4f'):>15}")
    last = rows[-1]
    print(json.dumps({"n_docs": last["n_docs"], "ours_s": round(last["ours_s"], 2), "bertopic_s": round(last["bertopic_s"], 2),
                      "ours_nmi": round(last["ours_nmi"], 4), "bertopic_nmi": round(last["bertopic_nmi"], 4),
                      "ours_npmi": round(last["ours_npmi"], 4), "bertopic_npmi": round(last["bertopic_npmi"], 4)}))


if __name__ == "__main__":
    main()
