"""LadybugDB against networkx in memory: load, a 2-hop neighbourhood query and PageRank at 10k, 100k and 1M edges.

Synthetic directed graphs with a heavy-tailed in-degree (targets drawn from a Pareto law, as in
real knowledge graphs where a few entities — a continent, a currency — collect most links), four
edges per node, duplicates and self-loops removed. LadybugDB: ``GraphStore.bulk_load`` (``COPY``
into the file) timed to a reopened, counted database; the 2-hop query is the playbook's Cypher
pattern ``(a {name: $n})-[:Fact*1..2]-(b)`` returning the distinct neighbours, from the same 20
seeded start nodes for both engines (their answers are compared: they must be the same sets).
The playbook's own query is timed too: ``GraphStore.neighbourhood`` from the same start nodes
(``--hops``, 3 as the playbook), facts read into Python. It walks breadth-first, one query per hop
over the frontier's edges; the ``*1..3 RETURN rels(p), nodes(p)`` form it replaced read every path
through the hubs (on the 2,000-edge smoke graph: 120 s for one start node against 0.12 s, the same
1,924 facts).
PageRank: LadybugDB's ALGO extension downloads from extension.ladybugdb.com (not reachable here),
so the database's figure is what the playbook does — read the edges out into networkx, then
PageRank — and networkx's is PageRank on the graph already in memory.

    python benchmarks/txt2kg_graph.py [--edges 10000 100000 1000000] [--queries 20] [--hops 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from sparkbooks.hardware import detect
from sparkbooks.retrieval.kg import graph
from sparkbooks.retrieval.kg.store import GraphStore

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"edges": [2_000], "queries": 5, "hops": 3}


TWO_HOP = "MATCH (a:Entity {name: $n})-[:Fact*1..2]-(b:Entity) RETURN DISTINCT b.name AS name"


def synthetic(n_edges: int, seed: int = 0) -> pd.DataFrame:
    """About ``n_edges`` unique directed edges over ``n_edges / 4`` nodes with a heavy-tailed in-degree."""
    rng = np.random.default_rng(seed)
    n_nodes = max(n_edges // 4, 10)
    draw = int(n_edges * 1.3)
    src = rng.integers(0, n_nodes, draw)
    dst = np.minimum((rng.pareto(1.1, draw) * n_nodes / 200).astype(np.int64), n_nodes - 1)
    edges = pd.DataFrame({"s": src, "o": dst})
    edges = edges[edges.s != edges.o].drop_duplicates().head(n_edges)
    return pd.DataFrame({"subject": "n" + edges.s.astype(str), "relation": "linked",
                         "object": "n" + edges.o.astype(str)}).reset_index(drop=True)


def one_size(n_edges: int, queries: int, tmp: Path, hops: int = 3) -> dict:
    facts = synthetic(n_edges)
    start = time.perf_counter()
    with GraphStore(tmp / f"g{n_edges}.lbug") as store:
        store.bulk_load(facts)
    with GraphStore(tmp / f"g{n_edges}.lbug") as store:
        nodes, edges = store.counts()
        load_s = time.perf_counter() - start
        rng = np.random.default_rng(1)
        starts = list(rng.choice(pd.unique(facts["subject"]), queries, replace=False))
        db_ms, db_sets = [], []
        for name in starts:
            t = time.perf_counter()
            db_sets.append(set(store.query(TWO_HOP, {"n": name})["name"]))
            db_ms.append((time.perf_counter() - t) * 1000)
        playbook_ms, playbook_facts = [], []
        for name in starts:  # what the playbook runs per linked entity: all walks read out, facts deduplicated
            t = time.perf_counter()
            playbook_facts.append(len(store.neighbourhood([name], hops=hops, limit=10**9)))
            playbook_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        exported = graph.to_networkx(store.facts())
        export_s = time.perf_counter() - t
    t = time.perf_counter()
    g = nx.DiGraph()
    g.add_edges_from(zip(facts["subject"], facts["object"]))
    nx_load_s = time.perf_counter() - t
    undirected = g.to_undirected(as_view=True)
    nx_ms, agree = [], 0
    for name, db_set in zip(starts, db_sets):
        t = time.perf_counter()
        near = set(nx.single_source_shortest_path_length(undirected, name, cutoff=2)) - {name}
        nx_ms.append((time.perf_counter() - t) * 1000)
        agree += near == db_set - {name}  # Cypher's walks may come back to the start node
    t = time.perf_counter()
    nx.pagerank(nx.DiGraph(exported))
    db_pagerank_s = export_s + time.perf_counter() - t
    t = time.perf_counter()
    nx.pagerank(g)
    nx_pagerank_s = time.perf_counter() - t
    return {"n_edges": edges, "nodes": nodes, "load_s": load_s, "two_hop_ms": float(np.median(db_ms)),
            "two_hop_p95_ms": float(np.percentile(db_ms, 95)), "networkx_load_s": nx_load_s,
            "networkx_two_hop_ms": float(np.median(nx_ms)), "export_s": export_s, "pagerank_s": db_pagerank_s,
            "networkx_pagerank_s": nx_pagerank_s, "same_answers": f"{agree}/{len(starts)}",
            "mean_two_hop_size": float(np.mean([len(s) for s in db_sets])), "hops": hops,
            "playbook_ms": float(np.median(playbook_ms)), "playbook_p95_ms": float(np.percentile(playbook_ms, 95)),
            "playbook_facts": float(np.median(playbook_facts))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--hops", type=int, default=3, help="the playbook's traversal depth (its `hops` parameter)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.edges:
            rows.append(one_size(n, args.queries, Path(tmp), args.hops))
            print(f"  {rows[-1]['n_edges']:,} edges done", flush=True)
    print(f"\nLadybugDB vs networkx on {detect().summary()} (backend: {graph.backend()})\n")
    print("| edges | nodes | LadybugDB load s | networkx load s | 2-hop ms p50 (p95), LadybugDB | 2-hop ms p50, networkx "
          "| same answers | 2-hop size | playbook query ms p50 (p95) | its facts (p50) | PageRank s, from the DB | PageRank s, networkx |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_edges']:,} | {r['nodes']:,} | {r['load_s']:.2f} | {r['networkx_load_s']:.2f} | "
              f"{r['two_hop_ms']:.1f} ({r['two_hop_p95_ms']:.1f}) | {r['networkx_two_hop_ms']:.2f} | {r['same_answers']} | "
              f"{r['mean_two_hop_size']:,.0f} | {r['playbook_ms']:.1f} ({r['playbook_p95_ms']:.1f}) | {r['playbook_facts']:,.0f} | "
              f"{r['pagerank_s']:.2f} (export {r['export_s']:.2f}) | {r['networkx_pagerank_s']:.2f} |")
    print(f"\nplaybook query: GraphStore.neighbourhood(hops={args.hops}), the traversal txt2kg runs per linked entity")
    keys = ["n_edges", "load_s", "two_hop_ms", "playbook_ms", "pagerank_s", "networkx_pagerank_s", "networkx_load_s", "networkx_two_hop_ms"]
    print(json.dumps({k: [round(r[k], 4) if isinstance(r[k], float) else r[k] for r in rows] for k in keys}))


if __name__ == "__main__":
    main()
