"""Differential expression with a known answer: donors, a condition, and genes that truly change.

Per-cell tests (scanpy's Wilcoxon) treat every cell as a replicate. Cells of one donor share that
donor's biology, so the test sees donor-to-donor differences as condition effects and its false
discovery rate inflates (Squair et al. 2021, *Nat. Commun.*). The remedy is the **pseudobulk**:
sum each donor's counts, then test donors against donors.

:func:`simulate_donors` draws one cell type's cells for ``n_donors`` donors per condition from a
negative-binomial fit of real cells (the type's mean profile and per-gene dispersion), with a
log-normal donor effect on every gene and ``n_de`` genes whose mean moves by ±``log2fc`` in the
second condition — the answer is ``var["is_de"]``. :func:`pseudobulk_de` sums counts per donor,
normalises to counts per million and runs a moderated t-test on log2(CPM + 1) per gene (limma's
empirical Bayes; PyDESeq2's negative-binomial GLM is the usual alternative, not installed here); :func:`wilcoxon_de` runs scanpy's per-cell Wilcoxon;
:func:`calibration` scores either against the truth at a Benjamini–Hochberg level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import InputError
from .simulation import _dispersion, _moments

__all__ = ["calibration", "pseudobulk", "pseudobulk_de", "simulate_donors", "wilcoxon_de"]


def simulate_donors(reference, groups: Sequence[Any], cell_type: str, *, n_donors: int = 6, cells_per_donor: int = 500,
                    n_genes: int = 3_000, n_de: int = 300, log2fc: float = 1.0, donor_sd: float = 0.2, seed: int = 0):
    """Cells of ``cell_type`` for ``n_donors`` donors in each of two conditions, ``n_de`` of ``n_genes`` truly changed.

    The ``n_genes`` most expressed genes of the type are kept (DE is tested where there are counts to
    test). Each donor multiplies every gene's mean by exp(N(0, ``donor_sd``)); in condition ``B`` the DE
    genes' means are multiplied by 2^(±``log2fc``), signs at random. Library sizes are drawn from the
    type's real cells. Writes ``obs["donor"]``, ``obs["condition"]`` (``A``/``B``) and ``var["is_de"]``.
    """
    import anndata as ad  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    groups = np.asarray(groups).astype(str)
    if cell_type not in set(groups):
        raise InputError(f"No cell type {cell_type!r} in the groups; types: {sorted(set(groups))}.")
    if not 0 < n_de < n_genes:
        raise InputError(f"n_de must be in (0, n_genes={n_genes}). Got {n_de} instead.")
    cells = np.flatnonzero(groups == cell_type)
    libsize, means, variances, _ = _moments(reference.X[cells], np.zeros(len(cells), dtype=int), 1)
    order = np.argsort(means[0])[::-1][: min(n_genes, means.shape[1])]
    mean, dispersion = means[0, order], _dispersion(means[0, order], variances[0, order])
    rng = np.random.default_rng(seed)
    n_genes = len(order)
    is_de = np.zeros(n_genes, dtype=bool)
    is_de[rng.choice(n_genes, size=n_de, replace=False)] = True
    fold = np.where(is_de, 2.0 ** (log2fc * rng.choice([-1.0, 1.0], size=n_genes)), 1.0)
    shape = 1.0 / dispersion
    blocks, donors, conditions = [], [], []
    for condition in ("A", "B"):
        for d in range(n_donors):
            donor_mean = mean * np.exp(rng.normal(0.0, donor_sd, size=n_genes)) * (fold if condition == "B" else 1.0)
            lib = rng.choice(libsize, size=cells_per_donor) / libsize.mean()
            lam = rng.gamma(shape, donor_mean[None, :] * lib[:, None] / shape)
            blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
            donors += [f"{condition}{d}"] * cells_per_donor
            conditions += [condition] * cells_per_donor
    obs = pd.DataFrame({"donor": pd.Categorical(donors), "condition": pd.Categorical(conditions)},
                       index=[f"cell_{i}" for i in range(len(donors))])
    var = pd.DataFrame({"is_de": is_de, "log2fc": np.log2(fold)}, index=reference.var_names[order])
    return ad.AnnData(sp.vstack(blocks).tocsr(), obs=obs, var=var)


def pseudobulk(adata, *, donor_key: str = "donor", condition_key: str = "condition"):
    """Summed raw counts per donor (donors × genes, a DataFrame) and each donor's condition."""
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    for key in (donor_key, condition_key):
        if key not in adata.obs:
            raise InputError(f"{key!r} is not a column of obs; columns: {list(adata.obs.columns)}.")
    donors = adata.obs[donor_key].astype(str).to_numpy()
    names, index = np.unique(donors, return_inverse=True)
    member = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(len(names), len(index)))
    sums = np.asarray((member @ sp.csr_matrix(adata.X)).todense())
    pairs = pd.DataFrame({"donor": donors, "condition": adata.obs[condition_key].astype(str).to_numpy()}).drop_duplicates()
    if pairs["donor"].duplicated().any():
        raise InputError("A donor appears in two conditions: pseudobulk needs each donor in one condition.")
    condition = pairs.set_index("donor")["condition"].reindex(names)
    return pd.DataFrame(sums, index=names, columns=adata.var_names), condition


