"""Approximate nearest neighbours on real embeddings: a recall@10 / QPS frontier against exact search.

The data are real MiniLM vectors of the health tweets (:func:`tweet_vectors`), deduplicated and split as the topic
playbook does; held-out tweets are the queries. Every engine answers the same queries **batched, with every
thread**, as exact search does (faiss ``IndexFlatIP``, all queries in one call; one query at a time it uses one
thread). A frontier sweeps HNSW's ``ef`` and IVF's ``nprobe``: recall@10 with a bootstrap interval over the queries,
queries per second as the median and range of timings each at least ``min_s`` long (the batched call repeated, as
``timeit`` autoranges: a 5 ms call timed once measures the scheduler). ``ann_speed.speedup`` times exact search and an
operating point in interleaved pairs (:mod:`.ann_speed`), so a pair shares the machine's load and the pair is the unit of a speed
figure. :func:`first_reaching`: the first grid value whose mean recall@10 reaches the target (a first crossing).

recall@10 counts ties as ann-benchmarks does: a returned neighbour is right when its true similarity is at
least the 10th exact similarity (less a float tolerance), so duplicate or equidistant vectors are not misses.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...exceptions import InputError

__all__ = ["AnnData", "EF_GRID", "Engine", "ExactTruth", "NPROBE_GRID", "exact", "faiss_hnsw", "faiss_ivf",
           "first_reaching", "frontier", "milvus", "recall_at_k", "tweet_vectors"]

#: HNSW ``ef`` values swept (ascending; ef below k is raised to k by every engine, so the grid starts at 10).
EF_GRID = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: IVF ``nprobe`` values swept (ascending; nlist 128, the playbook's index).
NPROBE_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
_TOL = 1e-5  # float32 inner products from two libraries differ in the last bits


def _autorange(call: Callable[[], object], min_s: float) -> tuple[int, float]:
    """Run ``call`` until ``min_s`` seconds have passed (at least once): ``(calls, seconds)``."""
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        if (elapsed := time.perf_counter() - start) >= min_s:
            return calls, elapsed


@dataclass(frozen=True)
class AnnData:
    """Base vectors and held-out query vectors (unit length, float32) with the texts they embed."""

    base: np.ndarray
    queries: np.ndarray
    source: str

    def head(self, n: int) -> AnnData:
        """The same base with only the first ``n`` queries (a slow engine asked fewer)."""
        return AnnData(self.base, self.queries[:n], self.source)

    def describe(self) -> str:
        return f"{len(self.base):,} base × {self.base.shape[1]}-d and {len(self.queries):,} held-out queries ({self.source})"


def tweet_vectors(*, n_base: int | None = 5_000, n_queries: int = 200, seed: int = 0) -> AnnData:
    """Real all-MiniLM-L6-v2 vectors of the health tweets, split as the topic playbook splits them.

    Texts are cleaned (``topics.clean_text``), exact duplicates dropped and a seeded tenth held out
    (``topics.evaluate.split_held_out``); the base is ``n_base`` of the other nine tenths drawn as the topic
    playbook draws its documents (so its embedding cache is shared), or all of them (``None``: then the whole
    corpus is embedded once, under the topic benchmark's cache key); ``n_queries`` held-out tweets are the queries.
    Where the whole corpus's vectors are cached already (the topic benchmark made them), a sample is sliced from
    them instead of embedding it again.
    """
    from ...corpora import health_tweets  # noqa: PLC0415
    from ...topics.evaluate import split_held_out  # noqa: PLC0415
    from ...topics.text import clean_text  # noqa: PLC0415
    from ..embeddings import embed, embedding_cache_path  # noqa: PLC0415

    cleaned = clean_text(health_tweets()["text"])
    split = split_held_out(cleaned, seed=seed)
    if n_queries < 1 or n_queries > len(split.held_out):
        raise InputError(f"n_queries must be in [1, {len(split.held_out)}] (the held-out tweets). Got {n_queries}.")
    queries = np.sort(np.random.default_rng(seed + 1).choice(split.held_out, n_queries, replace=False))
    if n_base is not None and not 1 <= n_base <= len(split.fit):
        raise InputError(f"n_base must be in [1, {len(split.fit)}] or None. Got {n_base}.")
    if n_base is None or embedding_cache_path(cleaned).exists():  # every vector from one embedding of the corpus
        vectors = embed(cleaned, show_progress=False)
        if n_base is None:
            return AnnData(vectors[split.fit], vectors[queries], f"all {len(split.fit):,} distinct fitted tweets")
        rows = np.sort(np.random.default_rng(seed).choice(split.fit, n_base, replace=False))
        return AnnData(vectors[rows], vectors[queries], f"a seeded sample of {n_base:,} tweets")
    rows = np.sort(np.random.default_rng(seed).choice(split.fit, n_base, replace=False))
    return AnnData(embed([cleaned[i] for i in rows], show_progress=False),
                   embed([cleaned[i] for i in queries], show_progress=False), f"a seeded sample of {n_base:,} tweets")


@dataclass(frozen=True)
class ExactTruth:
    """Exact top-k ids and similarities of every query, and the batched exact search's QPS per timing."""

    ids: np.ndarray
    sims: np.ndarray
    qps_samples: list[float]
    threads: int
    search: Callable[[np.ndarray], object] | None = field(default=None, repr=False, compare=False)

    @property
    def qps(self) -> float:  # median queries per second of the timings
        return float(np.median(self.qps_samples))

    def head(self, n: int) -> ExactTruth:  # the first n queries' truth; the timings stay those of every query
        return ExactTruth(self.ids[:n], self.sims[:n], self.qps_samples, self.threads, self.search)


def _threads(threads: int | None) -> int:
    import faiss  # noqa: PLC0415

    n = threads or os.cpu_count() or 1
    faiss.omp_set_num_threads(n)
    return n


def exact(base: np.ndarray, queries: np.ndarray, *, k: int = 10, repeats: int = 3, threads: int | None = None,
          min_s: float = 0.2) -> ExactTruth:
    """Brute-force inner-product top ``k``: faiss ``IndexFlatIP``, all queries in one call, ``threads`` (all) threads.

    Each of ``repeats`` timings repeats the batched call for at least ``min_s`` seconds.
    """
    import faiss  # noqa: PLC0415

    n = _threads(threads)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(np.ascontiguousarray(base, dtype=np.float32))
    batch = np.ascontiguousarray(queries, dtype=np.float32)
    sims, ids = flat.search(batch, k)  # the answers, and a warm-up

    def search(q: np.ndarray = batch) -> object:
        return flat.search(q, k)

    qps = [len(batch) * calls / s for calls, s in (_autorange(search, min_s) for _ in range(max(1, repeats)))]
    return ExactTruth(ids, sims, qps, n, search)


def recall_at_k(found: np.ndarray, data: AnnData, truth: ExactTruth) -> np.ndarray:
    """Per-query recall@k with ties counted (a neighbour is right when it is as close as the k-th exact one)."""
    base, queries = data.base, data.queries
    k = truth.ids.shape[1]
    found = np.asarray(found)[:, :k]
    valid = found >= 0  # an engine may return fewer than k (-1 padding)
    sims = np.einsum("qkd,qd->qk", base[np.where(valid, found, 0)], queries)
    right = valid & (sims >= truth.sims[:, -1:] - _TOL)
    hits = np.array([len(set(row[ok].tolist())) for row, ok in zip(found, right)])  # a duplicate id counts once
    return np.minimum(hits, k) / k


@dataclass
class Engine:
    """An index built on the base: ``search(queries, k, value)`` → ids; ``value`` is its ef or nprobe."""

    name: str
    knob: str
    grid: Sequence[int]
    search: Callable[[np.ndarray, int, int], np.ndarray]
    build_s: float
    close: Callable[[], None] = lambda: None


def _built(index, base: np.ndarray, path: Path | None, *, train: bool = False):
    """``index`` filled with ``base`` and its build seconds, or read back from ``path`` (a benchmark resuming)."""
    import faiss  # noqa: PLC0415

    if path is not None and Path(path).exists():
        return faiss.read_index(str(path)), float(Path(f"{path}.seconds").read_text())
    start, data = time.perf_counter(), np.ascontiguousarray(base, dtype=np.float32)
    if train:
        index.train(data)
    index.add(data)
    build_s = time.perf_counter() - start
    if path is not None:
        faiss.write_index(index, str(path))
        Path(f"{path}.seconds").write_text(f"{build_s}")
    return index, build_s


def faiss_hnsw(base: np.ndarray, *, m: int = 16, ef_construction: int = 200, grid: Sequence[int] = EF_GRID,
               path: Path | None = None) -> Engine:
    """faiss ``IndexHNSWFlat`` (inner product) with Milvus's defaults for the playbook (M 16, efConstruction 200).

    ``path``: keep the built graph there and read it back next time (its build seconds beside it).
    """
    import faiss  # noqa: PLC0415

    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index, build_s = _built(index, base, path)

    def search(queries: np.ndarray, k: int, ef: int) -> np.ndarray:
        return index.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=max(ef, k)))[1]

    return Engine(f"faiss HNSW (M {m}, efC {ef_construction})", "ef", grid, search, build_s)


