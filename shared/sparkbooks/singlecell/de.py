"""Differential expression with a known answer: donors, a condition, and genes that truly change.

Per-cell tests (scanpy's Wilcoxon) treat every cell as a replicate. Cells of one donor share that
donor's biology, so the test sees donor-to-donor differences as condition effects and its false
discovery rate inflates (Squair et al. 2021, *Nat. Commun.*). The field's remedy is the
**pseudobulk**: sum each donor's counts, then test donors against donors with a bulk RNA-seq model
— here PyDESeq2 (DESeq2's negative-binomial GLM, size factors, dispersion trend and shrinkage, Wald
test, Cook's distance and independent filtering); the single-cell best-practices book runs edgeR's quasi-likelihood
test on the same donor sums.

:func:`simulate_donors` draws one cell type's cells for ``n_donors`` donors per condition. Its truth
is *not* DESeq2's model: each cell is negative binomial around the type's real mean profile with the
type's own per-gene dispersion (fitted within the type's real cells); each donor multiplies every
gene's mean by a log-normal factor whose σ differs from gene to gene; donors differ in depth and in
how many cells they give (drawn log-uniformly, e.g. 50 to 1,000), so a donor's pseudobulk is a sum
of a varying number of over-dispersed cells — not one negative binomial with one dispersion per gene.
``n_de`` genes move by ±``log2fc`` in the second condition; the answer is ``var["is_de"]``.
:func:`pseudobulk` sums raw counts per donor (what decoupler's ``pp.pseudobulk`` does; decoupler
2.3 needs Python ≥ 3.12, so a sparse sum is used); :func:`pseudobulk_de` runs PyDESeq2 on it;
:func:`logcpm_t_de` is the trivial pseudobulk baseline (Student's t on log-CPM of the same sums) and
:func:`~sparkbooks.singlecell.moderated.voom_de` the field's log-scale standard (limma-voom, ported);
:func:`mock_null` splits one condition's donors in two (Squair et al.'s null comparison: every call is false);
:func:`power_at_fdr` scores a ranking at a matched empirical FDR, apart from where its threshold falls (on
:func:`fdr_tpr`'s curve, which :func:`plot_fdr_tpr` draws);
:func:`wilcoxon_de` runs scanpy's per-cell Wilcoxon; :func:`calibration` scores any of them against the
truth at a Benjamini–Hochberg level, with Wilson intervals over genes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import InputError
from .simulation import _dispersion, _moments

__all__ = ["calibration", "fdr_tpr", "logcpm_t_de", "mock_null", "plot_fdr_tpr", "power_at_fdr", "pseudobulk",
           "pseudobulk_de", "simulate_donors", "t_reference", "wilcoxon_de"]

#: PyDESeq2's results columns, in its order: the Wald test's statistic is log2FoldChange / lfcSE.
DESEQ_COLUMNS = ("baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj")


def _donor_sizes(cells_per_donor: int | Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """Cells per donor: a fixed count, or drawn log-uniformly in [low, high] (real donors give unequal numbers)."""
    if isinstance(cells_per_donor, (int, np.integer)):
        low = high = int(cells_per_donor)
    else:
        low, high = (int(x) for x in cells_per_donor)
    if not 1 <= low <= high:
        raise InputError("cells_per_donor must be an int ≥ 1 or [low, high] with 1 ≤ low ≤ high. "
                         f"Got {cells_per_donor!r} instead.")
    return np.rint(np.exp(rng.uniform(np.log(low), np.log(high), size=n))).astype(int)


def simulate_donors(reference, groups: Sequence[Any], cell_type: str, *, n_donors: int = 6,
                    cells_per_donor: int | Sequence[int] = (50, 1_000), n_genes: int = 3_000, n_de: int = 300,
                    log2fc: float = 1.0, donor_sd: float = 0.2, donor_sd_spread: float = 0.5,
                    depth_sd: float = 0.3, seed: int = 0):
    """Cells of ``cell_type`` for ``n_donors`` donors in each of two conditions, ``n_de`` of ``n_genes`` truly changed.

    The ``n_genes`` most expressed genes of the type are kept (DE is tested where there are counts to
    test); means and dispersions come from the type's real cells only. Gene g's donor effect is
    exp(N(0, σ_g)) with σ_g = ``donor_sd`` · exp(N(0, ``donor_sd_spread``)) (some genes vary between
    people far more than others); each donor's depth is scaled by exp(N(0, ``depth_sd``)); cell counts
    per donor follow ``cells_per_donor`` (an int, or [low, high] drawn log-uniformly). In condition
    ``B`` the DE genes' means are multiplied by 2^(±``log2fc``), signs at random. Writes
    ``obs["donor"]``, ``obs["condition"]`` (``A``/``B``), ``var["is_de"]``, ``var["log2fc"]`` and ``var["donor_sd"]`` (σ_g).
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
    gene_sd = donor_sd * np.exp(rng.normal(0.0, donor_sd_spread, size=n_genes))
    sizes = _donor_sizes(cells_per_donor, 2 * n_donors, rng)
    shape = 1.0 / dispersion
    blocks, donors, conditions = [], [], []
    for k, (condition, d) in enumerate((c, d) for c in ("A", "B") for d in range(n_donors)):
        donor_mean = mean * np.exp(rng.normal(0.0, gene_sd)) * (fold if condition == "B" else 1.0)
        depth = np.exp(rng.normal(0.0, depth_sd)) / libsize.mean()
        for start in range(0, sizes[k], 2_000):  # chunks bound the dense draw (2,000 × genes floats)
            lib = rng.choice(libsize, size=min(2_000, sizes[k] - start)) * depth
            lam = rng.gamma(shape, donor_mean[None, :] * lib[:, None] / shape)
            blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
        donors += [f"{condition}{d}"] * sizes[k]
        conditions += [condition] * sizes[k]
    obs = pd.DataFrame({"donor": pd.Categorical(donors), "condition": pd.Categorical(conditions)},
                       index=[f"cell_{i}" for i in range(len(donors))])
    var = pd.DataFrame({"is_de": is_de, "log2fc": np.log2(fold), "donor_sd": gene_sd}, index=reference.var_names[order])
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


