"""Naming clusters from marker genes — only where the markers earn the name — and checking the names independently.

:func:`annotate` gives each cluster the cell type whose canonical markers score highest, then
*earns* the name with three checks, each shown in its table:

1. **detected** — the type's two most-detected canonical markers are found, on average, in at
   least half of the cluster's cells (one marker for a type with three or fewer in the data);
2. **specific** — at least one canonical marker is among the cluster's own top markers, and the
   markers of check 1 are detected in at least ``min_gap`` more of the cluster's cells than of
   the other cells;
3. **unmixed** — no second type also passes check 1 with a score at least ``mixed_ratio`` of the
   best (a cluster that holds T *and* NK cells is "mixed", not named after the louder one).

A cluster that fails is ``ambiguous (best: …)`` or ``mixed (A + B)``, with the reason. Ribosomal
and mitochondrial genes are left out of the marker lists: they separate cells by size and stress,
not type. :func:`subcluster` re-clusters such clusters alone (scanpy's ``restrict_to``).

:func:`reference_labels` is the independent check, CellTypist's recipe on a reference that ships
offline: a logistic-regression classifier trained on the ``bulk_labels`` of scanpy's bundled
``pbmc68k_reduced`` (Zheng et al. 2017; 700 cells, 765 genes) — labels each cell got from the
FACS-sorted *bulk* profile it correlated with best, not FACS labels of the cells themselves —
each gene z-scored with the reference's mean and SD (clipped at ±10) and the query scaled the
same way. Each cluster is judged by lineage (T, NK, B, monocyte, dendritic): the majority
reference lineage must be the name's (:func:`reference_check`). Blood only — it has no tissue
macrophages and must call them something else (monocytes): those clusters are not judged.

:func:`resolution_sweep` shows how the number of clusters, their separation (silhouette) and
their stability across seeds (ARI) move with Leiden's resolution.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..exceptions import InputError
from .workflow import backend, leiden

__all__ = ["AMBIGUOUS_MARGIN", "KNOWN_CONFUSIONS", "LINEAGE", "MARKERS", "annotate", "best_guess", "earned", "marker_panel",
           "naming_sensitivity", "reference_agreement", "reference_check", "reference_labels", "reference_table",
           "resolution_sweep", "subcluster"]

#: Canonical markers of blood immune cells and of the tissue myeloid cells this sample also holds
#: (APOE/APOC1/C1Q macrophages and LAMP3+/CCR7+ mature dendritic cells are tissue, not PBMC, types).
MARKERS: dict[str, list[str]] = {
    "T cells": ["CD3E", "CD3D", "IL7R", "CD2", "TRAC"],
    "NK cells": ["GNLY", "NKG7", "KLRD1", "CST7", "PRF1"],
    "B cells": ["MS4A1", "CD79A", "CD19", "BANK1", "CD22"],
    "Monocytes": ["CD14", "VCAN", "FCN1", "S100A8", "S100A9"],
    "Macrophages": ["APOE", "APOC1", "C1QA", "C1QB", "LPL"],
    "Mature dendritic cells": ["LAMP3", "CCR7", "IDO1", "CD83", "FSCN1"],
    "Platelets": ["PPBP", "PF4", "GP9"],
}
_HOUSEKEEPING = re.compile(r"^(RPL|RPS|MRPL|MRPS|MT-)", re.I)


#: Top two reference lineages closer than this share of a cluster's cells: the reference cannot judge it.
AMBIGUOUS_MARGIN = 0.2


def _expressed_share(adata, genes: Sequence[str], cells: np.ndarray) -> dict[str, float]:
    """Share of ``cells`` with a non-zero count of each gene (in the raw, all-genes matrix)."""
    raw = adata.raw
    columns = [raw.var_names.get_loc(g) for g in genes]
    block = raw.X[cells][:, columns]
    block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
    return {g: float(np.mean(block[:, j] > 0)) for j, g in enumerate(genes)}


def _detection(shares: Mapping[str, float], n_markers: int) -> float:
    """Mean share of cells expressing the type's best-detected two markers (one when it has three or fewer)."""
    best = sorted(shares.values(), reverse=True)[: 1 if n_markers <= 3 else 2]
    return float(np.mean(best)) if best else 0.0


