"""ANN on real MiniLM tweet vectors (a recall@10 / QPS frontier), and a synthetic scale test up to 1M vectors.

**Frontier (real vectors, ``--part frontier``).** The health tweets' all-MiniLM-L6-v2 vectors
(``sparkbooks.retrieval.rag.ann.tweet_vectors``: cleaned, exact duplicates dropped, a seeded tenth held
out as in the topic benchmark and playbook, whose embedding cache this shares); ``--tweets all`` indexes
the other nine tenths (≈ 57k) and queries ``--ann-queries`` held-out tweets. Baseline: exact search —
faiss ``IndexFlatIP``, all queries in one call, every thread. Engines: faiss HNSW (M 16, efC 200) over
ef, faiss IVF-Flat (nlist 128) over nprobe, and the playbook's ``VectorIndex`` on Milvus Lite and on a
Milvus server (HNSW over ef, IVF_FLAT over nprobe) — every engine asked the same queries batched. Each point:
recall@10 (ties counted, 95 % bootstrap over queries) and QPS (median and range of ``--repeats`` timings);
then per engine the first grid value reaching recall@10 ≥ 0.95 and its speed-up over exact search
(a first crossing on the stated grid, reported as one). Milvus Lite answers ``--lite-queries`` of the
queries (its Python search loop costs ~60 ms a query at this size).

**Scale test (synthetic, ``--part synthetic``).** The vectors are 384-d (MiniLM's size), synthetic but clustered like real embeddings — 1,000 random
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

This part's limits: the synthetic clusters are trivially separated (no other-cluster point above 0.24 cosine,
queries from the data's own distribution), its exact column runs one query at a time on one thread, and
each engine has one operating point (ef 64): read it as a scale test (build times, memory, Lite's growth),
not as a recall or speed-up claim — the frontier above is that.

    python benchmarks/rag_retrieval.py [--part frontier synthetic] [--tweets all] [--ann-queries 1000]
                                       [--frontier-engines faiss-hnsw faiss-ivf lite-hnsw lite-ivf server-hnsw server-ivf]
                                       [--sizes 10000 100000 1000000] [--engines lite server faiss-hnsw]
                                       [--queries 200] [--dir /tmp/rag-bench] [--server-uri http://HOST:19530]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from sparkbooks.exceptions import MissingDependencyError
from sparkbooks.retrieval.rag import ann
from sparkbooks.retrieval.rag.index import VectorIndex
from sparkbooks.retrieval.rag.server import milvus_server as start_milvus

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"sizes": [2_000], "queries": 20, "engines": ["lite", "faiss-hnsw"], "tweets": "1000", "ann_queries": 40,
         "lite_queries": 40, "repeats": 1, "frontier_engines": ["faiss-hnsw", "faiss-ivf", "lite-hnsw"]}
FRONTIER_ENGINES = ("faiss-hnsw", "faiss-ivf", "lite-hnsw", "lite-ivf", "server-hnsw", "server-ivf")


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


def frontier_part(args, server_uri: str | None) -> dict:
    """The real-vector frontier: exact baseline, every engine over its knob, the first ef/nprobe reaching 0.95."""
    import pandas as pd

    data = ann.tweet_vectors(n_base=None if args.tweets == "all" else int(args.tweets), n_queries=args.ann_queries)
    truth = ann.exact(data.base, data.queries, repeats=max(args.repeats, 3))
    print(f"frontier: {data.describe()}; exact (faiss flat, batched, {truth.threads} threads): "
          f"{truth.qps:,.0f} QPS (median of {len(truth.seconds)})", flush=True)
    tables = []
    for name in args.frontier_engines:
        kind, index_type = name.split("-")
        if kind == "faiss":
            engine = ann.faiss_hnsw(data.base) if index_type == "hnsw" else ann.faiss_ivf(data.base)
        else:
            if kind == "server" and server_uri is None:
                continue
            uri = server_uri if kind == "server" else args.dir / f"ann-{index_type}.db"
            engine = ann.milvus(data.base, uri, index_type="HNSW" if index_type == "hnsw" else "IVF_FLAT",
                                label="Milvus Lite" if kind == "lite" else "Milvus server")
        n = args.lite_queries if kind == "lite" else len(data.queries)
        sub = ann.ExactTruth(truth.ids[:n], truth.sims[:n], truth.seconds, truth.threads)
        try:
            table = ann.frontier(engine, data.head(n), sub, repeats=args.repeats)
        finally:
            engine.close()
        table["speed-up vs exact"] = table["QPS"] / truth.qps  # against exact over every query
        table["queries"] = n
        tables.append(table)
        print(f"  {engine.name}: built in {engine.build_s:.1f} s; " + ", ".join(
            f"{engine.knob} {r['value']} → {r['recall@10']:.3f}" for r in table.to_dict("records")), flush=True)
    table = pd.concat(tables, ignore_index=True)
    first = ann.first_reaching(table, target=0.95)
    print(f"\n| engine | knob | value | recall@10 [95% CI] | QPS median [min, max] | speed-up vs exact "
          f"({truth.qps:,.0f} QPS) | build s | queries |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table.to_dict("records"):
        mark = " ←" if first.loc[r["engine"], "value"] == r["value"] else ""
        print(f"| {r['engine']} | {r['knob']} | {r['value']}{mark} | {r['recall@10']:.3f} [{r['recall low']:.3f}, "
              f"{r['recall high']:.3f}] | {r['QPS']:,.0f} [{r['QPS low']:,.0f}, {r['QPS high']:,.0f}] | "
              f"{r['speed-up vs exact']:.2f}× | {r['build s']:.1f} | {r['queries']} |")
    print("\n← the first value on the grid whose mean recall@10 reaches 0.95 (a first crossing, reported as one)")
    return {"frontier_base": len(data.base), "frontier_queries": len(data.queries), "exact_qps": round(truth.qps, 1),
            "exact_threads": truth.threads,
            "first_095": {name: (int(r["value"]) if r["value"] > 0 else None) for name, r in first.iterrows()},
            "first_095_speedup": {name: (round(float(r["speed-up vs exact"]), 3) if r["value"] > 0 else None)
                                  for name, r in first.iterrows()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["frontier", "synthetic"], choices=["frontier", "synthetic"])
    parser.add_argument("--tweets", default="all", help="frontier base: 'all' (≈ 57k distinct tweets) or a number")
    parser.add_argument("--ann-queries", type=int, default=1000, help="held-out tweets asked (batched)")
    parser.add_argument("--lite-queries", type=int, default=200, help="of those, how many Milvus Lite answers")
    parser.add_argument("--repeats", type=int, default=3, help="timings per frontier point (median and range)")
    parser.add_argument("--frontier-engines", nargs="+", default=list(FRONTIER_ENGINES), choices=FRONTIER_ENGINES)
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
    headline: dict = {}
    rows: list[dict] = []
    needs_server = (("synthetic" in args.part and "server" in args.engines)
                    or ("frontier" in args.part and any(e.startswith("server") for e in args.frontier_engines)))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(milvus_server(args.server_uri, args.dir / "server")) if needs_server else None
        if "frontier" in args.part:
            headline = frontier_part(args, server)
        if "synthetic" in args.part:
            rows = synthetic_part(args, server)
    if rows:
        synthetic_table(rows)
    print(json.dumps(headline | {key: [r[key] if isinstance(r[key], str) else round(r[key], 4) for r in rows] for key in
                                 ("engine", "n_vectors", "build_s", "query_p50_ms", "recall_at_10", "exact_query_p50_ms")}))


def synthetic_part(args, server: str | None) -> list[dict]:
    """The scale test: synthetic clustered vectors, HNSW at ef 64, one query at a time (see the module's limits)."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = clustered(args.queries, np.random.default_rng(1), centres)
    rows = []
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
    return rows


def synthetic_table(rows: list[dict]) -> None:
    print()
    print("| engine (HNSW M 16, efC 200, ef 64) | vectors | build s | query p50 / p95 ms | recall@10 vs exact "
          "| exact (faiss flat) p50 ms | speed-up p50 | on disk MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        disk = f"{r['disk_MB']:.0f}" if r["disk_MB"] else "—"
        print(f"| {r['engine']} | {r['n_vectors']:,} | {r['build_s']:.1f} | {r['query_p50_ms']:.2f} / {r['query_p95_ms']:.2f} | "
              f"{r['recall_at_10']:.3f} | {r['exact_query_p50_ms']:.2f} | {r['exact_query_p50_ms'] / r['query_p50_ms']:.2f}× | {disk} |")


if __name__ == "__main__":
    main()