def pseudobulk_de(adata, *, donor_key: str = "donor", condition_key: str = "condition", min_count: int = 10,
                  alpha: float = 0.05, n_cpus: int = 1):
    """Donor pseudobulk tested with PyDESeq2: ``~condition``, Wald test of the second condition over the first.

    Genes with fewer than ``min_count`` summed counts over all donors are left out (``padj`` NaN,
    never called); PyDESeq2's Cook's-distance and independent filtering (at ``alpha``) may set more
    ``padj`` to NaN, as DESeq2 does. ``n_cpus`` = 1 by default: on a small machine joblib's worker
    start-up costs more than 12 samples' fits. Returns PyDESeq2's ``results_df`` (columns
    :data:`DESEQ_COLUMNS`), one row per gene of ``adata``.
    """
    import pandas as pd  # noqa: PLC0415
    from pydeseq2.dds import DeseqDataSet  # noqa: PLC0415
    from pydeseq2.default_inference import DefaultInference  # noqa: PLC0415
    from pydeseq2.ds import DeseqStats  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    sums, condition = pseudobulk(adata, donor_key=donor_key, condition_key=condition_key)
    levels = sorted(condition.unique())
    if len(levels) != 2 or condition.value_counts().min() < 2:
        raise InputError(f"Pseudobulk needs two conditions with ≥ 2 donors each; got {condition.value_counts().to_dict()}.")
    kept = sums.columns[sums.sum(axis=0) >= min_count]
    counts = sums[kept].round().astype(np.int64)
    counts.index = counts.index.astype(str)
    metadata = pd.DataFrame({"condition": condition.to_numpy()}, index=counts.index)
    inference = DefaultInference(n_cpus=n_cpus)
    # one BLAS/OpenMP thread: PyDESeq2 runs thousands of 1-parameter L-BFGS fits, and on a small machine
    # the pools' threads contend for every one of them (measured 5-10x slower unpinned on 2 loaded cores)
    with threadpool_limits(1), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", UserWarning)
        dds = DeseqDataSet(counts=counts, metadata=metadata, design="~condition", refit_cooks=True,
                           inference=inference, quiet=True)
        dds.deseq2()
        test = DeseqStats(dds, contrast=["condition", levels[1], levels[0]], alpha=alpha, inference=inference,
                          quiet=True)
        test.summary()
    table = test.results_df.loc[:, list(DESEQ_COLUMNS)].reindex(sums.columns)
    # DESeq2's parametric trend a0 + a1/μ has no 1/μ part when every pseudobulk is deep (a1 → 0): PyDESeq2
    # then falls back to the mean dispersion, as R's DESeq2 falls back to a local fit. Say which ran.
    fallback = any("dispersion trend curve fitting did not converge" in str(w.message) for w in said)
    for w in said:
        if "dispersion trend curve fitting did not converge" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    table.attrs["trend"] = "mean (parametric fit did not converge)" if fallback else "parametric"
    return table