def _top_markers(shares: Mapping[str, float], n_markers: int) -> list[str]:
    """The markers :func:`_detection` averages: the best-detected two (one with three or fewer)."""
    return [g for g, _ in sorted(shares.items(), key=lambda kv: -kv[1])[: 1 if n_markers <= 3 else 2]]


def annotate(adata, markers: Mapping[str, Sequence[str]] = MARKERS, *, groupby: str = "leiden", n_top: int = 50,
             min_score: float = 0.3, min_share: float = 0.5, mixed_ratio: float = 0.75, min_gap: float = 0.25):
    """Name each cluster by the best-scoring marker set, and keep the name only when its markers earn it.

    Scores are scanpy ``score_genes`` (marker mean minus a matched background). Writes
    ``obs["cell_type"]`` and returns one row per cluster: size, name (or ``ambiguous (best: …)`` /
    ``mixed (A + B)``), why, the best and runner-up scores, each canonical marker's share of the
    cluster's cells that express it, the same markers' detection in every *other* cell
    (``detected_outside``; the name also needs ``detected − detected_outside ≥ min_gap``: a marker
    found everywhere names nothing), the canonical markers among its top ``n_top`` markers, and
    the top markers without ribosomal and mitochondrial genes. Needs ``rank_genes_groups`` for
    ``groupby`` (:func:`~sparkbooks.singlecell.analyse` or :func:`subcluster` leave it).
    """
    import pandas as pd  # noqa: PLC0415
    import scanpy as sc  # noqa: PLC0415

    present = {t: [g for g in genes if g in adata.raw.var_names] for t, genes in markers.items()}
    scored = [t for t, genes in present.items() if genes]
    for cell_type in scored:
        sc.tl.score_genes(adata, present[cell_type], score_name=f"score_{cell_type}", use_raw=True, random_state=0)
    means = adata.obs.groupby(groupby, observed=True)[[f"score_{t}" for t in scored]].mean()
    means.columns = scored
    ranking = adata.uns["rank_genes_groups"]
    if ranking["params"]["groupby"] != groupby:
        raise InputError(f"Marker genes were ranked for {ranking['params']['groupby']!r}, not {groupby!r}: rank again.")
    names = ranking["names"]
    rows, labels = [], {}
    for cluster, row in means.iterrows():
        order = row.sort_values(ascending=False)
        best, score = str(order.index[0]), float(order.iloc[0])
        cells = np.flatnonzero((adata.obs[groupby] == cluster).to_numpy())
        ranked = [str(names[i][cluster]) for i in range(len(names))]
        top = [g for g in ranked if not _HOUSEKEEPING.match(g)][:n_top]
        shares = {t: _expressed_share(adata, present[t], cells) for t in scored}
        detection = {t: _detection(shares[t], len(present[t])) for t in scored}
        in_top = [g for g in present[best] if g in top]
        others = np.setdiff1d(np.arange(adata.n_obs), cells)
        used = _top_markers(shares[best], len(present[best]))
        outside = float(np.mean(list(_expressed_share(adata, used, others).values()))) if len(others) and used else 0.0
        rivals = [t for t in order.index[1:] if order[t] >= mixed_ratio * score and detection[t] >= min_share]
        if score < min_score:
            label, why = "unassigned", f"best score {score:.2f} < {min_score}"
        elif detection[best] < min_share:
            label, why = f"ambiguous (best: {best})", f"markers in {detection[best]:.0%} of cells (< {min_share:.0%})"
        elif detection[best] - outside < min_gap:
            label, why = f"ambiguous (best: {best})", (f"markers in {detection[best]:.0%} inside, {outside:.0%} outside "
                                                       f"(gap < {min_gap:.0%})")
        elif not in_top:
            label, why = f"ambiguous (best: {best})", f"no canonical marker in its top {n_top}"
        elif rivals:
            label, why = f"mixed ({best} + {rivals[0]})", f"{rivals[0]} markers also in {detection[rivals[0]]:.0%}"
        else:
            label, why = best, "earned"
        labels[cluster] = label
        runner = str(order.index[1]) if len(order) > 1 else ""
        rows.append({"cluster": cluster, "cells": len(cells), "cell_type": label, "why": why,
                     "score": round(score, 2), "runner_up": f"{runner} {order.iloc[1]:.2f}" if runner else "",
                     "detected": round(detection[best], 2), "detected_outside": round(outside, 2),
                     "canonical_expressed": ", ".join(f"{g} {s:.0%}" for g, s in
                                                      sorted(shares[best].items(), key=lambda kv: -kv[1])),
                     "canonical_in_top": ", ".join(in_top), "top_markers": ", ".join(top[:8])})
    adata.obs["cell_type"] = adata.obs[groupby].map(labels).astype("category")
    return pd.DataFrame(rows).set_index("cluster")