def faiss_ivf(base: np.ndarray, *, nlist: int = 128, grid: Sequence[int] = NPROBE_GRID, seed: int = 0,
              path: Path | None = None) -> Engine:
    """faiss ``IndexIVFFlat`` (inner product), k-means with ``nlist`` cells trained on the base (``path``: as HNSW's)."""
    import faiss  # noqa: PLC0415

    quantizer = faiss.IndexFlatIP(base.shape[1])
    index = faiss.IndexIVFFlat(quantizer, base.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index, build_s = _built(index, base, path, train=True)

    def search(queries: np.ndarray, k: int, nprobe: int) -> np.ndarray:
        return index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=min(nprobe, nlist)))[1]

    return Engine(f"faiss IVF-Flat (nlist {nlist})", "nprobe", [g for g in grid if g <= nlist], search, build_s)


def milvus(base: np.ndarray, uri: str | Path, *, index_type: str = "HNSW", grid: Sequence[int] | None = None,
           label: str = "Milvus Lite", keep: bool = False) -> Engine:
    """The playbook's :class:`~sparkbooks.retrieval.rag.index.VectorIndex` (Milvus Lite for a path, a server for a URI).

    ``keep``: a Lite folder is kept on close and reopened next time when it holds every row (a benchmark resuming
    skips the inserts; ``build_s`` is then the reopening's).
    """
    from .index import INDEX_PARAMS, VectorIndex  # noqa: PLC0415

    if index_type not in ("HNSW", "IVF_FLAT"):
        raise InputError(f"index_type must be 'HNSW' or 'IVF_FLAT' for a frontier. Got {index_type!r}.")
    local = not str(uri).startswith(("http://", "https://", "tcp://"))
    keep, collection, reused = keep and local, f"ann_{index_type.lower()}_{len(base)}", False
    start = time.perf_counter()
    if keep and Path(uri).exists():  # opening a kept folder loads it (Lite builds its graphs then)
        index = VectorIndex(uri, dim=base.shape[1], model="all-MiniLM-L6-v2 (tweets)", collection=collection, timeout=60)
        if not (reused := index.count() == len(base)):  # a partial folder (an interrupted insert) is built again
            index.close()
    if not reused:
        if local:
            shutil.rmtree(uri, ignore_errors=True)
        else:
            VectorIndex(uri, dim=base.shape[1], model="ann", collection=collection).client.drop_collection(collection)
        index = VectorIndex(uri, dim=base.shape[1], model="all-MiniLM-L6-v2 (tweets)", collection=collection,
                            index_type=index_type, timeout=60)
        for i in range(0, len(base), 10_000):
            index.client.insert(collection, [{"id": str(i + j), "doc": "", "heading": "", "page": 0, "text": "", "tokens": 0,
                                              "vector": v.tolist()} for j, v in enumerate(base[i:i + 10_000])])
        index.client.flush(collection)
        while not local and ((info := index.client.describe_index(collection, "vector"))["indexed_rows"] < len(base)
                             or info["pending_index_rows"]):  # a server indexes sealed segments in the background
            time.sleep(1)
        index.client.release_collection(collection)  # Lite builds its FAISS indexes when the collection loads
        index.client.load_collection(collection)
    index.search(base[:1], 10)
    build_s = time.perf_counter() - start
    knob = "ef" if index_type == "HNSW" else "nprobe"
    grid = list(grid or (EF_GRID if index_type == "HNSW" else NPROBE_GRID))
    if knob == "nprobe":
        grid = [g for g in grid if g <= INDEX_PARAMS["IVF_FLAT"]["nlist"]]

    def search(queries: np.ndarray, k: int, value: int) -> np.ndarray:
        hits = index.search(queries, k, params={knob: max(value, k) if knob == "ef" else value})
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for row, found in zip(out, hits):
            row[:len(found)] = [int(i) for i, _ in found]
        return out

    def close() -> None:
        if not local:
            index.client.drop_collection(collection)
        index.close()
        if local and not keep:
            shutil.rmtree(uri, ignore_errors=True)

    params = INDEX_PARAMS[index_type]
    what = ", ".join(f"{k} {v}" for k, v in params.items())
    return Engine(f"{label} {index_type} ({what})", knob, grid, search, build_s, close)