def t_reference(table, *, df: int):
    """PyDESeq2's Wald statistics referred to Student's t with ``df`` degrees of freedom instead of the normal — R
    DESeq2's ``nbinomWaldTest(useT=TRUE)``, whose default ``df`` is samples − coefficients — BH-adjusted over the
    genes PyDESeq2's independent filtering kept (R re-runs the filter on the new p-values: a small difference)."""
    from scipy.stats import false_discovery_control, t  # noqa: PLC0415

    if df < 1:
        raise InputError(f"df must be ≥ 1 (samples − coefficients). Got {df!r} instead.")
    out = table.copy()
    kept = out["padj"].notna().to_numpy()
    out["pvalue"] = 2 * t.sf(np.abs(out["stat"].to_numpy()), df)
    padj = np.full(len(out), np.nan)
    padj[kept] = false_discovery_control(out["pvalue"].to_numpy()[kept]) if kept.any() else []
    out["padj"] = padj
    return out


def mock_null(adata, *, condition: str = "A", condition_key: str = "condition", donor_key: str = "donor",
              seed: int = 0):
    """The donors of one ``condition`` split at random into two halves relabelled ``A``/``B``: a comparison with no
    true difference, where every call is false (Squair et al. 2021's mock comparisons)."""
    donors = np.unique(adata.obs.loc[adata.obs[condition_key].astype(str) == condition, donor_key].astype(str))
    if len(donors) < 4:
        raise InputError(f"A mock comparison needs ≥ 4 donors in {condition!r} (two per half); got {len(donors)}.")
    half = set(np.random.default_rng(seed).permutation(donors)[: len(donors) // 2])
    mock = adata[adata.obs[condition_key].astype(str) == condition].copy()
    mock.obs[condition_key] = ["B" if d in half else "A" for d in mock.obs[donor_key].astype(str)]
    return mock


def fdr_tpr(pvalues, truth):
    """iCOBRA's FDR–TPR curve: along the ranking by ``pvalues`` (NaN never called), each list length's calls, empirical
    FDR and true-positive rate (share of the true genes found)."""
    import pandas as pd  # noqa: PLC0415

    p, truth = np.asarray(pvalues, dtype=float), np.asarray(truth, dtype=bool)
    order = np.argsort(np.nan_to_num(p, nan=np.inf), kind="stable")
    ranked = truth[order][~np.isnan(p[order])]
    hits, calls = np.cumsum(ranked), np.arange(1, len(ranked) + 1)
    return pd.DataFrame({"calls": calls, "fdr": 1 - hits / calls, "tpr": hits / max(int(truth.sum()), 1)})


def power_at_fdr(pvalues, truth, *, level: float = 0.05) -> float:
    """The share of true genes in the longest list, ranked by ``pvalues`` (NaN last), whose empirical FDR is ≤ ``level``:
    a ranking's power at a matched false discovery rate (iCOBRA's TPR at an observed FDR), whatever threshold it sets."""
    curve = fdr_tpr(pvalues, truth)
    within = curve["fdr"].to_numpy() <= level
    return float(curve["tpr"].to_numpy()[within][-1]) if within.any() else 0.0


def plot_fdr_tpr(table, *, methods: Sequence[str], labels: dict[str, str] | None = None, level: float = 0.05):
    """One panel: each method's FDR–TPR curve per simulation (thin lines; ``table`` rows with ``method``, ``_p``,
    ``_truth``, ``fdr``, ``power``), and each method's BH operating points (dots) — a dot right of the ``level`` line
    is a threshold that promises more than it keeps."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, method in enumerate(methods):
        rows, colour = table[table["method"] == method], f"C{k}"
        for _, row in rows.iterrows():
            curve = fdr_tpr(row["_p"], row["_truth"])
            ax.plot(curve["fdr"], curve["tpr"], c=colour, lw=0.8, alpha=0.6)
        ax.scatter(rows["fdr"], rows["power"], c=colour, s=25, zorder=3, label=(labels or {}).get(method, method))
    ax.axvline(level, ls="--", c="#5b5b5b", lw=1)
    ax.set(xlim=(0, 0.3), ylim=(0, 1), xlabel="empirical FDR", ylabel="true-positive rate",
           title=f"Ranking and threshold: curves per simulation, dots at BH {level:g}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def logcpm_t_de(adata, *, donor_key: str = "donor", condition_key: str = "condition", min_count: int = 10,
                prior_count: float = 1.0):
    """The trivial pseudobulk test PyDESeq2 has to beat: Student's t per gene on log2(CPM + ``prior_count``) of the
    same donor sums, Benjamini–Hochberg-adjusted; the same ``min_count`` filter as :func:`pseudobulk_de`. No
    shrinkage, no count model: what a practitioner without a bulk package would run first."""
    import pandas as pd  # noqa: PLC0415
    from scipy.stats import false_discovery_control, ttest_ind  # noqa: PLC0415

    sums, condition = pseudobulk(adata, donor_key=donor_key, condition_key=condition_key)
    levels = sorted(condition.unique())
    if len(levels) != 2 or condition.value_counts().min() < 2:
        raise InputError(f"The t-test needs two conditions with ≥ 2 donors each; got {condition.value_counts().to_dict()}.")
    kept = sums.columns[sums.sum(axis=0) >= min_count]
    logcpm = np.log2(sums[kept].to_numpy() / sums.to_numpy().sum(axis=1, keepdims=True) * 1e6 + prior_count)
    second = (condition == levels[1]).to_numpy()
    test = ttest_ind(logcpm[second], logcpm[~second], axis=0)
    table = pd.DataFrame({"log2fc": logcpm[second].mean(axis=0) - logcpm[~second].mean(axis=0), "p": test.pvalue,
                          "padj": false_discovery_control(np.nan_to_num(test.pvalue, nan=1.0))}, index=kept)
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
    """Empirical FDR (false calls / calls) and power (true calls / true DE genes) at BH level ``alpha``.

    ``fdr_low``/``fdr_high`` and ``power_low``/``power_high`` are Wilson 95 % intervals with the gene
    as the unit (calls for the FDR, truly changed genes for the power): genes are drawn independently
    given the donors, so they carry the gene-level noise, not the donor-level one (seeds do that).
    """
    from ..intervals import wilson  # noqa: PLC0415

    truth = np.asarray(truth, dtype=bool)
    called = np.nan_to_num(np.asarray(table["padj"], dtype=float), nan=1.0) < alpha
    calls, false, hits = int(called.sum()), int((called & ~truth).sum()), int((called & truth).sum())
    fdr, power = wilson(false, calls), wilson(hits, int(truth.sum()))
    return {"calls": calls, "false": false, "fdr": false / calls if calls else 0.0, "fdr_low": fdr.low,
            "fdr_high": fdr.high, "power": hits / max(int(truth.sum()), 1), "power_low": power.low,
            "power_high": power.high}