def earned(table) -> list[str]:
    """The cell types in an :func:`annotate` table whose names were earned (not ambiguous, mixed or unassigned)."""
    return sorted({t for t, why in zip(table["cell_type"], table["why"]) if why == "earned"})


def subcluster(adata, clusters: Sequence[str], *, resolution: float = 0.5, groupby: str = "leiden", seed: int = 0):
    """Re-cluster only ``clusters`` (Leiden with ``restrict_to`` on the same neighbour graph) and re-rank markers.

    The sub-clusters are named ``"2,0"``, ``"2,1"``… in ``obs[groupby]``; the others keep their
    names. Markers are ranked again with scanpy's Wilcoxon test on the host (cheap at this size,
    whichever backend built the graph). Returns the new cluster sizes.
    """
    import scanpy as sc  # noqa: PLC0415

    clusters = [str(c) for c in clusters]
    unknown = sorted(set(clusters) - set(adata.obs[groupby].astype(str)))
    if unknown:
        raise InputError(f"No cluster {unknown} in obs[{groupby!r}]; clusters: {sorted(adata.obs[groupby].unique())}.")
    # a separate key: scanpy reads the restricted labels from obs while it writes the new ones
    leiden(adata, resolution=resolution, restrict_to=(groupby, clusters), key_added="_subclusters", seed=seed)
    adata.obs[groupby] = adata.obs.pop("_subclusters")
    sc.tl.rank_genes_groups(adata, groupby, method="wilcoxon", use_raw=True)
    return adata.obs[groupby].value_counts().sort_index()


def best_guess(name: str) -> str:
    """The cell type behind a label: ``"ambiguous (best: B cells)"`` → ``"B cells"``, ``"mixed (NK cells + T cells)"``
    → ``"NK cells"``; earned names are returned as they are."""
    found = re.match(r"^(?:ambiguous \(best: |mixed \()(.*?)(?: \+ .*)?\)$", str(name))
    return found.group(1) if found else str(name)


def marker_panel(adata, markers: Mapping[str, Sequence[str]] = MARKERS) -> dict[str, list[str]]:
    """Markers of the cell types named in ``obs["cell_type"]`` (ambiguous or mixed ones by their best guess), for dot plots."""
    found = {best_guess(t) for t in adata.obs["cell_type"]}
    genes = set(adata.raw.var_names)
    return {t: [g for g in markers[t] if g in genes] for t in markers if t in found and any(g in genes for g in markers[t])}


#: Lineage of each marker-set name and of each ``pbmc68k_reduced`` label, for comparing the two.
LINEAGE: dict[str, str] = {
    "T cells": "T", "NK cells": "NK", "B cells": "B", "Monocytes": "monocyte", "Macrophages": "macrophage",
    "Mature dendritic cells": "dendritic", "Platelets": "platelet",
    "CD14+ Monocyte": "monocyte", "CD19+ B": "B", "CD34+": "progenitor", "CD56+ NK": "NK", "Dendritic": "dendritic",
    "CD4+/CD25 T Reg": "T", "CD4+/CD45RA+/CD25- Naive T": "T", "CD4+/CD45RO+ Memory": "T", "CD8+ Cytotoxic T": "T",
    "CD8+/CD45RA+ Naive Cytotoxic": "T",
}


#: Lineages the reference is known to confuse (Zheng et al. 2017's bulk profiles correlate): shown beside the verdict.
KNOWN_CONFUSIONS: dict[str, str] = {
    "NK": "T (CD56+ NK and CD8+ cytotoxic T bulk profiles correlate: cytotoxic genes GNLY, NKG7, PRF1)",
    "T": "NK (CD8+ cytotoxic T cells share the NK cytotoxic programme)",
    "dendritic": "monocyte (34 % of the reference is 'Dendritic', many of them monocyte-like)",
    "monocyte": "dendritic (the reference's 'Dendritic' cells overlap its CD14+ monocytes)",
}


