"""Graph analysis with networkx — run by nx-cugraph on a GPU with no code change — and pictures of the graph.

``measure`` times PageRank, Louvain communities and the degree distribution. networkx dispatches
each call to a backend: when the device policy runs nx-cugraph (installed, CUDA works, not
``SPARKBOOKS_ACCELERATOR=cpu``) the same calls run on it (as ``cudf.pandas`` does for pandas), and the
result says which backend ran — and whether the seed held: nx-cugraph's Louvain ignores ``seed``
(its docstring says so), so GPU communities may differ from run to run. ``interactive_html``
writes a self-contained page with vis-network (the JavaScript pyvis ships, inlined: no CDN), nodes
coloured by community and sized by PageRank; ``draw`` is the static picture for readers without
JavaScript.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

__all__ = ["GraphMeasures", "backend", "draw", "iframe", "interactive_html", "measure", "show", "to_networkx"]

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf"]


def backend() -> str:
    """'cugraph' when the device policy runs nx-cugraph (installed, CUDA works, not ``SPARKBOOKS_ACCELERATOR=cpu``), else 'networkx'."""
    from ... import devices  # noqa: PLC0415

    return "cugraph" if devices.use_gpu("cugraph") else "networkx"


def to_networkx(facts):
    """A directed multigraph from a facts table (subject, relation, object[, chunk])."""
    import networkx as nx  # noqa: PLC0415

    graph = nx.MultiDiGraph()
    for row in facts.itertuples(index=False):
        graph.add_edge(row.subject, row.object, relation=row.relation)
    return graph


@dataclass
class GraphMeasures:
    backend: str
    pagerank: dict[str, float]
    communities: list[set[str]]
    degrees: Counter
    seconds: dict[str, float] = field(default_factory=dict)
    seeded: bool = True  # the communities follow the seed (False on nx-cugraph, whose Louvain ignores it)

    def community_of(self) -> dict[str, int]:
        return {n: i for i, members in enumerate(self.communities) for n in members}

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        return sorted(self.pagerank.items(), key=lambda kv: -kv[1])[:k]


def measure(graph, *, seed: int = 0, use: str | None = None) -> GraphMeasures:
    """PageRank (on the directed graph), Louvain communities and degrees (undirected), each timed, on ``use`` or the best backend."""
    import networkx as nx  # noqa: PLC0415

    use = use or backend()
    kwargs = {"backend": "cugraph"} if use == "cugraph" else {}
    simple = nx.DiGraph(graph)
    undirected = simple.to_undirected()
    seconds = {}
    start = time.perf_counter()
    rank = nx.pagerank(simple, **kwargs)
    seconds["pagerank"] = time.perf_counter() - start
    start = time.perf_counter()
    parts = nx.community.louvain_communities(undirected, seed=seed, **kwargs)
    seconds["louvain"] = time.perf_counter() - start
    communities = sorted((set(p) for p in parts), key=lambda p: (-len(p), sorted(p)))
    degrees = Counter(d for _, d in undirected.degree())
    return GraphMeasures(use, dict(rank), communities, degrees, seconds, seeded=use != "cugraph")


def interactive_html(graph, analysis: GraphMeasures, *, title: str = "knowledge graph", height: int = 560) -> str:
    """A standalone HTML page drawing the graph with vis-network, inlined from pyvis's copy (works offline)."""
    lib = resources.files("pyvis") / "lib" / "vis-9.1.2"
    script, style = (lib / "vis-network.min.js").read_text(), (lib / "vis-network.css").read_text()
    group = analysis.community_of()
    top = max(analysis.pagerank.values(), default=1.0)
    nodes = [{"id": n, "label": n, "color": _PALETTE[group.get(n, 0) % len(_PALETTE)],
              "value": analysis.pagerank.get(n, 0) / top, "title": f"{n} — community {group.get(n, 0)}, "
                                                                    f"PageRank {analysis.pagerank.get(n, 0):.4f}"}
             for n in graph.nodes]
    edges = [{"from": a, "to": b, "label": d.get("relation", ""), "arrows": "to", "font": {"size": 9}}
             for a, b, d in graph.edges(data=True)]
    data = json.dumps({"nodes": nodes, "edges": edges}).replace("</", "<\\/")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{style} body {{ margin: 0; font-family: sans-serif; }} #graph {{ width: 100%; height: {height}px; }}</style>
<script>{script}</script></head><body><div id="graph"></div><script>
const data = {data};
const network = new vis.Network(document.getElementById("graph"),
  {{nodes: new vis.DataSet(data.nodes), edges: new vis.DataSet(data.edges)}},
  {{nodes: {{shape: "dot", scaling: {{min: 6, max: 30}}, font: {{size: 12}}}},
    physics: {{stabilization: {{iterations: 200}}, barnesHut: {{springLength: 120}}}}, interaction: {{hover: true}}}});
window.sbNetwork = network;
</script></body></html>"""


def iframe(page: str, *, height: int = 580) -> str:
    """The page in an ``iframe srcdoc`` — shown alike in JupyterLab and the static guide, its script kept apart."""
    return (f'<iframe class="sb-graph" srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;'
            'border:1px solid #ccc" sandbox="allow-scripts"></iframe>')


def show(page: str, *, height: int = 580) -> None:
    """Display the page in its iframe in a notebook (as raw HTML: IPython's HTML class warns about iframes)."""
    from IPython.display import display  # noqa: PLC0415

    display({"text/html": iframe(page, height=height)}, raw=True)


def draw(graph, analysis: GraphMeasures, *, ax=None, seed: int = 0, labels: int = 25):
    """A static picture: spring layout, colour = community, size = PageRank; the ``labels`` highest-ranked nodes named."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import networkx as nx  # noqa: PLC0415

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 7))
    simple = nx.Graph(graph)
    pos = nx.spring_layout(simple, seed=seed, k=0.6)
    group = analysis.community_of()
    top = max(analysis.pagerank.values(), default=1.0)
    nx.draw_networkx_edges(simple, pos, ax=ax, alpha=0.3)
    nx.draw_networkx_nodes(simple, pos, ax=ax, node_color=[_PALETTE[group.get(n, 0) % len(_PALETTE)] for n in simple],
                           node_size=[30 + 600 * analysis.pagerank.get(n, 0) / top for n in simple])
    named = {n for n, _ in analysis.top(labels)}
    nx.draw_networkx_labels(simple, pos, {n: n for n in simple if n in named}, ax=ax, font_size=8)
    ax.set_axis_off()
    return ax