def _squeeze(s2: np.ndarray, df: float) -> tuple[np.ndarray, float]:
    """limma's empirical-Bayes variance moderation (Smyth 2004, ``fitFDist`` by moments): each gene's variance is
    pulled toward a common prior s0² with d0 prior degrees of freedom. Returns (posterior variances, d0)."""
    from scipy import optimize, special  # noqa: PLC0415

    ok = s2 > 0
    e = np.log(s2[ok]) - special.digamma(df / 2) + np.log(df / 2)
    excess = np.var(e, ddof=1) - special.polygamma(1, df / 2)
    if excess <= 0:  # the variances agree more than chance allows: the prior dominates
        d0 = np.inf
        s0 = np.exp(np.mean(e))
        return np.full_like(s2, s0), d0
    # solve trigamma(d0 / 2) = excess for d0
    d0 = 2 * optimize.brentq(lambda x: special.polygamma(1, x) - excess, 1e-8, 1e8)
    s0 = np.exp(np.mean(e) + special.digamma(d0 / 2) - np.log(d0 / 2))
    return (d0 * s0 + df * s2) / (d0 + df), d0


def pseudobulk_de(adata, *, donor_key: str = "donor", condition_key: str = "condition", min_count: int = 10):
    """Donor pseudobulk test: summed counts → CPM → moderated t-test on log2(CPM + 1) (limma's empirical Bayes:
    pooled variance squeezed toward a prior fitted across genes), BH-adjusted.

    Genes with fewer than ``min_count`` summed counts over all donors are left out (``padj`` NaN, never
    called). Returns one row per gene: log2 fold change (second condition over first), p, padj.
    """
    import pandas as pd  # noqa: PLC0415
    from scipy import stats  # noqa: PLC0415

    sums, condition = pseudobulk(adata, donor_key=donor_key, condition_key=condition_key)
    levels = sorted(condition.unique())
    if len(levels) != 2 or condition.value_counts().min() < 2:
        raise InputError(f"Pseudobulk needs two conditions with ≥ 2 donors each; got {condition.value_counts().to_dict()}.")
    kept = sums.columns[sums.sum(axis=0) >= min_count]
    logcpm = np.log2(sums[kept].div(sums.sum(axis=1), axis=0) * 1e6 + 1)
    a, b = (logcpm[condition.to_numpy() == level].to_numpy() for level in levels)
    df = len(a) + len(b) - 2
    s2 = ((len(a) - 1) * a.var(axis=0, ddof=1) + (len(b) - 1) * b.var(axis=0, ddof=1)) / df
    posterior, d0 = _squeeze(s2, df)
    diff = b.mean(axis=0) - a.mean(axis=0)
    t = diff / np.sqrt(posterior * (1 / len(a) + 1 / len(b)))
    p = 2 * stats.t.sf(np.abs(t), min(df + d0, 1e6))
    table = pd.DataFrame({"log2fc": diff, "p": p}, index=kept)
    table["padj"] = stats.false_discovery_control(np.nan_to_num(table["p"].to_numpy(), nan=1.0))
    return table.reindex(sums.columns)


def wilcoxon_de(adata, *, condition_key: str = "condition"):
    """scanpy's per-cell Wilcoxon test between the two conditions on log-normalised counts, BH-adjusted."""
    import pandas as pd  # noqa: PLC0415
    import scanpy as sc  # noqa: PLC0415

    cells = adata.copy()
    sc.pp.normalize_total(cells, target_sum=1e4)
    sc.pp.log1p(cells)
    levels = sorted(cells.obs[condition_key].astype(str).unique())
    sc.tl.rank_genes_groups(cells, condition_key, groups=[levels[1]], reference=levels[0], method="wilcoxon",
                            corr_method="benjamini-hochberg", tie_correct=True)
    found = sc.get.rank_genes_groups_df(cells, group=levels[1]).set_index("names")
    return pd.DataFrame({"log2fc": found["logfoldchanges"], "p": found["pvals"], "padj": found["pvals_adj"]}).reindex(
        adata.var_names)


def calibration(table, truth, *, alpha: float = 0.05) -> dict[str, float]:
    """Empirical FDR (false calls / calls) and power (true calls / true DE genes) at BH level ``alpha``."""
    truth = np.asarray(truth, dtype=bool)
    called = np.nan_to_num(np.asarray(table["padj"], dtype=float), nan=1.0) < alpha
    calls = int(called.sum())
    false = int((called & ~truth).sum())
    return {"calls": calls, "false": false, "fdr": false / calls if calls else 0.0,
            "power": float((called & truth).sum() / max(truth.sum(), 1))}