def reference_labels(adata, *, groupby: str = "leiden", C: float = 0.1, seed: int = 0):
    """Label transfer from ``pbmc68k_reduced`` and a per-cluster verdict against ``obs["cell_type"]``.

    The reference's ``bulk_labels`` are **not** FACS labels of its cells: Zheng et al. (2017) gave each
    cell the label of the FACS-sorted bulk profile it correlated with best (240 of 700 are "Dendritic",
    34 %, against 1–2 % in blood). A classifier trained on them is a second opinion with known
    confusions (:data:`KNOWN_CONFUSIONS`), not ground truth.

    Writes ``obs["reference_label"]`` per cell. Returns one row per cluster: its marker-based name,
    the majority reference label, the majority reference *lineage* and its share, ``agreement`` —
    the share of the cluster's cells whose reference lineage is the name's — and ``verdict``:
    ``agrees`` (the majority lineage is the name's), ``disagrees``, or ``not judged (…)`` where the
    name is not earned or its lineage is not in the reference (macrophages, platelets).
    """
    import pandas as pd  # noqa: PLC0415
    import scanpy as sc  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    ref = sc.datasets.pbmc68k_reduced()  # log-normalised raw matrix of 765 genes; bulk_labels: correlation-assigned
    shared = [g for g in ref.raw.var_names if g in adata.raw.var_names]
    if len(shared) < 200:
        raise InputError(f"Only {len(shared)} genes shared with the reference: are var_names gene symbols?")

    def dense(x):
        return x.toarray() if hasattr(x, "toarray") else np.asarray(x)

    x_ref = dense(ref.raw[:, shared].X)
    mean, sd = x_ref.mean(axis=0), x_ref.std(axis=0)
    sd[sd == 0] = 1.0

    def scaled(x):
        return np.clip((x - mean) / sd, -10, 10)

    model = LogisticRegression(max_iter=3000, C=C, random_state=seed)
    model.fit(scaled(x_ref), ref.obs["bulk_labels"].astype(str))
    predicted = pd.Series(model.predict(scaled(dense(adata.raw[:, shared].X))), index=adata.obs_names)
    adata.obs["reference_label"] = predicted.astype("category")
    reference_lineages = {LINEAGE[label] for label in model.classes_ if label in LINEAGE}
    return reference_table(adata, reference_lineages, groupby=groupby)


def reference_table(adata, reference_lineages: set[str], *, groupby: str = "leiden"):
    """The per-cluster verdicts of :func:`reference_labels` from ``obs["reference_label"]`` and ``obs["cell_type"]``
    (split out so a renamed cluster can be re-judged without refitting). ``ambiguous`` — not judged — when the
    name's lineage is one of the reference's top two and they lie within :data:`AMBIGUOUS_MARGIN` of each other."""
    import pandas as pd  # noqa: PLC0415

    lineage_of_ref = adata.obs["reference_label"].astype(str).map(LINEAGE).fillna("other")
    rows = []
    for cluster, members in adata.obs.groupby(groupby, observed=True):
        counts = members["reference_label"].value_counts()
        counts = counts[counts > 0]
        lineages = lineage_of_ref[members.index].value_counts()
        name = str(members["cell_type"].iloc[0]) if "cell_type" in members else ""
        lineage = LINEAGE.get(name)
        if lineage is None:
            verdict, agreement = f"not judged ({'name not earned' if name != best_guess(name) else 'no such lineage'})", np.nan
        elif lineage not in reference_lineages:
            verdict, agreement = f"not judged (no {lineage} in the reference)", np.nan
        else:
            agreement = float(lineages.get(lineage, 0) / len(members))
            shares = lineages / len(members)
            close = len(shares) > 1 and shares.iloc[0] - shares.iloc[1] < AMBIGUOUS_MARGIN
            if close and lineage in shares.index[:2]:  # the reference cannot tell its top two apart here
                verdict = (f"ambiguous ({shares.index[0]} {shares.iloc[0]:.0%} vs {shares.index[1]} "
                           f"{shares.iloc[1]:.0%})")
            else:
                verdict = "agrees" if lineages.index[0] == lineage else "disagrees"
        rows.append({"cluster": cluster, "cells": len(members), "cell_type": name,
                     "reference_label": counts.index[0], "share": round(counts.iloc[0] / len(members), 2),
                     "reference_lineage": lineages.index[0], "lineage_share": round(lineages.iloc[0] / len(members), 2),
                     "second": f"{counts.index[1]} ({counts.iloc[1] / len(members):.0%})" if len(counts) > 1 else "",
                     "agreement": agreement, "verdict": verdict,
                     "known_confusion": KNOWN_CONFUSIONS.get(lineage or "", "")})
    return pd.DataFrame(rows).set_index("cluster")


