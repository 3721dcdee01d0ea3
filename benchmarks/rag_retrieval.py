"""Milvus (Lite, embedded; and a real Milvus server) HNSW against exact search at 10k, 100k and 1M vectors.

The vectors are 384-d (MiniLM's size), synthetic but clustered like real embeddings — 1,000 random
unit centres, each point a centre plus Gaussian noise (σ = 0.6 per coordinate scaled by 1/√d),
normalised — with 200 held-out queries drawn the same way. Exact search is faiss ``IndexFlatIP``
(the brute-force peer). Milvus Lite
3.x is a Python implementation of the Milvus API over FAISS; its HNSW uses the playbook's
parameters (M 16, efConstruction 200, ef 64 at query time). Build time = insert in batches of
10,000 + flush + release/load (where Lite builds the graphs); queries are one vector at a time, as a RAG user asks, after
one warm-up query. recall@10 = the share of the exact top 10 found in the engine's top 10. The same
HNSW graph built by faiss directly (no Milvus around it) shows how much of a query is the index and
how much Milvus Lite's Python gRPC server.

The server rows run the playbook's own ``VectorIndex`` code against a Milvus standalone server: the
one from the ``milvus`` wheel (x86-64 Linux only; Milvus 2.3.5, the C++ Knowhere engine), started on this
machine by ``sparkbooks.retrieval.rag.server.milvus_server``, or any server given with ``--server-uri``
(on a Spark: Milvus in Docker). Its build time =
insert + flush + wait until every row is indexed + release/load.

    python benchmarks/rag_retrieval.py [--sizes 10000 100000 1000000] [--engines lite server faiss-hnsw]
                                       [--queries 200] [--dir /tmp/rag-bench] [--server-uri http://HOST:19530]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from sparkbooks.exceptions import MissingDependencyError
from sparkbooks.retrieval.rag.index import VectorIndex
from sparkbooks.retrieval.rag.server import milvus_server as start_milvus

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"sizes": [2_000], "queries": 20, "engines": ["lite", "faiss-hnsw"]}


DIM = 384
ENGINES = {"lite": "Milvus Lite 3 (embedded)", "server": "Milvus server (standalone)", "faiss-hnsw": "faiss HNSW alone (no DB)"}


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        block = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, DIM), dtype=np.float32) * (0.6 / DIM**0.5)
        out[i:i + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def insert(index: VectorIndex, vectors: np.ndarray) -> None:
    for i in range(0, len(vectors), 10_000):
        block = vectors[i:i + 10_000]
        rows = [{"id": f"v#{i + j}", "doc": f"d{(i + j) // 10_000}", "heading": "", "page": 0, "text": "", "tokens": 0,
                 "vector": v.tolist()} for j, v in enumerate(block)]
        index.client.insert(index.collection, rows)  # plain inserts: the benchmark has no documents to replace
    index.client.flush(index.collection)


def build_lite(uri: Path, vectors: np.ndarray) -> tuple[VectorIndex, float]:
    shutil.rmtree(uri, ignore_errors=True)
    start = time.perf_counter()
    index = VectorIndex(uri, dim=DIM, model="synthetic-clustered", index_type="HNSW")
    insert(index, vectors)
    # Milvus Lite 3 builds the HNSW graphs of flushed segments when the collection is loaded: release and load so
    # the searches below use them (measured: 100k vectors, 265 ms per query before, 100 ms after a 130 s load).
    index.client.release_collection(index.collection)
    index.client.load_collection(index.collection)
    index.search(vectors[:1], 10)  # the index is usable: first search after the build
    return index, time.perf_counter() - start


def build_server(uri: str, n: int, vectors: np.ndarray) -> tuple[VectorIndex, float]:
    name = f"bench_{n}"
    VectorIndex(uri, dim=DIM, model="synthetic-clustered", collection=name).client.drop_collection(name)
    start = time.perf_counter()
    index = VectorIndex(uri, dim=DIM, model="synthetic-clustered", collection=name, index_type="HNSW", timeout=60)
    insert(index, vectors)
    while True:  # a server indexes sealed segments in the background: wait until every row is in the graph
        info = index.client.describe_index(name, "vector")
        if info["indexed_rows"] >= n and not info["pending_index_rows"]:
            break
        time.sleep(1)
    index.client.release_collection(name)
    index.client.load_collection(name)
    index.search(vectors[:1], 10)
    return index, time.perf_counter() - start


def timed_queries(search, queries: np.ndarray, exact_ids: list[set[int]]) -> tuple[list[float], float]:
    """Seconds per one-vector query (after one warm-up) and mean recall@10 against the exact top 10."""
    search(queries[:1])
    times, recall = [], []
    for q, truth in zip(queries, exact_ids):
        t = time.perf_counter()
        found = search(q[None, :])
        times.append(time.perf_counter() - t)
        recall.append(len(truth & found) / 10)
    return times, float(np.mean(recall))


@contextlib.contextmanager
def milvus_server(uri: str | None, base: Path):
    """A given server URI, or a Milvus standalone server from the ``milvus`` wheel, run as a ``services.Service``."""
    if uri:
        yield uri
        return
    try:
        server = start_milvus(base)
    except MissingDependencyError as exc:
        raise SystemExit(f"--engines server needs a Milvus server: {exc} Or pass --server-uri URI.") from None
    with server:
        yield server.uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=["lite", "server", "faiss-hnsw"], choices=["lite", "server", "faiss-hnsw"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/rag-bench"))
    parser.add_argument("--lite-max", type=int, default=100_000,
                        help="largest size Milvus Lite runs at (its queries scan every row in Python: ~1 s each at 1M)")
    parser.add_argument("--server-uri", default=None, help="a running Milvus server; default: start one from the milvus wheel")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = clustered(args.queries, np.random.default_rng(1), centres)
    rows = []
    with contextlib.ExitStack() as stack:
        server = (stack.enter_context(milvus_server(args.server_uri, args.dir / "server"))
                  if "server" in args.engines else None)
        for n in args.sizes:
            vectors = clustered(n, np.random.default_rng(2), centres)
            flat = faiss.IndexFlatIP(DIM)
            flat.add(vectors)
            exact_ids = [set(flat.search(q[None, :], 10)[1][0].tolist()) for q in queries]
            exact_times, _ = timed_queries(lambda q: set(flat.search(q, 10)[1][0].tolist()), queries, exact_ids)
            exact_p50 = 1000 * float(np.median(exact_times))
            flat.reset()  # free its copy of the vectors before the engines build theirs
            for engine in args.engines:
                size = None
                if engine == "lite" and n > args.lite_max:
                    print(f"  {ENGINES[engine]:<28} {n:>9,}: not run (--lite-max {args.lite_max:,}; 130 ms per query at 100k, "
                          "growing with the rows)", flush=True)
                    continue
                if engine == "faiss-hnsw":  # the same graph without Milvus around it
                    hnsw = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
                    hnsw.hnsw.efConstruction, hnsw.hnsw.efSearch = 200, 64
                    start = time.perf_counter()
                    hnsw.add(vectors)
                    build_s = time.perf_counter() - start
                    times, recall = timed_queries(lambda q: set(hnsw.search(q, 10)[1][0].tolist()), queries, exact_ids)
                    del hnsw
                else:
                    index, build_s = (build_lite(args.dir / f"n{n}.db", vectors) if engine == "lite"
                                      else build_server(server, n, vectors))
                    times, recall = timed_queries(lambda q: {int(h[2:]) for h, _ in index.search(q, 10)[0]}, queries, exact_ids)
                    size = index.disk_bytes()
                    if engine == "server":
                        index.client.drop_collection(index.collection)
                    index.close()
                    shutil.rmtree(args.dir / f"n{n}.db", ignore_errors=True)
                rows.append({"engine": ENGINES[engine], "n_vectors": n, "build_s": build_s,
                             "query_p50_ms": 1000 * float(np.median(times)), "query_p95_ms": 1000 * float(np.percentile(times, 95)),
                             "recall_at_10": recall, "exact_query_p50_ms": exact_p50, "disk_MB": size / 1e6 if size else None})
                r = rows[-1]
                print(f"  {r['engine']:<28} {n:>9,}: build {build_s:.1f} s, p50 {r['query_p50_ms']:.2f} ms "
                      f"(exact {exact_p50:.2f}), recall@10 {recall:.3f}", flush=True)
    print()
    print("| engine (HNSW M 16, efC 200, ef 64) | vectors | build s | query p50 / p95 ms | recall@10 vs exact "
          "| exact (faiss flat) p50 ms | speed-up p50 | on disk MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        disk = f"{r['disk_MB']:.0f}" if r["disk_MB"] else "—"
        print(f"| {r['engine']} | {r['n_vectors']:,} | {r['build_s']:.1f} | {r['query_p50_ms']:.2f} / {r['query_p95_ms']:.2f} | "
              f"{r['recall_at_10']:.3f} | {r['exact_query_p50_ms']:.2f} | {r['exact_query_p50_ms'] / r['query_p50_ms']:.2f}× | {disk} |")
    print(json.dumps({key: [r[key] if isinstance(r[key], str) else round(r[key], 4) for r in rows] for key in
                      ("engine", "n_vectors", "build_s", "query_p50_ms", "recall_at_10", "exact_query_p50_ms")}))


if __name__ == "__main__":
    main()