def frontier(engine: Engine, data: AnnData, truth: ExactTruth, *, repeats: int = 3, seed: int = 0, min_s: float = 0.2,
             values: Sequence[int] | None = None):
    """One row per grid value: recall@k (mean, 95 % bootstrap over queries) and QPS (median, min–max of ``repeats``).

    Each timing repeats the batched call for at least ``min_s`` seconds (``timing s``: the shortest timing);
    ``QPS samples`` keeps every timing's queries per second. ``values`` (default: the engine's grid) limits the
    sweep to some grid values, so a long sweep can be run in parts.
    """
    import pandas as pd  # noqa: PLC0415

    from ...intervals import bootstrap_interval  # noqa: PLC0415

    k = truth.ids.shape[1]
    queries = np.ascontiguousarray(data.queries, dtype=np.float32)
    rows = []
    for value in engine.grid if values is None else values:
        found = engine.search(queries, k, value)  # the answers, and a warm-up at this setting
        timings = [_autorange(lambda: engine.search(queries, k, value), min_s) for _ in range(max(1, repeats))]
        per_query = recall_at_k(found, data, truth)
        ci = bootstrap_interval(per_query, np.mean, seed=seed, n_boot=1000)
        qps = np.array([len(queries) * calls / s for calls, s in timings])
        rows.append({"engine": engine.name, "knob": engine.knob, "value": int(value), "recall@10": float(per_query.mean()),
                     "recall low": ci.low, "recall high": ci.high, "QPS": float(np.median(qps)),
                     "QPS low": float(qps.min()), "QPS high": float(qps.max()),
                     "speed-up vs exact": float(np.median(qps)) / truth.qps, "build s": engine.build_s,
                     "timing s": min(s for _, s in timings), "QPS samples": qps.tolist()})
    return pd.DataFrame(rows)


def first_reaching(table, *, target: float = 0.95):
    """Per engine, the first row (smallest ef / nprobe on the grid) whose mean recall@10 reaches ``target``.

    An engine that never reaches it gets a row of NaNs with ``value`` -1, so it is listed, not dropped.
    """
    import pandas as pd  # noqa: PLC0415

    if not 0 < target <= 1:
        raise InputError(f"target must be in (0, 1]. Got {target}.")
    rows = []
    for name, group in table.groupby("engine", sort=False):
        ordered = group.sort_values("value")
        hit = ordered[ordered["recall@10"] >= target]
        if len(hit):
            rows.append(hit.iloc[0])
        else:
            rows.append(pd.Series({"engine": name, "knob": ordered["knob"].iloc[0], "value": -1}))
    return pd.DataFrame(rows).set_index("engine")