class ReferenceCheck(NamedTuple):
    """How many judged clusters agree with the reference, how many were judged, and which disagree."""

    agreeing: int
    judged: int
    disagreeing: list


def reference_check(table) -> ReferenceCheck:
    """``(agreeing, judged, disagreeing clusters)`` from a :func:`reference_labels` table: every judged cluster must
    agree for the names to pass (a renamed B cluster called "Monocytes" fails, pooled agreement or not)."""
    judged = table[table["verdict"].isin(["agrees", "disagrees"])]
    return ReferenceCheck(int((judged["verdict"] == "agrees").sum()), len(judged),
                          list(judged.index[judged["verdict"] == "disagrees"]))


def reference_agreement(table) -> float:
    """Cell-weighted lineage agreement over the clusters :func:`reference_labels` could judge (pooled: the big
    clusters dominate it — :func:`reference_check` judges each cluster)."""
    judged = table.dropna(subset=["agreement"])
    return float((judged["agreement"] * judged["cells"]).sum() / judged["cells"].sum()) if len(judged) else float("nan")


def naming_sensitivity(adata, markers: Mapping[str, Sequence[str]] = MARKERS, *, groupby: str = "leiden",
                       change: float = 0.2):
    """Each cluster's name with every threshold of :func:`annotate` moved by ±``change`` (one at a time), so a
    reader sees which names sit near a cut. Returns clusters × settings, plus ``stable`` (the same name
    everywhere). Leaves ``obs["cell_type"]`` as the default thresholds set it."""
    import pandas as pd  # noqa: PLC0415

    defaults = {"min_score": 0.3, "min_share": 0.5, "mixed_ratio": 0.75, "min_gap": 0.25}
    columns = {"default": annotate(adata, markers, groupby=groupby)["cell_type"].astype(str)}
    kept = adata.obs["cell_type"].copy()
    for key, value in defaults.items():
        for factor in (1 - change, 1 + change):
            options = defaults | {key: value * factor}
            columns[f"{key} {value * factor:.3g}"] = annotate(adata, markers, groupby=groupby, **options)["cell_type"].astype(str)
    adata.obs["cell_type"] = kept
    table = pd.DataFrame(columns)
    table["stable"] = table.nunique(axis=1) == 1
    return table


def resolution_sweep(adata, resolutions: Sequence[float], *, seeds: Sequence[int] = (0, 1, 2), rep: str = "X_pca",
                     silhouette_cells: int = 5_000):
    """Leiden at each resolution: clusters, mean silhouette on ``rep``, and stability — the mean ARI between runs
    with different seeds (1 = the same clustering every time). Needs the neighbour graph. The silhouette is
    computed on a fixed random sample of ``silhouette_cells`` cells (it costs cells² otherwise).

    The Leiden is :func:`~sparkbooks.singlecell.workflow.leiden` on the analysis' backend: the sweep describes
    the algorithm that then clusters at the chosen resolution."""
    import pandas as pd  # noqa: PLC0415
    from sklearn.metrics import adjusted_rand_score, silhouette_score  # noqa: PLC0415

    name = backend()  # the clustering's own: the same Leiden, the same setting (workflow.leiden_options)
    rows = []
    for resolution in resolutions:
        runs = []
        for seed in seeds:
            key = f"_sweep_{resolution}_{seed}"
            leiden(adata, resolution=resolution, seed=seed, key_added=key, use_backend=name)
            runs.append(adata.obs.pop(key).to_numpy())
        pairs = [adjusted_rand_score(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]]
        k = len(np.unique(runs[0]))
        rows.append({"resolution": resolution, "clusters": k,
                     "silhouette": float(silhouette_score(adata.obsm[rep], runs[0], random_state=seeds[0],
                                                          sample_size=min(silhouette_cells, adata.n_obs)))
                     if 1 < k < adata.n_obs else np.nan,
                     "stability_ari": float(np.mean(pairs)) if pairs else np.nan})
    return pd.DataFrame(rows).set_index("resolution")
