"""ANN on real MiniLM tweet vectors (a recall@10 / QPS frontier), and a synthetic scale test up to 1M vectors.

**Frontier (real vectors, ``--part frontier``).** The health tweets' all-MiniLM-L6-v2 vectors
(``sparkbooks.retrieval.rag.ann.tweet_vectors``: cleaned, exact duplicates dropped, a seeded tenth held
out as in the topic benchmark and playbook, whose embedding cache this shares); ``--tweets all`` indexes
the other nine tenths (54,257 distinct tweets) and queries ``--ann-queries`` held-out tweets. Baseline: exact search —
faiss ``IndexFlatIP``, all queries in one call, every thread. Engines: faiss HNSW (M 16, efC 200) over
ef, faiss IVF-Flat (nlist 128) over nprobe, and the playbook's ``VectorIndex`` on Milvus Lite and on a
Milvus server (HNSW over ef, IVF_FLAT over nprobe) — every engine asked the same queries batched. Each point:
recall@10 (ties counted, 95 % bootstrap over queries) and QPS (median and range of ``--repeats`` timings,
each at least ``--min-s`` long: the batched call repeated); then per engine the first grid value reaching
recall@10 ≥ 0.95 (a first crossing on the stated grid, reported as one) and its speed-up over exact search,
timed in ``--pairs`` interleaved pairs (``ann_speed.speedup``). Milvus Lite answers ``--lite-queries`` of the
queries (fewer: its recall intervals are then wider).

**Resumable.** Every point is written to ``--out`` (JSON: machine, each run's dates and load, points,
operating points) as it ends; a run skips what the file holds, starts no new point after ``--budget-s``
and keeps built faiss indexes and Milvus Lite folders in ``--dir``: run the same command until it prints "complete". The committed
record, read by the rag playbook (``sparkbooks.retrieval.rag.ann_record``), came from

    python benchmarks/rag_retrieval.py --part frontier --tweets all --frontier-engines faiss-hnsw faiss-ivf lite-hnsw \
        --out benchmarks/results/rag_ann_frontier.json --budget-s 180      # repeated until "complete"

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

    python benchmarks/rag_retrieval.py [--part frontier synthetic] [--tweets all] [--ann-queries 1000] [--out F.json]
                                       [--min-s 0.2] [--pairs 6] [--budget-s 200]
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
from sparkbooks.retrieval.rag import ann, ann_speed
from sparkbooks.retrieval.rag.index import VectorIndex
from sparkbooks.retrieval.rag.server import milvus_server as start_milvus

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"sizes": [2_000], "queries": 20, "engines": ["lite", "faiss-hnsw"], "tweets": "1000", "ann_queries": 40,
         "lite_queries": 40, "repeats": 1, "min_s": 0.01, "pairs": 2, "frontier_engines": ["faiss-hnsw", "faiss-ivf", "lite-hnsw"]}
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


def _grid(key: str) -> list[int]:
    return list(ann.EF_GRID) if key.endswith("hnsw") else [g for g in ann.NPROBE_GRID if g <= 128]


def _engine(key: str, data, args, server_uri: str | None):
    kind, index_type = key.split("-")
    if kind == "faiss":  # the built index is kept in --dir, so a resumed run does not build it again
        args.dir.mkdir(parents=True, exist_ok=True)
        path = args.dir / f"faiss-{index_type}-{len(data.base)}.index"
        return ann.faiss_hnsw(data.base, path=path) if index_type == "hnsw" else ann.faiss_ivf(data.base, path=path)
    uri = server_uri if kind == "server" else args.dir / f"ann-{index_type}.db"
    return ann.milvus(data.base, uri, index_type="HNSW" if index_type == "hnsw" else "IVF_FLAT",
                      label="Milvus Lite" if kind == "lite" else "Milvus server", keep=True)  # Lite: reopened next run


def _machine() -> dict:
    from sparkbooks.hardware import detect

    hw = detect()
    return {"description": hw.summary(), "cpus": os.cpu_count(), "gpu": None}


def frontier_part(args, server_uri: str | None) -> dict:
    """The real-vector frontier, resumable: every grid point and operating point is saved to ``--out`` as it ends.

    A run skips what the file already holds and stops starting new points after ``--budget-s``; run the same
    command again until it prints "complete". Speed-ups are against the exact search timed in the same run
    (the operating point: in interleaved pairs, ``ann_speed.speedup``), so a busier machine in a later run cannot
    flatter or hurt an earlier run's points.
    """
    began = time.perf_counter()
    out = args.out or args.dir / "ann_frontier.json"
    record = json.loads(out.read_text()) if out.exists() else {}
    data = ann.tweet_vectors(n_base=None if args.tweets == "all" else int(args.tweets), n_queries=args.ann_queries)
    settings = {"repeats": args.repeats, "min_s": args.min_s, "pairs": args.pairs, "target": 0.95}  # each row: its queries
    if record and (record["data"]["base"], record["data"]["queries"], {k: record["settings"].get(k) for k in settings}) != (
            len(data.base), len(data.queries), settings):
        raise SystemExit(f"{out} holds another problem or settings ({record['data']}, {record['settings']}): "
                         "give a new --out, or the same settings")
    record = record or {"benchmark": "benchmarks/rag_retrieval.py --part frontier", "machine": _machine(),
                        "data": {"base": len(data.base), "queries": len(data.queries), "dim": int(data.base.shape[1]),
                                 "source": data.describe()}, "settings": settings, "runs": [], "rows": [], "operating": {}}
    record["settings"] = settings  # Milvus Lite's query count is each row's own ("queries")
    truth = ann.exact(data.base, data.queries, repeats=max(args.repeats, 3), min_s=args.min_s)
    run = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_avg_1m_before": round(os.getloadavg()[0], 2),
           "exact_threads": truth.threads, "exact_qps": [round(q, 1) for q in truth.qps_samples], "did": []}
    record["runs"].append(run)
    index = len(record["runs"]) - 1
    print(f"frontier: {data.describe()}; exact (faiss flat, batched, {truth.threads} threads): "
          f"{truth.qps:,.0f} QPS (median of {len(truth.qps_samples)}, each ≥ {args.min_s} s); run {index}", flush=True)

    def save() -> None:
        run["finished"], run["load_avg_1m_after"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), round(os.getloadavg()[0], 2)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")

    complete = True
    for key in args.frontier_engines:
        if key.startswith("server") and server_uri is None:
            continue
        done = {r["value"] for r in record["rows"] if r["key"] == key}
        todo = [v for v in _grid(key) if v not in done]
        if not todo and key in record["operating"]:
            continue
        if time.perf_counter() - began > args.budget_s:
            complete = False
            break
        n = args.lite_queries if key.startswith("lite") else len(data.queries)
        sub = data.head(n)
        engine = _engine(key, data, args, server_uri)
        try:
            for value in todo:
                if time.perf_counter() - began > args.budget_s:
                    complete = False
                    break
                row = ann.frontier(engine, sub, truth.head(n), repeats=args.repeats, min_s=args.min_s, values=[value]).iloc[0]
                record["rows"].append({"key": key, "run": index, "queries": n, "exact_qps_run": round(truth.qps, 1)} | {
                    c: (round(float(v), 4) if isinstance(v, float) else v) for c, v in row.to_dict().items()})
                run["did"].append(f"{key} {engine.knob} {value}")
                save()
                print(f"  {engine.name} {engine.knob} {value}: recall@10 {row['recall@10']:.3f}, {row['QPS']:,.0f} QPS "
                      f"[{row['QPS low']:,.0f}, {row['QPS high']:,.0f}], shortest timing {row['timing s']:.2f} s", flush=True)
            rows = sorted((r for r in record["rows"] if r["key"] == key), key=lambda r: r["value"])
            if len(rows) == len(_grid(key)) and key not in record["operating"]:
                hit = next((r for r in rows if r["recall@10"] >= 0.95), None)
                if hit is None:
                    record["operating"][key] = {"engine": engine.name, "value": None, "note": "0.95 not reached on the grid"}
                else:
                    up = ann_speed.speedup(engine, sub, truth.head(n), value=hit["value"], pairs=args.pairs, min_s=args.min_s)
                    record["operating"][key] = {"engine": engine.name, "knob": engine.knob, "value": hit["value"],
                                                "recall@10": hit["recall@10"], "recall low": hit["recall low"],
                                                "recall high": hit["recall high"], "run": index, "queries": n,
                                                "engine_qps": [round(q, 1) for q in up.engine_qps],
                                                "exact_qps": [round(q, 1) for q in up.exact_qps],
                                                "speedup_median": round(float(np.median(up.ratios)), 3),
                                                "speedup_min": round(float(up.ratios.min()), 3),
                                                "speedup_max": round(float(up.ratios.max()), 3),
                                                "qps_difference_95": [round(x, 1) for x in up.interval]}
                    run["did"].append(f"{key} speed-up at {engine.knob} {hit['value']}")
                    print(f"  {engine.name} first {engine.knob} reaching 0.95: {hit['value']}; {up.describe()}", flush=True)
                save()
        finally:
            engine.close()
    save()
    frontier_table(record)
    print(("complete" if complete else f"not complete (--budget-s {args.budget_s:.0f} reached): run the same command again")
          + f"; {out}", flush=True)
    return {"frontier_base": record["data"]["base"], "frontier_complete": complete,
            "first_095": {k: o["value"] for k, o in record["operating"].items()},
            "first_095_speedup": {k: o.get("speedup_median") for k, o in record["operating"].items()}}


def frontier_table(record: dict) -> None:
    """The frontier as a Markdown table; ← marks each engine's first value reaching 0.95."""
    print(f"\n| engine | knob | value | recall@10 [95% CI] | QPS median [min, max] | vs exact (same run) | shortest timing s "
          f"| queries |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(record["rows"], key=lambda r: (r["key"], r["value"])):
        mark = " ←" if record["operating"].get(r["key"], {}).get("value") == r["value"] else ""
        print(f"| {r['engine']} | {r['knob']} | {r['value']}{mark} | {r['recall@10']:.3f} [{r['recall low']:.3f}, "
              f"{r['recall high']:.3f}] | {r['QPS']:,.0f} [{r['QPS low']:,.0f}, {r['QPS high']:,.0f}] | "
              f"{r['QPS'] / r['exact_qps_run']:.2f}× | {r['timing s']:.2f} | {r['queries']} |")
    print("\n← the first value on the grid whose mean recall@10 reaches 0.95 (a first crossing, reported as one); "
          "its speed-up from interleaved pairs with exact search:")
    for key, o in record["operating"].items():
        print(f"  {o['engine']}: " + (o.get("note") or f"{o['knob']} {o['value']}, {o['speedup_median']:.2f}× exact "
                                       f"[{o['speedup_min']:.2f}–{o['speedup_max']:.2f}] over {len(o['engine_qps'])} pairs"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["frontier", "synthetic"], choices=["frontier", "synthetic"])
    parser.add_argument("--tweets", default="all", help="frontier base: 'all' (≈ 57k distinct tweets) or a number")
    parser.add_argument("--ann-queries", type=int, default=1000, help="held-out tweets asked (batched)")
    parser.add_argument("--lite-queries", type=int, default=200, help="of those, how many Milvus Lite answers")
    parser.add_argument("--repeats", type=int, default=3, help="timings per frontier point (median and range)")
    parser.add_argument("--min-s", type=float, default=0.2, help="each timing repeats the batched call for this long at least")
    parser.add_argument("--pairs", type=int, default=6, help="interleaved exact/engine timings at each operating point")
    parser.add_argument("--out", type=Path, default=None, help="the frontier's JSON record (resumed if it exists); "
                        "default DIR/ann_frontier.json")
    parser.add_argument("--budget-s", type=float, default=200, help="start no new frontier point after this many seconds")
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
