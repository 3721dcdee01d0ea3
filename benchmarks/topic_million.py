"""A million documents on a CPU: fit on a sample, label the rest — measured against full fits on the real tweets.

**Real tweets.** The health tweets' fitting pool (the guide's split: exact duplicates dropped, a seeded tenth held
out; ≈ 54k distinct tweets) with their cached all-MiniLM-L6-v2 vectors (nothing is re-embedded when the cache holds
them). ``full-S`` fits ``TopicModel`` on the whole pool at seed S (``min_cluster_size`` ``--mcs``, 100); ``sample-S``
fits a seeded 10k sample at seed S (``min_cluster_size`` scaled by the sample's share, so a topic needs the same
share of the corpus) with ``prediction_data=True``, then labels every other pool tweet two ways: the nearest topic
centroid (``TopicModel.assign``, never an outlier) and UMAP ``transform`` + HDBSCAN ``approximate_predict``
(``TopicModel.predict``, outliers kept, as BERTopic's ``transform``). ``--summarise`` scores them: the **seed floor**
(pairwise AMI between full fits at different seeds, outliers one cluster) against the AMI of sample + label with
each full fit — over the sample's own documents and over the labelled rest apart, and over the documents both call
clustered (outliers aside), so the gap is taken apart — averaged over sample seeds (the goal judged on the mean);
the time of sample + label over the full fit's; NPMI of each labelling's keywords on the held-out tenth.

**Scaling** (wall time and the process's peak RSS, each row its own process): full fits on 5k and 20k pool tweets
(the pool row is ``full-0``) and, as the baseline sample + label must beat on time, on 1M resampled vectors
(``fullscale-1000000``); sample + label at 250k and 1M documents **resampled** from the real vectors (each a random
point on the chord from a real tweet's vector to one of its 15 nearest, renormalised: SMOTE's construction, so the
million rows form no cliques of copies, though they stay grouped around the real tweets) — timing and memory only, their topics
mean nothing. ``--part i/k`` labels the i-th of k chunks of the rest, so that no run exceeds a few minutes; the
summary adds the chunks' seconds.

Each row is one process (numba compiles once, on a small untimed fit, before anything is timed) and is written
atomically to the results file as it finishes, so the work resumes where it stopped.

    python benchmarks/topic_million.py --row full-0      # then full-1 … full-4, sample-0 … sample-2, scale-5000, scale-1000000 --part 1/8 …
    python benchmarks/topic_million.py --summarise       # the table and the JSON line, from the rows present
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import tempfile
import time
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pynndescent

SMOKE_HELP = "tiny sizes in a scratch folder (≤ 30 s where numba's cache is warm): proves the code runs; figures mean nothing"
RESULTS = Path(__file__).parent / "results" / "topic_million.json"
SAMPLE = 10_000
RESAMPLED = (250_000, 1_000_000)
REAL = (5_000, 20_000)


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def machine() -> dict:
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "load_1min": round(os.getloadavg()[0], 2)}


def write_row(path: Path, name: str, row: dict) -> None:
    """Add one row to the results file atomically (write a temporary file, then rename over it)."""
    record = json.loads(path.read_text()) if path.exists() else {"rows": {}}
    record["rows"][name] = row | machine()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(record, tmp, indent=1)
    os.replace(tmp.name, path)


def pool(smoke: bool):
    """The pool's cleaned texts, their vectors and the held-out tenth's texts (the guide's split, seed 0)."""
    from sparkbooks import corpora, topics
    from sparkbooks.retrieval import embeddings
    from sparkbooks.topics import evaluate

    tweets = corpora.health_tweets()
    if smoke:
        tweets = tweets.sample(n=1200, random_state=0).reset_index(drop=True)
    docs = topics.clean_text(tweets["text"])
    vectors = embeddings.embed(list(docs), show_progress=False)  # all 63k from the cache when it holds them
    split = evaluate.split_held_out(docs, seed=0)
    return [docs[i] for i in split.fit], vectors[split.fit], [docs[i] for i in split.held_out]


def _model(mcs: int, seed: int, **extra):
    from sparkbooks import topics

    return topics.TopicModel(min_cluster_size=mcs, random_state=seed, **extra)


_WARM: list[bool] = []


def _warm_up(docs, vectors) -> None:
    """numba compiles UMAP / NN-descent on first use in a process: pay it once, on a small untimed fit."""
    if _WARM:
        return
    _WARM.append(True)
    n = min(600, len(docs))
    m = _model(10, 0, prediction_data=True).fit(docs[:n], vectors[:n])
    m.predict(vectors[:50])
    # that fit searched exactly (below 4,096 rows): compile NN-descent, which the sample fits use, on its own
    pynndescent.NNDescent(vectors[:n], n_neighbors=15, random_state=0, low_memory=True)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def sample_and_label(docs, vectors, *, mcs_full: int, seed: int, sample: int, part: tuple[int, int] = (1, 1)) -> dict:
    """Fit a seeded ``sample`` with prediction data; label (the ``part`` chunk of) the rest by centroid and by predict."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(docs), min(sample, len(docs)), replace=False))
    rest = np.setdiff1d(np.arange(len(docs)), picked)
    chunk = np.array_split(rest, part[1])[part[0] - 1]
    mcs = max(5, round(mcs_full * len(picked) / len(docs)))
    model, fit_s = _timed(lambda: _model(mcs, seed, prediction_data=True).fit([docs[i] for i in picked], vectors[picked]))
    by_centroid, centroid_s = _timed(lambda: model.assign(vectors[chunk], vectors[picked]))
    predicted, predict_s = _timed(lambda: model.predict(vectors[chunk]))
    labels = {"centroid": np.full(len(docs), -2), "predict": np.full(len(docs), -2)}
    for how, assigned in (("centroid", by_centroid), ("predict", predicted)):
        labels[how][picked] = model.labels_
        labels[how][chunk] = assigned
    labels["picked"] = picked  # which documents the sample fitted: the summary scores them apart from the labelled rest
    return {"n": len(docs), "sample": len(picked), "labelled": len(chunk), "part": f"{part[0]}/{part[1]}",
            "min_cluster_size": mcs, "fit_s": round(fit_s, 2), "centroid_s": round(centroid_s, 2),
            "predict_s": round(predict_s, 2), "topics": model.n_topics_,
            "outliers_sample": round(float(np.mean(model.labels_ < 0)), 4),
            "outliers_predicted": round(float(np.mean(predicted < 0)), 4), "labels": labels}


def resampled(vectors: np.ndarray, n: int, *, seed: int = 0, neighbours: int = 15) -> np.ndarray:
    """``n`` unit rows near the real corpus: each a random point on the chord between a real vector and one of
    its ``neighbours`` nearest real vectors (SMOTE's construction), renormalised — a corpus of the right size and local
    geometry for timing, not for topics. :func:`resampled_sources` says which real row each one started from.

    Copies of real rows with a little noise (this function's first version) formed cliques: ~18 near-copies of each
    tweet were each other's nearest neighbours (92 % of a point's 15 neighbours shared its source, review 48), so the
    neighbour search, UMAP and HDBSCAN timed ~54k near-disconnected islands, not a million-document corpus."""
    rng = np.random.default_rng(seed)
    if len(vectors) < 4_096:  # exact below UMAP's own threshold (and no NN-descent compilation in small tests)
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        near = np.argsort(-sims, axis=1)[:, :neighbours]
    else:
        index = pynndescent.NNDescent(vectors, n_neighbors=neighbours + 1, metric="cosine", random_state=seed)
        near = index.neighbor_graph[0][:, 1:]  # each real row's nearest others (itself first)
    out = np.empty((n, vectors.shape[1]), dtype=np.float32)
    for start, a in zip(range(0, n, 100_000), _sources(len(vectors), n, seed)):  # float32 slices: no doubled peak
        b = near[a, rng.integers(0, near.shape[1], len(a))]
        t = rng.random((len(a), 1), dtype=np.float32)
        block = vectors[a] + t * (vectors[b] - vectors[a])
        out[start:start + len(a)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _sources(n_real: int, n: int, seed: int):
    """The real row each resampled row starts from, 100,000 at a time (its own generator: reproducible apart)."""
    rng = np.random.default_rng([seed, 1])
    for start in range(0, n, 100_000):
        yield rng.integers(0, n_real, min(100_000, n - start))


def resampled_sources(n_real: int, n: int, *, seed: int = 0) -> np.ndarray:
    """Which real row each of :func:`resampled`'s rows started from (for the check that they form no cliques)."""
    return np.concatenate(list(_sources(n_real, n, seed)))


def run_row(name: str, *, mcs: int, part: tuple[int, int], results: Path, labels_dir: Path, smoke: bool) -> dict:
    docs, vectors, _ = pool(smoke)
    sample = 300 if smoke else SAMPLE
    _warm_up(docs, vectors)
    kind, _, arg = name.partition("-")
    if kind == "full":
        model, seconds = _timed(lambda: _model(mcs, int(arg)).fit(docs, vectors))
        np.save(labels_dir / f"{name}.npy", model.labels_)
        row = {"n": len(docs), "s": round(seconds, 2), "topics": model.n_topics_,
               "outliers": round(float(np.mean(model.labels_ < 0)), 4), "min_cluster_size": mcs,
               "steps_s": {k: round(v, 2) for k, v in model.seconds_.items()}}
    elif kind == "sample":
        row = sample_and_label(docs, vectors, mcs_full=mcs, seed=int(arg), sample=sample)
        for how, labels in row.pop("labels").items():
            np.save(labels_dir / f"{name}-{how}.npy", labels)
    elif kind == "scale" and int(arg) <= len(docs):  # real tweets, a full fit
        n = int(arg)
        pick = np.sort(np.random.default_rng(0).choice(len(docs), n, replace=False))
        model, seconds = _timed(lambda: _model(max(5, round(mcs * n / len(docs))), 0).fit([docs[i] for i in pick], vectors[pick]))
        row = {"n": n, "what": "full fit, real tweets", "s": round(seconds, 2), "topics": model.n_topics_}
    elif kind == "fullscale":  # resampled vectors, one whole fit: the baseline sample + label must beat on time
        n = int(arg)
        big = resampled(vectors, n)
        texts = [docs[i % len(docs)] for i in range(n)]
        model, seconds = _timed(lambda: _model(max(5, round(mcs * n / len(docs))), 0).fit(texts, big))
        row = {"n": n, "what": "full fit, resampled vectors (timing only)", "s": round(seconds, 2),
               "topics": model.n_topics_, "steps_s": {k: round(v, 2) for k, v in model.seconds_.items()}}
    elif kind == "scale":  # resampled vectors, sample + label
        n = int(arg)
        big = resampled(vectors, n)
        texts = [docs[i % len(docs)] for i in range(n)]  # only the sample's texts are read (its keywords)
        row = sample_and_label(texts, big, mcs_full=mcs, seed=0, sample=sample, part=part)
        row.pop("labels")
        row["what"] = "sample + label, resampled vectors (timing only)"
    else:
        raise SystemExit(f"unknown row {name!r}: full-S, sample-S, scale-N or fullscale-N")
    row["peak_rss_gib"] = round(_rss_gib(), 3)
    key = name if part == (1, 1) else f"{name}:{part[0]}/{part[1]}"
    write_row(results, key, row)
    return row


def missing_labels(rows: dict, labels_dir: Path) -> None:
    """Refuse to summarise (naming the rows to run again) when a row's label files are gone — they live in the
    cache, which a cleaned home folder loses while the results file, in the repository, stays."""
    needed = {n: [f"{n}.npy"] for n in rows if n.startswith("full-")}
    needed |= {n: [f"{n}-{x}.npy" for x in ("centroid", "predict", "picked")] for n in rows if n.startswith("sample-")}
    lost = sorted(n for n, files in needed.items() if not all((labels_dir / f).exists() for f in files))
    if lost:
        raise SystemExit(f"The labels of {', '.join(lost)} are not in {labels_dir}: run them again "
                         f"({' && '.join(f'python benchmarks/topic_million.py --row {n}' for n in lost)}), then --summarise.")


def clustered_ami(a: np.ndarray, b: np.ndarray) -> float:
    """AMI over the documents both labellings put in a topic (outliers aside)."""
    from sklearn.metrics import adjusted_mutual_info_score as ami

    both = (a >= 0) & (b >= 0)
    return float(ami(a[both], b[both]))


def mean_score(score, fulls, labels: np.ndarray, where: np.ndarray | None = None) -> float:
    """``score`` of ``labels`` against each full fit (on the documents ``where`` selects), averaged."""
    where = np.ones(len(labels), dtype=bool) if where is None else where
    return round(float(np.mean([score(f[where], labels[where]) for f in fulls])), 4)


def summarise(results: Path, labels_dir: Path, smoke: bool) -> dict:
    """The seed floor, sample + label against the full fits, time ratios, held-out NPMI and the scaling table."""
    from sklearn.metrics import adjusted_mutual_info_score as ami

    from sparkbooks import topics
    from sparkbooks.topics import evaluate

    rows = json.loads(results.read_text())["rows"]
    fulls = sorted(n for n in rows if n.startswith("full-"))
    samples = sorted(n for n in rows if n.startswith("sample-"))
    missing_labels(rows, labels_dir)
    full_labels = {n: np.load(labels_dir / f"{n}.npy") for n in fulls}
    pairs = list(combinations(sorted(full_labels), 2))
    floor = [ami(full_labels[a], full_labels[b]) for a, b in pairs]
    floor_clustered = [clustered_ami(full_labels[a], full_labels[b]) for a, b in pairs]
    out: dict = {"full_fits": len(full_labels), "seed_pairs": len(floor),
                 "seed_floor_ami": round(float(np.mean(floor)), 4) if floor else None,
                 "seed_floor_range": [round(min(floor), 4), round(max(floor), 4)] if floor else None,
                 "seed_floor_clustered_ami": round(float(np.mean(floor_clustered)), 4) if floor else None,
                 "full_s": round(float(np.mean([rows[n]["s"] for n in fulls])), 2) if fulls else None,
                 "full_s_range": [min(rows[n]["s"] for n in fulls), max(rows[n]["s"] for n in fulls)] if fulls else None,
                 "full_outliers": round(float(np.mean([rows[n]["outliers"] for n in fulls])), 4) if fulls else None}
    docs, _, held = pool(smoke)
    bag = topics.vectorizer().fit(docs)
    counts, vocab = bag.transform(docs), bag.get_feature_names_out()
    held_counts = topics.vectorizer(vocabulary=vocab, min_df=1).transform(held)

    def npmi(labels):
        words = list(topics.keywords(counts, labels, vocab, top_n=10, min_word_docs=3).values())
        return round(float(np.mean(evaluate.coherence(words, held_counts, vocab))), 4) if words else None

    if "full-0" in full_labels:
        out["npmi_full"] = npmi(full_labels["full-0"])
    print(f"\n{'labelling':34}{'AMI vs full fits':>22}{'seconds':>10}{'÷ full fit':>12}{'outliers':>10}")
    if floor:
        print(f"{'full fit, another seed (floor)':34}{out['seed_floor_ami']:>12.4f} [{min(floor):.3f}, {max(floor):.3f}]"
              f"{out['full_s']:>10.1f}{1:>12.2f}")
    for name in samples:
        row = rows[name]
        picked = np.zeros(len(next(iter(full_labels.values()))), dtype=bool)
        picked[np.load(labels_dir / f"{name}-picked.npy")] = True
        # the floor on the same documents: how much two full fits agree on just the ones this sample fitted
        out[f"{name}_floor_sampled"] = round(float(np.mean([ami(full_labels[a][picked], full_labels[b][picked])
                                                            for a, b in pairs])), 4) if pairs else None
        for how in ("centroid", "predict"):
            labels = np.load(labels_dir / f"{name}-{how}.npy")
            seconds = row["fit_s"] + row[f"{how}_s"]
            ratio = seconds / out["full_s"] if out["full_s"] else float("nan")
            key = f"{name}_{how}"
            # the gap taken apart: the sample's own clustering (its documents) vs the labelling of the rest, and
            # agreement where both call a document clustered (outliers aside)
            out |= {f"{key}_ami": mean_score(ami, full_labels.values(), labels),
                    f"{key}_ami_sampled": mean_score(ami, full_labels.values(), labels, picked),
                    f"{key}_ami_labelled": mean_score(ami, full_labels.values(), labels, ~picked),
                    f"{key}_ami_clustered": mean_score(clustered_ami, full_labels.values(), labels),
                    f"{key}_s": round(seconds, 2), f"{key}_time_share": round(ratio, 3),
                    f"{key}_outliers": round(float(np.mean(labels < 0)), 4)}
            if name == "sample-0":
                out[f"npmi_{key}"] = npmi(labels)
            print(f"{name + ', ' + how:34}{out[key + '_ami'] or float('nan'):>22.4f}{seconds:>10.1f}{ratio:>12.2f}"
                  f"{out[key + '_outliers']:>10.3f}")
    for how in ("centroid", "predict"):  # over sample seeds: the goal is judged on their mean, their range shown
        for stat in ("ami", "ami_sampled", "ami_labelled", "ami_clustered", "time_share", "outliers"):
            values = [out[f"{name}_{how}_{stat}"] for name in samples]
            if values:
                out[f"sample_{how}_{stat}"] = round(float(np.mean(values)), 4)
                out[f"sample_{how}_{stat}_range"] = [min(values), max(values)]
    floors = [out[f"{name}_floor_sampled"] for name in samples if out[f"{name}_floor_sampled"] is not None]
    out["sample_floor_sampled"] = round(float(np.mean(floors)), 4) if floors else None
    out["sample_seeds"] = len(samples)
    print(f"\n{'scaling':44}{'documents':>12}{'seconds':>10}{'peak RSS GiB':>14}")
    for name in sorted({n.split(":")[0] for n in rows if n.startswith(("scale-", "fullscale-")) or n == "full-0"},
                       key=lambda n: (rows[n]["n"] if n == "full-0" else int(n.split("-")[1]), n)):
        parts = [r for n, r in rows.items() if n.split(":")[0] == name]
        if name == "full-0":
            seconds, what, n = parts[0]["s"], "full fit, all pool tweets", parts[0]["n"]
        elif "fit_s" in parts[0]:  # chunks not run are counted at the measured chunks' mean, and said so
            total = int(parts[0]["part"].split("/")[1])
            per_part = {how: float(np.mean([p[f"{how}_s"] for p in parts])) for how in ("centroid", "predict")}
            seconds = parts[0]["fit_s"] + total * (per_part["centroid"] + per_part["predict"])
            what, n = f"sample + label ({len(parts)} of {total} chunks run)", parts[0]["n"]
            out[f"scale_{n}_parts"] = {"run": len(parts), "of": total, "fit_s": parts[0]["fit_s"],
                                       "centroid_s": round(total * per_part["centroid"], 2),
                                       "predict_s": round(total * per_part["predict"], 2),
                                       "labelled_measured": int(sum(p["labelled"] for p in parts))}
        else:
            seconds, what, n = parts[0]["s"], parts[0]["what"], parts[0]["n"]
        rss = max(p["peak_rss_gib"] for p in parts)
        out[f"{'full' if name.startswith('fullscale') else ''}scale_{n}"] = {"what": what, "s": round(seconds, 2), "peak_rss_gib": rss}
        print(f"{what:44}{n:>12,}{seconds:>10.1f}{rss:>14.2f}")
    record = json.loads(results.read_text())
    out["rows_dates"] = [min(r["date"] for r in rows.values()), max(r["date"] for r in rows.values())]
    out["rows_load_1min"] = [min(r["load_1min"] for r in rows.values()), max(r["load_1min"] for r in rows.values())]
    record["summary"] = out | machine()
    with tempfile.NamedTemporaryFile("w", dir=results.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(record, tmp, indent=1)
    os.replace(tmp.name, results)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", help="full-S, sample-S or scale-N (N ≤ the pool: real tweets; above: resampled)")
    parser.add_argument("--part", default="1/1", help="i/k: label only the i-th of k chunks (resampled rows)")
    parser.add_argument("--mcs", type=int, default=100, help="min_cluster_size of a full fit (a sample's is scaled)")
    parser.add_argument("--summarise", action="store_true", help="score the rows present; print the table")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # UMAP's notes on seeds and precomputed graphs
    from sparkbooks.settings import settings

    scratch = Path(tempfile.mkdtemp(prefix="topic-million-")) if args.smoke else None
    results = scratch / "topic_million.json" if scratch else args.results
    labels_dir = scratch or settings.cache_dir / "topic_million"
    labels_dir.mkdir(parents=True, exist_ok=True)
    part = tuple(int(x) for x in args.part.split("/"))
    if args.smoke:  # the same code on 1,200 tweets: two full fits, one sample, one resampled row, the summary
        for name in ("full-0", "full-1", "sample-0", "sample-1", "scale-2000"):
            run_row(name, mcs=20, part=(1, 1), results=results, labels_dir=labels_dir, smoke=True)
    elif args.row:
        print(json.dumps(run_row(args.row, mcs=args.mcs, part=part, results=results, labels_dir=labels_dir, smoke=False)))
    if args.summarise or args.smoke:
        print(json.dumps(summarise(results, labels_dir, args.smoke)))


if __name__ == "__main__":
    main()
