"""The single-cell workflow: names that must be earned, regress-out off, QC and doublets that work, integration
tested where centring fails, and the integration metrics checked on cases with a known answer."""

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from sparkbooks import singlecell
from sparkbooks.accel import probe_gpu
from sparkbooks.exceptions import InputError, SourceError

LYMPHOID = {"T cells", "NK cells", "B cells"}


@pytest.fixture(scope="module")
def sample():
    return singlecell.load_sample()


@pytest.fixture(scope="module")
def analysed(sample):
    """The sample at resolution 0.6, annotated, its mixed cluster re-clustered and annotated again."""
    result = singlecell.analyse(sample.copy(), resolution=0.6, seed=0)
    first = singlecell.annotate(result.adata)
    mixed = [c for c, name in first["cell_type"].items() if name.startswith("mixed")]
    singlecell.subcluster(result.adata, mixed, resolution=0.5, seed=0)
    return result, first, singlecell.annotate(result.adata)


def test_sample_is_raw_integer_counts(sample):
    assert sample.shape == (559, 32_786)
    values = sample.X.data
    assert np.array_equal(values, np.rint(values)) and values.min() > 0


def test_non_count_input_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"GENE1": [0.5, 1.25]}, index=["c1", "c2"]).to_csv(path)
    monkeypatch.setattr(singlecell.inputs, "fetch", lambda name: path)
    with pytest.raises(SourceError, match="not raw counts"):
        singlecell.load_sample()


def test_regress_out_is_opt_in():
    assert inspect.signature(singlecell.analyse).parameters["regress_out"].default is False


def test_every_step_is_timed_and_qc_keeps_most_cells(analysed):
    result = analysed[0]
    assert 500 <= result.counts["cells_after_qc"] <= 559
    assert {"qc_metrics", "filter", "hvg", "pca", "neighbors", "umap", "leiden", "markers"} <= set(result.seconds)
    assert result.backends["markers"] == "scanpy Wilcoxon (CPU)"
    assert result.timings().loc["total", "seconds"] > 0


def test_a_cluster_holding_two_types_is_called_mixed_then_split_into_earned_names(analysed):
    _, first, final = analysed
    assert "mixed (NK cells + T cells)" in set(first["cell_type"])
    # after re-clustering only that cluster, every name is earned and the lymphocytes have their own clusters
    assert (final["why"] == "earned").all(), final
    assert {"T cells", "NK cells", "B cells", "Monocytes", "Macrophages", "Mature dendritic cells"} == set(final["cell_type"])
    nk = final[final["cell_type"] == "NK cells"].iloc[0]
    assert nk["detected"] >= 0.5 and {"GNLY", "NKG7", "KLRD1"} <= set(nk["canonical_in_top"].split(", "))


def test_names_are_refused_when_the_markers_are_not_expressed(analysed):
    """Silence the NK markers in 70% of the NK cluster's cells: the name must go, whatever the score says."""
    import anndata as ad

    cells = analysed[0].adata.copy()
    nk = np.flatnonzero((cells.obs["cell_type"] == "NK cells").to_numpy())
    silenced = np.random.default_rng(0).choice(nk, size=int(0.7 * len(nk)), replace=False)
    raw = cells.raw.to_adata()
    matrix = sp.lil_matrix(raw.X)
    for gene in singlecell.MARKERS["NK cells"]:
        if gene in raw.var_names:
            matrix[silenced, raw.var_names.get_loc(gene)] = 0
    raw.X = sp.csr_matrix(matrix)
    cells.raw = ad.AnnData(raw.X, obs=cells.obs[[]], var=raw.var)
    table = singlecell.annotate(cells)
    row = table.loc[table["cell_type"].str.contains("NK")].iloc[0]
    assert row["cell_type"] == "ambiguous (best: NK cells)" and "markers in" in row["why"], row


def test_housekeeping_genes_never_make_the_marker_lists(analysed):
    for markers in analysed[2]["top_markers"]:
        assert not any(g.startswith(("RPL", "RPS", "MT-")) for g in markers.split(", ")), markers


def test_regress_out_puts_myeloid_cells_into_lymphoid_clusters(sample, analysed):
    """The reviewer's finding, kept as a test: with depth regressed out, myeloid cells join lymphoid clusters."""
    cells = analysed[0].adata
    regressed = singlecell.analyse(sample.copy(), resolution=0.6, regress_out=True, seed=0).adata
    names = singlecell.annotate(regressed)
    common = regressed.obs_names.intersection(cells.obs_names)
    lymphoid_cluster = regressed.obs.loc[common, "cell_type"].map(singlecell.best_guess).isin(LYMPHOID)
    myeloid = ~cells.obs.loc[common, "cell_type"].astype(str).isin(LYMPHOID)
    assert (lymphoid_cluster & myeloid).sum() >= 20
    assert (names["why"] != "earned").sum() >= 1
    # APOE (macrophages) in lymphoid-named clusters: rare without regress-out, common with it
    def apoe_share(adata, in_lymphoid):
        apoe = np.asarray(adata.raw[:, "APOE"].X.toarray()).ravel() > 0
        return apoe[np.asarray(in_lymphoid)].mean()

    lymphoid_default = cells.obs["cell_type"].astype(str).isin(LYMPHOID)
    lymphoid_regressed = regressed.obs["cell_type"].map(singlecell.best_guess).isin(LYMPHOID)
    assert apoe_share(cells, lymphoid_default) < 0.1 < 0.25 < apoe_share(regressed, lymphoid_regressed)


def test_reference_transfer_agrees_by_lineage_and_leaves_macrophages_unjudged(analysed):
    cells = analysed[0].adata
    table = singlecell.reference_labels(cells, seed=0)
    assert table.loc[table["cell_type"] == "Macrophages", "agreement"].isna().all()
    assert singlecell.reference_agreement(table) >= 0.7
    assert set(cells.obs["reference_label"].cat.categories) <= set(singlecell.LINEAGE)


def test_best_guess_reads_every_label_form():
    assert singlecell.best_guess("ambiguous (best: B cells)") == "B cells"
    assert singlecell.best_guess("mixed (NK cells + T cells)") == "NK cells"
    assert singlecell.best_guess("Monocytes") == "Monocytes"


def test_subcluster_refuses_unknown_clusters(analysed):
    with pytest.raises(InputError, match="No cluster"):
        singlecell.subcluster(analysed[0].adata.copy(), ["99"])


def test_qc_limits_fixed_and_mad_by_hand():
    obs = pd.DataFrame({"n_genes_by_counts": [100, 1000, 1100, 1200, 900, 50_000],
                        "pct_counts_mt": [1.0, 2.0, 3.0, 2.5, 2.0, 40.0]})
    fixed = singlecell.qc_thresholds(obs, max_genes=5000, max_pct_mt=20)
    assert fixed.passes(obs).tolist() == [False, True, True, True, True, False]
    mad = singlecell.qc_thresholds(obs, method="mad", n_mads=3, mt_mads=3)
    logs = np.log1p(obs["n_genes_by_counts"])
    centre, spread = np.median(logs), np.median(np.abs(logs - np.median(logs)))
    assert mad.max_genes == pytest.approx(np.expm1(centre + 3 * spread))
    assert mad.passes(obs).tolist() == [False, True, True, True, True, False]
    with pytest.raises(InputError, match="'fixed' or 'mad'"):
        singlecell.qc_thresholds(obs, method="iqr")


def test_scrublet_scores_artificial_doublets_above_real_cells(sample, analysed):
    """Sum 30 pairs of a macrophage and a lymphocyte: Scrublet must rank them above the real cells.

    At ~550 cells its automatic threshold (from the simulated-doublet histogram) sits above most of
    them — measured 0.21 against a median artificial-doublet score of 0.12 — so the ranking, not the
    call, is what this size can test; the notebook says so.
    """
    import anndata as ad
    from sklearn.metrics import roc_auc_score

    cells = analysed[0].adata
    raw = sample[cells.obs_names]
    macro = np.flatnonzero((cells.obs["cell_type"] == "Macrophages").to_numpy())
    lymph = np.flatnonzero(cells.obs["cell_type"].astype(str).isin(LYMPHOID).to_numpy())
    rng = np.random.default_rng(0)
    pairs = rng.choice(macro, 30, replace=False), rng.choice(lymph, 30, replace=False)
    doublets = ad.AnnData(sp.csr_matrix(raw.X[pairs[0]] + raw.X[pairs[1]]), var=raw.var.copy(),
                          obs=pd.DataFrame(index=[f"doublet_{i}" for i in range(30)]))
    result = singlecell.analyse(ad.concat([raw, doublets]), doublets=True, max_genes=100_000, seed=0)
    kept = result.adata.obs
    artificial = kept.index.str.startswith("doublet_")
    removed_artificial = 30 - artificial.sum()
    assert removed_artificial >= result.counts["doublets"] - 2  # what it removes is (almost all) artificial
    if artificial.sum() >= 5:
        assert roc_auc_score(artificial, kept["doublet_score"]) > 0.85
    assert "doublets" in result.seconds


def test_resolution_sweep_reports_size_separation_and_stability(analysed):
    sweep = singlecell.resolution_sweep(analysed[0].adata.copy(), [0.2, 1.6], seeds=(0, 1))
    assert list(sweep.columns) == ["clusters", "silhouette", "stability_ari"]
    assert sweep.loc[0.2, "clusters"] < sweep.loc[1.6, "clusters"]
    assert 0 <= sweep["stability_ari"].min() <= 1


def test_lisi_is_two_when_mixed_and_one_when_separate():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 5))
    mixed = np.tile(["a", "b"], 200)
    assert np.median(singlecell.lisi(points, mixed)) == pytest.approx(2.0, abs=0.15)
    apart = np.vstack([points[:200], points[200:] + 50])
    assert np.median(singlecell.lisi(apart, np.repeat(["a", "b"], 200))) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InputError, match="one label per cell"):
        singlecell.lisi(points, mixed[:10])


def test_batch_asw_and_centring_on_a_pure_shift():
    rng = np.random.default_rng(1)
    types = np.repeat(["x", "y"], 200)
    points = rng.normal(size=(400, 4)) + (types == "y")[:, None] * 8
    batches = np.tile(["b0", "b1"], 200)
    shifted = points + (batches == "b1")[:, None] * 5
    assert singlecell.silhouette_batch(shifted, batches, types) < 0.5
    assert singlecell.silhouette_batch(singlecell.centre_batches(shifted, batches), batches, types) > 0.9


@pytest.fixture(scope="module")
def simulation_source(sample, analysed):
    cells = analysed[0].adata
    return sample[cells.obs_names, cells.raw.var_names], cells.obs["cell_type"].astype(str).to_numpy()


def test_simulation_is_deterministic_and_honours_absent_groups(simulation_source):
    reference, types = simulation_source
    a = singlecell.simulate(reference, types, n_cells=300, n_batches=2, seed=3, absent={"B cells": [1]})
    b = singlecell.simulate(reference, types, n_cells=300, n_batches=2, seed=3, absent={"B cells": [1]})
    assert (a.X != b.X).nnz == 0
    assert not ((a.obs["sim_group"] == "B cells") & (a.obs["batch"] == "batch1")).any()
    with pytest.raises(InputError, match="every batch"):
        singlecell.simulate(reference, types, n_cells=10, n_batches=2, absent={"B cells": [0, 1]})
    with pytest.raises(InputError, match="batch_effect"):
        singlecell.simulate(reference, types, n_cells=10, batch_effect="random")


def test_harmony_beats_centring_where_each_type_shifts_its_own_way(simulation_source):
    """The hard case: type-specific batch effects and types missing from one batch. Centring cannot fix it;
    Harmony must, on the simulation's own labels."""
    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=2000, n_batches=2, batch_effect="celltype",
                              batch_strength=0.5, absent={"B cells": [1], "NK cells": [0]}, seed=0)
    sim = singlecell.analyse(sim, resolution=0.6, seed=0).adata
    table = singlecell.integration.benchmark(sim, resolution=0.6, seed=0).table
    assert table.loc["centred", "iLISI"] < 1.2 and table.loc["none", "iLISI"] < 1.2
    assert table.loc["harmony", "iLISI"] > 1.5
    assert table.loc["harmony", "ARI_truth"] > 0.9 > table.loc["centred", "ARI_truth"] + 0.1
    assert abs(table.loc["harmony", "ARI_batch"]) < 0.05


def test_centring_is_enough_for_a_global_shift(simulation_source):
    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=1500, n_batches=2, batch_effect="global", seed=0)
    sim = singlecell.analyse(sim, resolution=0.6, seed=0).adata
    run = singlecell.integration.benchmark(sim, resolution=0.6, seed=0)
    table, clusters = run.table, run.clusters
    assert table.loc["centred", "ARI_truth"] > 0.9 and table.loc["centred", "iLISI"] > 1.4
    assert adjusted_rand_score(sim.obs["sim_group"], clusters["none"]) < table.loc["centred", "ARI_truth"]


@pytest.mark.skipif(probe_gpu().ok, reason="a working GPU selects rapids-singlecell when installed")
def test_backend_is_scanpy_without_a_gpu():
    assert singlecell.backend() == "scanpy"


def test_more_than_4096_cells_take_the_approximate_neighbour_path(simulation_source):
    # scanpy switches to pynndescent above 4,096 cells; pynndescent 0.7 broke that path (pinned < 0.6)
    reference, types = simulation_source
    sim = singlecell.simulate(reference[:, :3000], types, n_cells=5000, seed=1)
    result = singlecell.analyse(sim, n_top_genes=500, seed=0)
    assert result.adata.obsp["connectivities"].shape == (result.adata.n_obs,) * 2


def test_simulation_widens_to_null_genes_that_carry_no_cell_type(simulation_source):
    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=3000, n_genes=reference.n_vars + 2000, seed=2)
    null = sim.var_names.str.startswith("NULL-")
    assert sim.n_vars == reference.n_vars + 2000 and null.sum() == 2000
    assert list(sim.var_names[~null]) == list(reference.var_names)
    counts = sim.X.toarray()
    share = counts[:, null].sum() / counts.sum()
    assert 0.005 < share < 0.15, share  # lowly expressed: a few per cent of the UMIs
    # the same mean in every group (depth-normalised): group means of null genes agree within sampling noise,
    # while the real genes differ by type
    norm = counts / counts.sum(axis=1, keepdims=True) * 1e4
    groups = sim.obs["sim_group"].to_numpy()
    big = [g for g in np.unique(groups) if (groups == g).sum() >= 400][:2]
    a, b = (norm[groups == g].mean(axis=0) for g in big)
    null_gap = np.abs(np.log1p(a[null].sum()) - np.log1p(b[null].sum()))
    real_gap = np.abs(np.log1p(a[~null]) - np.log1p(b[~null])).max()
    assert null_gap < 0.1 < real_gap
    with pytest.raises(InputError, match="null genes"):
        singlecell.simulate(reference, types, n_cells=10, n_genes=100)


def test_nvidias_step_list_runs_every_step_with_its_parameters(simulation_source):
    """NVIDIA's notebook, step for step, on 1,500 simulated cells in 3 batches: the steps timed in their order,
    the notebook's parameters (5,000 HVG, 100 PCs, neighbours on 40 PCs), both views, and Harmony mixing batches."""
    from sparkbooks.singlecell import official

    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=1500, n_batches=3, n_genes=reference.n_vars + 500, seed=4)
    run = official.run(sim, batch_key="batch", label_key="sim_group", fast=True, seed=0)  # fewer epochs: a quicker test
    cells = run.adata
    expected = [s for s in official.NVIDIA_SECONDS if s != "neighbors_harmony"]
    assert [s for s in run.seconds if s in expected] == expected
    assert {"umap_harmony", "louvain_harmony", "leiden_harmony"} <= set(run.seconds)
    assert all(v > 0 for v in run.seconds.values()) and run.total_s == pytest.approx(sum(run.seconds.values()))
    assert run.backends["tsne"].startswith("openTSNE") and run.backends["louvain"].startswith("igraph")
    # Louvain at the notebook's 0.6, not scanpy's igraph default of 1: a lower resolution, fewer communities
    official.louvain(cells, "harmony", key_added="louvain_fine", resolution=2.0, seed=0)
    assert cells.obs["louvain_harmony"].nunique() < cells.obs["louvain_fine"].nunique()
    official.louvain(cells, "harmony", key_added="louvain_again", resolution=0.6, seed=0)
    assert (cells.obs["louvain_again"] == cells.obs["louvain_harmony"]).all()  # seeded
    assert cells.n_vars == 5000 and cells.raw.n_vars > 5000  # the HVGs, and raw kept before subsetting
    assert cells.obsm["X_pca"].shape[1] == 100
    assert cells.uns["harmony"]["params"]["n_pcs"] == 40
    for key in ("X_umap", "X_umap_harmony", "X_tsne", "X_diffmap"):
        assert np.isfinite(cells.obsm[key]).all(), key
    assert cells.uns["rank_genes_groups"]["params"]["method"] == "logreg"
    assert not np.allclose(cells.obsm["X_umap"], cells.obsm["X_umap_harmony"])
    groups, batches = cells.obs["sim_group"], cells.obs["batch"]
    assert adjusted_rand_score(groups, cells.obs["leiden_harmony"]) > 0.5
    assert abs(adjusted_rand_score(batches, cells.obs["leiden_harmony"])) < 0.05
    table = run.table()
    assert list(table.index[-1:]) == ["total"] and all(v > 0 for v in run.peak_mb.values())
    # like for like: the ratio only at NVIDIA's post-QC size, Leiden to convergence with its count, logreg's cap
    assert table["ratio"].isna().all() and cells.n_obs != official.NVIDIA_CELLS
    assert 1 <= run.iterations["leiden"] <= official.LEIDEN_MAX_ITERATIONS and run.iterations["leiden_harmony"] >= 1
    # iterations counted, not only capped: lbfgs's own count, and Leiden's (the old fixed count was 2)
    assert run.iterations["logreg_markers"].endswith(("converged", "not converged"))
    assert 2 < int(run.iterations["logreg_markers"].split()[0]) <= 1000, run.iterations
    assert run.iterations["leiden"] >= 2 and run.iterations["leiden_harmony"] >= 2  # the last one found no gain
    assert run.non_embedding_s == pytest.approx(run.total_s - sum(run.seconds[s] for s in official.EMBEDDINGS))
    assert table.loc["pca", "comparable"] == "shape-bound" and table.loc["leiden", "comparable"] == "data-dependent"


def test_nvidias_step_list_refuses_missing_keys_and_one_batch(simulation_source):
    from sparkbooks.singlecell import official

    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=50, seed=0)
    with pytest.raises(InputError, match="'assay' is not a column"):
        official.run(sim.copy(), batch_key="assay", label_key="sim_group")
    with pytest.raises(InputError, match="at least 2 batches"):
        official.run(sim.copy(), batch_key="batch", label_key="sim_group")


def test_regress_out_and_pca_without_copies_match_scanpy():
    """official.regress_out / official.pca avoid scanpy's whole-matrix copies; the numbers must be scanpy's."""
    import scanpy as sc

    from sparkbooks.singlecell import official

    rng = np.random.default_rng(0)
    profiles = rng.gamma(0.5, 2.0, size=(6, 300))  # six cell types: a spectrum with distinct leading components
    counts = sp.csr_matrix(rng.poisson(profiles[rng.integers(0, 6, 20_000)]).astype(np.float32))
    a = pd.DataFrame({"total_counts": np.asarray(counts.sum(axis=1)).ravel(), "pct_counts_MT": rng.uniform(0, 20, 20_000)},
                     index=[f"c{i}" for i in range(20_000)])
    import anndata as ad

    ours, theirs = ad.AnnData(counts.copy(), obs=a.copy()), ad.AnnData(counts.copy(), obs=a.copy())
    official.regress_out(ours, ["total_counts", "pct_counts_MT"])
    sc.pp.regress_out(theirs, keys=["total_counts", "pct_counts_MT"])
    assert ours.X.dtype == np.float32 and np.allclose(ours.X, theirs.X, atol=1e-4)
    sc.pp.scale(ours, max_value=10)
    sc.pp.scale(theirs, max_value=10)
    scaled = ours.X.copy()
    official.pca(ours, 30, seed=0)
    sc.pp.pca(theirs, n_comps=30, svd_solver="randomized", random_state=0)
    assert np.allclose(ours.X, scaled, atol=1e-5)  # the means went back
    lead = np.abs(theirs.obsm["X_pca"][:, :5])  # the structured components; the rest is noise of equal variance
    assert np.abs(np.abs(ours.obsm["X_pca"][:, :5]) - lead).max() < 1e-3 * lead.max()
    assert np.allclose(ours.uns["pca"]["variance_ratio"], theirs.uns["pca"]["variance_ratio"], rtol=1e-4)
    with pytest.raises(InputError, match="dense float32"):
        official.pca(ad.AnnData(counts), 5)


# --- issue 43: a reference check that can fail, scib-metrics' own definitions, raw counts, DE with a known answer ---


def _renamed(cells, old: str, new: str):
    renamed = cells.copy()
    renamed.obs["cell_type"] = renamed.obs["cell_type"].astype(str).replace({old: new}).astype("category")
    return renamed


def test_reference_check_judges_every_cluster_and_fails_a_renamed_one(analysed):
    """The pooled agreement passes with B renamed "Monocytes" (≈ 0.73); the per-cluster check must not."""
    cells = analysed[0].adata.copy()
    table = singlecell.reference_labels(cells, seed=0)
    agreeing, judged, disagreeing = singlecell.reference_check(table)
    assert agreeing == judged >= 4 and not disagreeing, table
    assert table.loc[table["cell_type"] == "Macrophages", "verdict"].str.startswith("not judged").all()
    assert {"verdict", "reference_lineage", "known_confusion"} <= set(table.columns)
    lineages = {singlecell.LINEAGE[x] for x in cells.obs["reference_label"].cat.categories}
    renamed = singlecell.reference_table(_renamed(cells, "B cells", "Monocytes"), lineages)
    agreeing, judged, disagreeing = singlecell.reference_check(renamed)
    assert agreeing < judged, renamed
    assert table.index[table["cell_type"] == "B cells"][0] in disagreeing
    # NK renamed "T cells": the reference's NK and T shares in that cluster are too close to judge either name
    renamed = singlecell.reference_table(_renamed(cells, "NK cells", "T cells"), lineages)
    cluster = table.index[table["cell_type"] == "NK cells"][0]
    assert renamed.loc[cluster, "verdict"].startswith(("ambiguous", "disagrees")), renamed
    # the reference is described as what it is: correlation-assigned bulk labels, not FACS labels of its cells
    doc = singlecell.reference_labels.__doc__
    assert "not** FACS labels" in doc and "correlated" in doc


def test_names_need_more_detection_inside_than_outside(analysed):
    """Express the NK markers in every cell: detected inside but just as often outside, the name must go."""
    import anndata as ad

    cells = analysed[0].adata.copy()
    table = singlecell.annotate(cells)
    assert (table["detected"] - table["detected_outside"] >= 0.25).all(), table
    raw = cells.raw.to_adata()
    matrix = sp.lil_matrix(raw.X)
    for gene in ("GNLY", "NKG7", "CST7", "KLRD1", "PRF1"):
        column = raw.var_names.get_loc(gene)
        matrix[:, column] = np.maximum(matrix[:, column].toarray(), 1.0)
    cells.raw = ad.AnnData(sp.csr_matrix(matrix), obs=cells.obs[[]], var=raw.var)
    table = singlecell.annotate(cells)
    nk = table.loc[table["cell_type"].str.contains("NK")]
    assert nk["cell_type"].str.startswith("ambiguous").all() and nk["why"].str.contains("outside").all(), nk


def test_naming_sensitivity_moves_each_threshold_by_a_fifth(analysed):
    cells = analysed[0].adata.copy()
    before = cells.obs["cell_type"].copy()
    table = singlecell.naming_sensitivity(cells)
    assert (cells.obs["cell_type"] == before).all()
    assert {"min_share 0.4", "min_share 0.6", "mixed_ratio 0.6", "mixed_ratio 0.9", "min_gap 0.2", "min_gap 0.3"} <= set(table)
    assert table.loc[table["default"] == "Macrophages", "stable"].all()
    assert not table.loc[table["default"] == "B cells", "stable"].all()  # B's runner-up sits near the mixed cut


# Direct ports of scib-metrics' code (YosefLab/scib-metrics: utils/_lisi.py, metrics/_graph_connectivity.py,
# metrics/_isolated_labels.py, utils/_silhouette.py), per cell as written there, in numpy.

def _scib_hbeta(d, beta):
    P = np.exp(-d * beta)
    sumP = np.nansum(P)
    H = 0 if sumP == 0 else np.log(sumP) + beta * np.nansum(d * P) / sumP
    return H, (np.zeros_like(d) if sumP == 0 else P / sumP)


def _scib_neighbor_probability(d, perplexity, tol=1e-5):
    beta, betamin, betamax = 1.0, -np.inf, np.inf
    H, P = _scib_hbeta(d, beta)
    Hdiff = H - np.log(perplexity)
    tries = 0
    while abs(Hdiff) > tol and tries < 50:
        if Hdiff > 0:
            betamin, beta = beta, (beta * 2 if betamax == np.inf else (beta + betamax) / 2)
        else:
            betamax, beta = beta, (beta / 2 if betamin == -np.inf else (beta + betamin) / 2)
        H, P = _scib_hbeta(d, beta)
        Hdiff = H - np.log(perplexity)
        tries += 1
    return H, P


def _scib_lisi(distances, indices, labels, perplexity):
    codes = np.unique(labels, return_inverse=True)[1]
    out = np.empty(len(distances))
    for i in range(len(distances)):
        H, P = _scib_neighbor_probability(distances[i], perplexity)
        sumP = P @ np.eye(codes.max() + 1)[codes[indices[i]]]
        out[i] = 1 / (-1 if H == 0 else sumP @ sumP)
    return out


def _scib_silhouette(X, labels, metric="euclidean", between="nearest"):
    from sklearn.metrics import pairwise_distances

    D = pairwise_distances(X, metric=metric)
    s = np.zeros(len(X))
    for i in range(len(X)):
        same = labels == labels[i]
        same[i] = False
        a = D[i, same].mean()
        others = [D[i, labels == lab].mean() for lab in np.unique(labels) if lab != labels[i]]
        b = D[i, labels != labels[i]].mean() if between == "mean_other" else min(others)
        s[i] = (b - a) / max(a, b)
    return s


def _scib_batch_silhouette(X, labels, batch, metric, between):
    means = []
    for group in np.unique(labels):
        inside = labels == group
        n = len(np.unique(batch[inside]))
        if n == 1 or n == inside.sum():
            continue
        means.append(np.mean(1 - np.abs(_scib_silhouette(X[inside], batch[inside], metric, between))))
    return np.mean(means)


@pytest.fixture(scope="module")
def scib_case():
    rng = np.random.default_rng(7)
    labels = np.repeat(["a", "b", "c", "d"], [150, 120, 60, 70])
    batch = np.where(rng.random(400) < 0.5, "b0", "b1")
    batch[labels == "d"] = "b0"  # an isolated label
    centres = rng.normal(scale=4, size=(4, 6))
    X = centres[np.unique(labels, return_inverse=True)[1]] + rng.normal(size=(400, 6)) + (batch == "b1")[:, None] * 1.5
    return X, labels, batch


def test_lisi_matches_scib_metrics_kernel_on_distances(scib_case):
    from sparkbooks.singlecell.integration import _neighbours

    X, labels, batch = scib_case
    distances, indices = _neighbours(X, 90)
    for lab in (labels, batch):
        ours = singlecell.lisi(X, lab)
        assert np.allclose(ours, _scib_lisi(distances, indices, lab, 30.0), rtol=1e-3)


def test_bras_asw_connectivity_and_isolated_labels_match_scib_metrics(scib_case):
    from scipy.sparse.csgraph import connected_components

    from sparkbooks.singlecell import integration

    X, labels, batch = scib_case
    assert singlecell.bras(X, batch, labels) == pytest.approx(
        _scib_batch_silhouette(X, labels, batch, "cosine", "mean_other"), rel=1e-3)
    assert singlecell.silhouette_batch(X, batch, labels) == pytest.approx(
        _scib_batch_silhouette(X, labels, batch, "euclidean", "nearest"), rel=1e-3)
    graph = integration.knn_graph(X, k=15)
    shares = []
    for lab in np.unique(labels):
        mask = labels == lab
        comps = connected_components(graph[mask][:, mask], connection="strong")[1]
        shares.append(pd.Series(comps).value_counts().max() / mask.sum())
    assert singlecell.graph_connectivity(graph, labels) == pytest.approx(np.mean(shares), rel=1e-3)
    from sklearn.metrics import silhouette_samples

    rescaled = (silhouette_samples(X, labels) + 1) / 2
    assert singlecell.isolated_labels(X, labels, batch) == pytest.approx(rescaled[labels == "d"].mean(), rel=1e-3)
    # BRAS and batch ASW are different numbers on the same embedding: the definitions matter
    assert abs(singlecell.bras(X, batch, labels) - singlecell.silhouette_batch(X, batch, labels)) > 1e-3


def test_h5ad_without_raw_counts_is_refused_and_counts_are_found(tmp_path):
    import anndata as ad

    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(1.0, size=(50, 30)).astype(np.float32))
    logged = counts.copy()
    logged.data = np.log1p(logged.data / 3.7)
    var = pd.DataFrame(index=[f"G{i}" for i in range(30)])
    ad.AnnData(logged, var=var).write_h5ad(tmp_path / "normalised.h5ad")
    with pytest.raises(SourceError, match="no raw counts"):
        singlecell.load_h5ad(tmp_path / "normalised.h5ad")
    layered = ad.AnnData(logged, var=var, layers={"counts": counts})
    layered.write_h5ad(tmp_path / "layered.h5ad")
    found = singlecell.load_h5ad(tmp_path / "layered.h5ad")
    assert (found.X != counts).nnz == 0
    ad.AnnData(counts, var=var).write_h5ad(tmp_path / "counts.h5ad")
    assert (singlecell.load_h5ad(tmp_path / "counts.h5ad").X != counts).nnz == 0


def test_simulating_from_a_large_sparse_reference_stays_small():
    """20k cells × 20k genes, sparse: the old code densified it (3.2 GB in float64, twice); peak must stay < 1 GB."""
    import tracemalloc

    import anndata as ad

    rng = np.random.default_rng(0)
    n = 20_000
    per_cell = 200  # 1 % of the genes detected per cell (built directly: scipy.sparse.random takes minutes here)
    matrix = sp.csr_matrix((rng.integers(1, 5, n * per_cell).astype(np.float32), rng.integers(0, n, n * per_cell),
                            np.arange(0, n * per_cell + 1, per_cell)), shape=(n, n))
    reference = ad.AnnData(matrix, var=pd.DataFrame(index=[f"G{i}" for i in range(n)]))
    groups = rng.integers(0, 4, n).astype(str)
    tracemalloc.start()
    sim = singlecell.simulate(reference, groups, n_cells=1_000, n_batches=2, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sim.shape == (1_000, n) and peak < 1e9, peak / 1e6


def test_batch_effect_is_the_same_whatever_the_number_of_cells(simulation_source):
    """Batch factors are drawn before anything that depends on n_cells: two sizes of one seed share them."""
    reference, types = simulation_source

    def log_batch_ratio(n):
        sim = singlecell.simulate(reference, types, n_cells=n, n_batches=2, batch_strength=1.0, seed=5)
        x = sim.X.toarray()
        x = x / x.sum(axis=1, keepdims=True) * 1e4
        b = sim.obs["batch"].to_numpy()
        return np.log1p(x[b == "batch1"].mean(axis=0)) - np.log1p(x[b == "batch0"].mean(axis=0))

    mean = np.asarray(reference.X.mean(axis=0)).ravel()
    top = np.argsort(mean)[::-1][:300]
    small, large = log_batch_ratio(800)[top], log_batch_ratio(1_600)[top]
    assert np.corrcoef(small, large)[0, 1] > 0.8


def test_resolution_sweep_scores_silhouette_on_a_fixed_sample(analysed, monkeypatch):
    import sklearn.metrics

    seen = []
    real = sklearn.metrics.silhouette_score

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sklearn.metrics, "silhouette_score", spy)
    singlecell.resolution_sweep(analysed[0].adata.copy(), [0.6], seeds=(0,), silhouette_cells=100)
    assert seen and seen[0]["sample_size"] == 100 and seen[0]["random_state"] == 0


def test_pseudobulk_is_calibrated_where_per_cell_wilcoxon_is_not(simulation_source):
    from sparkbooks.singlecell import de

    reference, types = simulation_source
    donors = de.simulate_donors(reference, types, "T cells", cells_per_donor=(50, 300), n_genes=600, n_de=90, seed=0)
    assert donors.var["is_de"].sum() == 90
    truth = donors.var["is_de"].to_numpy()
    pseudo = de.calibration(de.pseudobulk_de(donors), truth)
    wilcoxon = de.calibration(de.wilcoxon_de(donors), truth)
    assert pseudo["fdr"] <= 0.15 and pseudo["power"] >= 0.5, pseudo
    assert wilcoxon["fdr"] > 0.3 > pseudo["fdr"], wilcoxon
    assert pseudo["fdr_low"] <= pseudo["fdr"] <= pseudo["fdr_high"]  # Wilson over the calls
    with pytest.raises(InputError, match="two conditions"):
        de.pseudobulk_de(donors[donors.obs["condition"] == "A"].copy())


def test_pseudobulk_de_is_pydeseq2s_wald_test(simulation_source):
    """The DE was a hand-made t-test on log-CPM; it must be PyDESeq2's negative-binomial Wald test on donor sums."""
    from scipy import stats

    from sparkbooks.singlecell import de

    reference, types = simulation_source
    donors = de.simulate_donors(reference, types, "T cells", cells_per_donor=40, n_genes=400, n_de=40, seed=1)
    table = de.pseudobulk_de(donors)
    assert list(table.columns) == list(de.DESEQ_COLUMNS) and table.index.equals(donors.var_names)
    tested = table.dropna(subset=["stat"])
    assert len(tested) > 300 and table.attrs["trend"] in ("parametric", "mean (parametric fit did not converge)")
    np.testing.assert_allclose(tested["stat"], tested["log2FoldChange"] / tested["lfcSE"], rtol=1e-6)  # Wald
    np.testing.assert_allclose(tested["pvalue"], 2 * stats.norm.sf(tested["stat"].abs()), rtol=1e-6)
    called = tested[(tested["padj"] < 0.05) & donors.var.loc[tested.index, "is_de"]]  # direction: B over A
    assert len(called) >= 10
    assert (np.sign(called["log2FoldChange"]) == np.sign(donors.var.loc[called.index, "log2fc"])).all()


def test_the_logcpm_t_baseline_is_students_t_on_the_same_donor_sums(simulation_source):
    """The trivial pseudobulk baseline beside PyDESeq2 (review 43: it was not shown): Student's t on log2(CPM + 1) of the
    same sums, BH-adjusted, the same low-count filter, and calibrated where the per-cell Wilcoxon is not."""
    from scipy import stats

    from sparkbooks.singlecell import de

    reference, types = simulation_source
    donors = de.simulate_donors(reference, types, "T cells", cells_per_donor=(50, 300), n_genes=600, n_de=90, seed=0)
    table = de.logcpm_t_de(donors)
    assert table.index.equals(donors.var_names)
    sums, condition = de.pseudobulk(donors)
    gene = sums.columns[sums.sum() >= 10][0]
    logcpm = np.log2(sums[gene] / sums.sum(axis=1) * 1e6 + 1)
    expected = stats.ttest_ind(logcpm[condition == "B"], logcpm[condition == "A"]).pvalue
    assert table.loc[gene, "p"] == pytest.approx(expected, rel=1e-9)
    assert table.loc[sums.columns[sums.sum() < 10], "padj"].isna().all()
    found = de.calibration(table, donors.var["is_de"].to_numpy())
    assert found["fdr"] <= 0.15 and found["calls"] > 20, found
    with pytest.raises(InputError, match="two conditions"):
        de.logcpm_t_de(donors[donors.obs["condition"] == "A"].copy())


def test_the_t_reference_is_deseq2s_use_t_on_the_same_statistics(simulation_source):
    """DESeq2's useT remedy for a liberal Wald test at few donors, measured beside it: the same Wald statistics, p from
    Student's t with samples − coefficients degrees of freedom, BH over the genes independent filtering kept."""
    from scipy import stats

    from sparkbooks.singlecell import de

    reference, types = simulation_source
    donors = de.simulate_donors(reference, types, "T cells", cells_per_donor=40, n_genes=400, n_de=40, seed=1)
    wald = de.pseudobulk_de(donors)
    table = de.t_reference(wald, df=10)
    kept = wald["padj"].notna()
    assert table["padj"].notna().equals(kept)
    np.testing.assert_allclose(table.loc[kept, "pvalue"], 2 * stats.t.sf(wald.loc[kept, "stat"].abs(), 10))
    assert (table.loc[kept, "pvalue"] >= wald.loc[kept, "pvalue"]).all()  # heavier tails: never more significant
    assert ((table["padj"] < 0.05).sum() <= (wald["padj"] < 0.05).sum())
    with pytest.raises(InputError, match="df"):
        de.t_reference(wald, df=0)


def test_squeezed_variances_recover_the_prior_they_were_drawn_from():
    """limma's fitFDist, ported: gene variances σ² ~ s₀²·d₀/χ²(d₀) and sample variances s² ~ σ²·χ²(d)/d — the fit
    finds d₀ and s₀²; a spread no larger than sampling gives d₀ = ∞ and the mean variance (limma ≥ 3.46)."""
    from sparkbooks.singlecell import moderated

    rng = np.random.default_rng(0)
    sigma2 = 0.3 * 8 / rng.chisquare(8, size=200_000)
    s2 = sigma2 * rng.chisquare(10, size=200_000) / 10
    fit = moderated.squeeze_variances(s2, 10)
    assert fit.prior_df == pytest.approx(8, rel=0.06) and fit.prior_var == pytest.approx(0.3, rel=0.02), fit
    assert np.all((fit.posterior - s2) * (fit.prior_var - s2) >= 0)  # each moved toward the prior
    flat = 0.3 * rng.chisquare(4, size=3_000) / 4
    if moderated.squeeze_variances(flat, 4).prior_df == np.inf:  # sampling alone: limma's d₀ = ∞ branch
        assert moderated.squeeze_variances(flat, 4).prior_var == pytest.approx(flat.mean(), rel=1e-9)
    tight = np.full(100, 0.3) * np.exp(rng.normal(0, 1e-3, 100))  # far less spread than χ²(4) sampling
    assert moderated.squeeze_variances(tight, 4).prior_df == np.inf
    assert moderated.squeeze_variances(tight, 4).prior_var == pytest.approx(tight.mean(), rel=1e-12)


def test_voom_weights_follow_the_mean_variance_trend_and_the_fit_is_weighted():
    """voom, ported: low-count observations get lower precision weights; with equal weights the fit is the plain
    two-group one (its unscaled SD √(1/nA + 1/nB)); the weighted difference of means is the coefficient."""
    from sparkbooks.singlecell import moderated

    rng = np.random.default_rng(1)
    means = np.exp(rng.uniform(0, 8, size=2_000))
    lib = np.exp(rng.uniform(np.log(0.3), np.log(6), size=12))  # donors' depths 20-fold apart
    counts = rng.negative_binomial(5, 5 / (5 + means[None, :] * lib[:, None])).astype(float)
    second = np.arange(12) >= 6
    w = moderated.voom_weights(counts, second)
    assert w.shape == counts.shape and np.all(w > 0)
    low, high = means < np.quantile(means, 0.2), means > np.quantile(means, 0.8)
    assert np.median(w[:, low]) < np.median(w[:, high])
    deep, shallow = lib.argmax(), lib.argmin()
    assert np.median(w[deep]) > np.median(w[shallow])  # the deeper library's counts are more precise


def test_power_at_fdr_scores_the_ranking_not_the_threshold():
    from sparkbooks.singlecell import de

    truth = np.array([1, 1, 0, 1, 0, 0, 0, 1], dtype=bool)
    p = np.array([0.001, 0.002, 0.003, 0.004, 0.5, 0.6, 0.7, np.nan])
    assert de.power_at_fdr(p, truth, level=0.0) == 0.5  # the top two, before the first false call
    assert de.power_at_fdr(p, truth, level=0.25) == 0.75  # 3 true of 4 called; the NaN gene is never called
    assert de.power_at_fdr(p * 10, truth, level=0.25) == 0.75  # a monotone change of p moves no rank
    curve = de.fdr_tpr(p, truth)
    assert curve["calls"].tolist() == list(range(1, 8))  # the NaN gene never called
    np.testing.assert_allclose(curve["fdr"], [0, 0, 1 / 3, 1 / 4, 2 / 5, 3 / 6, 4 / 7])
    np.testing.assert_allclose(curve["tpr"], [0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75])


def test_limma_voom_and_a_mock_null_on_simulated_donors(simulation_source):
    """The field's log-scale test beside PyDESeq2: calibrated on donors with a known answer, and a mock comparison
    (one condition's donors split in two) where every call is false and the per-cell Wilcoxon still calls."""
    from sparkbooks.singlecell import de

    reference, types = simulation_source
    donors = de.simulate_donors(reference, types, "T cells", cells_per_donor=(50, 300), n_genes=600, n_de=90, seed=0)
    from sparkbooks.singlecell import moderated

    table = moderated.voom_de(donors)
    assert table.index.equals(donors.var_names) and 0 < table.attrs["prior_df"] and table.attrs["weights"] == "voom"
    found = de.calibration(table, donors.var["is_de"].to_numpy())
    assert found["fdr"] <= 0.15 and found["power"] >= 0.4, found
    mock = de.mock_null(donors, seed=1)
    assert mock.obs["condition"].nunique() == 2 and mock.obs["donor"].nunique() == 6
    assert set(mock.obs.groupby("donor", observed=True)["condition"].nunique()) == {1}
    assert (moderated.voom_de(mock)["padj"] < 0.05).sum() <= 3
    assert (de.wilcoxon_de(mock)["padj"] < 0.05).sum() > 10  # cells as replicates: donor differences read as effects
    with pytest.raises(InputError, match="≥ 4 donors"):
        de.mock_null(donors[donors.obs["donor"].isin(["A0", "A1", "B0"])].copy())


def test_simulated_donors_carry_the_truth_they_claim(simulation_source):
    """Unequal donors within the range, the type's own mean profile, and fold changes only where is_de says."""
    from sparkbooks.singlecell import de

    reference, types = simulation_source
    donors = de.simulate_donors(reference, types, "T cells", cells_per_donor=(50, 1_000), n_genes=500, n_de=50,
                                donor_sd=0.05, donor_sd_spread=0.0, seed=2)
    sizes = donors.obs["donor"].value_counts()
    assert len(sizes) == 12 and sizes.between(50, 1_000).all() and sizes.max() > 3 * sizes.min()
    sums, condition = de.pseudobulk(donors)
    cpm = sums.div(sums.sum(axis=1), axis=0)
    lfc = np.log2(cpm[condition == "B"].mean() / cpm[condition == "A"].mean())
    deep = (sums.sum() > 2_000).to_numpy()
    truth = donors.var["log2fc"].to_numpy()
    assert np.abs(lfc[deep & (truth == 0)]).median() < 0.15
    assert np.corrcoef(lfc[deep & (truth != 0)], truth[deep & (truth != 0)])[0, 1] > 0.9
    real = np.asarray(reference.X[types == "T cells"][:, [reference.var_names.get_loc(g) for g in donors.var_names]].sum(axis=0)).ravel()
    assert np.corrcoef(np.log1p(real), np.log1p(sums[condition == "A"].sum().to_numpy()))[0, 1] > 0.9  # T cells' profile
    with pytest.raises(InputError, match="cells_per_donor"):
        de.simulate_donors(reference, types, "T cells", cells_per_donor=(500, 50))


def test_nvidias_size_is_counted_after_qc(simulation_source):
    from sparkbooks.singlecell import official

    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=600, n_batches=2, seed=0)
    cut = official.passing_qc(sim, 400)
    genes = np.diff(cut.X.indptr)
    mt = np.asarray(cut[:, cut.var_names.str.upper().str.startswith("MT")].X.sum(axis=1)).ravel()
    passes = (genes < 5000) & (100 * mt / np.asarray(cut.X.sum(axis=1)).ravel() < 20)
    assert passes.sum() == 400 and passes[-1]
    with pytest.raises(InputError, match="simulate about"):
        official.passing_qc(sim, 10_000)


def test_benchmark_clusters_each_embedding_on_its_own_graph(simulation_source):
    """The hard case's none and centred rows once showed the same ARI (0.634): distinct clusterings, the same
    types split by batch. Each embedding's clusters must come from its own graph."""
    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=1200, n_batches=2, batch_effect="celltype",
                              absent={"B cells": [1], "NK cells": [0]}, seed=0)
    sim = singlecell.analyse(sim, resolution=0.6, seed=0).adata
    run = singlecell.integration.benchmark(sim, resolution=0.6, seed=0, resolutions=(0.6,))
    for name in ("none", "centred", "harmony"):
        again = sim.copy()
        singlecell.workflow.leiden(again, resolution=0.6, seed=0, neighbors_key=name, key_added="again")
        assert adjusted_rand_score(again.obs["again"], run.clusters[name]) == pytest.approx(1.0)
    assert (sim.obsp["none_connectivities"] != sim.obsp["centred_connectivities"]).nnz > 0
    assert {"BRAS", "graph_conn", "isolated_labels", "NMI_best", "ARI_best"} <= set(run.table.columns)


def test_reference_calls_a_cluster_split_between_two_lineages_ambiguous():
    """26 cells the reference calls NK and 26 it calls T: it cannot judge an "NK cells" name there (review of #43)."""
    import anndata as ad

    obs = pd.DataFrame({"leiden": ["0"] * 52 + ["1"] * 40,
                        "cell_type": ["NK cells"] * 52 + ["B cells"] * 40,
                        "reference_label": ["CD56+ NK"] * 26 + ["CD8+ Cytotoxic T"] * 26 + ["CD19+ B"] * 40},
                       index=[f"c{i}" for i in range(92)]).astype("category")
    table = singlecell.reference_table(ad.AnnData(obs=obs), {"NK", "T", "B"})
    assert table.loc["0", "verdict"].startswith("ambiguous"), table
    assert table.loc["1", "verdict"] == "agrees"
    assert singlecell.reference_check(table)[:2] == (1, 1)  # ambiguous clusters are not judged


def test_h5ad_with_ensembl_ids_loads_symbols_or_is_refused(tmp_path):
    """CELLxGENE names genes by Ensembl ID with symbols in var["feature_name"]: with IDs the MT- filter and the
    markers match nothing, silently (review of #43)."""
    import anndata as ad

    counts = sp.csr_matrix(np.random.default_rng(0).poisson(1.0, size=(20, 3)).astype(np.float32))
    ids = ["ENSG00000198804", "ENSG00000105374", "ENSG00000115523"]
    var = pd.DataFrame({"feature_name": ["MT-CO1", "NKG7", "GNLY"]}, index=ids)
    ad.AnnData(counts, var=var).write_h5ad(tmp_path / "census.h5ad")
    loaded = singlecell.load_h5ad(tmp_path / "census.h5ad")
    assert list(loaded.var_names) == ["MT-CO1", "NKG7", "GNLY"] and list(loaded.var["gene_id"]) == ids
    ad.AnnData(counts, var=pd.DataFrame(index=ids)).write_h5ad(tmp_path / "ids.h5ad")
    with pytest.raises(SourceError, match="Ensembl"):
        singlecell.load_h5ad(tmp_path / "ids.h5ad")


def test_sparse_sampler_draws_the_same_negative_binomial(simulation_source):
    """The sparse sampler (cost ∝ non-zeros, for NVIDIA's 265k × 28k) must draw gamma–Poisson's distribution:
    per-gene means, zero fractions and depth agree within sampling noise on the same fit."""
    reference, types = simulation_source
    kw = dict(n_cells=3000, n_batches=2, n_genes=reference.n_vars + 3000, seed=5)
    slow = singlecell.simulate(reference, types, **kw).X.tocsc()
    fast = singlecell.simulate(reference, types, sampler="sparse", **kw).X.tocsc()
    assert fast.has_sorted_indices or fast.tocsr().has_sorted_indices
    m_slow, m_fast = np.asarray(slow.mean(axis=0)).ravel(), np.asarray(fast.mean(axis=0)).ravel()
    z_slow, z_fast = np.diff(slow.indptr) / 3000, np.diff(fast.indptr) / 3000
    expressed = m_slow > 0.5
    assert np.median(np.abs(m_fast[expressed] / m_slow[expressed] - 1)) < 0.05
    assert np.abs(z_fast - z_slow).max() < 0.06 and abs(z_fast.mean() / z_slow.mean() - 1) < 0.01
    assert abs(fast.sum() / slow.sum() - 1) < 0.03
    with pytest.raises(InputError, match="sampler"):
        singlecell.simulate(reference, types, n_cells=10, sampler="fast")


def test_official_table_gives_a_ratio_only_at_nvidias_post_qc_size():
    import anndata as ad
    from sparkbooks.singlecell import official

    seconds = {"pca": 21.0, "umap": 60.0, "leiden": 5.0, "tsne": 100.0}
    for n, filled in ((official.NVIDIA_CELLS, True), (official.NVIDIA_CELLS - 1, False), (177_178, False)):
        run = official.OfficialRun(ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)])), dict(seconds))
        table = run.table()
        assert table["ratio"].drop("total").notna().all() == filled and table["ratio"].isna().all() != filled
        if filled:
            assert table.loc["pca", "ratio"] == pytest.approx(21.0 / official.NVIDIA_SECONDS["pca"], abs=0.05)
        assert run.non_embedding_s == 26.0  # UMAP and t-SNE only draw pictures
        assert table.loc["leiden", "comparable"] == "data-dependent" and table.loc["pca", "comparable"] == "shape-bound"


def test_benchmark_simulates_exactly_the_asked_cells_after_qc(tmp_path, load_benchmark):
    """benchmarks/single_cell_scaling.py counts its sizes after NVIDIA's QC, as NVIDIA's 216,382 is (it once
    simulated 216,382 before QC and analysed 177,178)."""
    import anndata as ad

    bench = load_benchmark("single_cell_scaling")
    cells = ad.read_h5ad(bench.simulated(300, tmp_path, n_genes=0))
    genes = np.diff(cells.X.indptr)
    mt = np.asarray(cells[:, cells.var_names.str.upper().str.startswith("MT")].X.sum(axis=1)).ravel()
    passes = (genes < 5000) & (100 * mt / np.asarray(cells.X.sum(axis=1)).ravel() < 20)
    assert passes.sum() == 300 and passes[-1] and cells.n_obs > 300


def test_related_subtypes_in_different_batches_are_merged_by_harmony(simulation_source):
    """Three T and two NK subtypes share their lineage's markers and differ by a gene programme; T cells/1 is seen in
    batch 0 only and T cells/2 in batch 1 only. Without correction they stay apart; Harmony, aligning batches,
    merges them — the known over-correction, which cLISI over all cells hides and subtype purity shows."""
    reference, types = simulation_source
    options = dict(n_cells=2000, n_batches=2, batch_effect="celltype", seed=0, subtypes={"T cells": 3, "NK cells": 2},
                   programme_fold=3.0, programme_genes=60, weights={"T cells": 6, "NK cells": 3},
                   absent={"T cells/1": [1], "T cells/2": [0]})
    sim = singlecell.simulate(reference, types, **options)
    assert {"T cells/1", "T cells/2", "T cells/3", "NK cells/1", "NK cells/2"} <= set(sim.obs["sim_group"])
    assert set(sim.obs["sim_lineage"]) == set(types)
    assert not ((sim.obs["sim_group"] == "T cells/1") & (sim.obs["batch"] == "batch1")).any()
    plain = singlecell.simulate(reference, types, n_cells=300, n_batches=2, seed=3)
    assert "sim_lineage" not in plain.obs  # without subtypes nothing changes
    sim = singlecell.analyse(sim, resolution=0.6, seed=0).adata
    table = singlecell.integration.benchmark(sim, resolution=0.6, seed=0).table
    pair = ["T cells/1", "T cells/2"]
    purity = {name: singlecell.subtype_purity(sim.obsm[f"X_{name}"], sim.obs["sim_group"], pair)
              for name in ("none", "harmony")}
    assert purity["none"] > 0.85 and purity["harmony"] < purity["none"] - 0.1, purity
    assert table.loc["harmony", "iLISI"] > 1.5 and table["cLISI_scaled"].min() < 1.0, table
    with pytest.raises(InputError, match="not in the data"):
        singlecell.simulate(reference, types, n_cells=10, subtypes={"ILC": 2})


def _type_means(sim, key: str = "sim_group") -> dict[str, np.ndarray]:
    """log1p of each simulated group's mean depth-normalised profile."""
    x = sim.X.toarray()
    x = x / x.sum(axis=1, keepdims=True) * 1e4
    labels = sim.obs[key].astype(str).to_numpy()
    return {g: np.log1p(x[labels == g].mean(axis=0)) for g in np.unique(labels)}


def test_hierarchical_subtypes_are_closer_to_their_siblings_than_to_their_cousins(simulation_source):
    """[2, 2] → two sub-lineages of two subtypes, each level its own programme: siblings share their sub-lineage's
    programme, so they sit closer to each other than to a cousin; names, sub-lineage and lineage are labelled."""
    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=4000, seed=1, subtypes={"T cells": [2, 2]}, programme_genes=100,
                              programme_fold=5.0, weights={"T cells": 10})
    groups = set(sim.obs["sim_group"].astype(str))
    assert {"T cells/1.1", "T cells/1.2", "T cells/2.1", "T cells/2.2"} <= groups and "T cells" not in groups
    t = sim.obs["sim_group"].astype(str).str.startswith("T cells/")
    assert set(sim.obs.loc[t, "sim_sublineage"].astype(str)) == {"T cells/1", "T cells/2"}
    assert set(sim.obs.loc[t, "sim_lineage"].astype(str)) == {"T cells"}
    m = _type_means(sim)
    sibling = np.linalg.norm(m["T cells/1.1"] - m["T cells/1.2"]) + np.linalg.norm(m["T cells/2.1"] - m["T cells/2.2"])
    cousin = np.linalg.norm(m["T cells/1.1"] - m["T cells/2.1"]) + np.linalg.norm(m["T cells/1.2"] - m["T cells/2.2"])
    assert sibling < 0.85 * cousin, (sibling, cousin)
    with pytest.raises(InputError, match="count"):
        singlecell.simulate(reference, types, n_cells=10, subtypes={"T cells": [2, 0]})
    with pytest.raises(InputError, match="too few genes"):
        singlecell.simulate(reference, types, n_cells=10, subtypes={"T cells": [50, 50]})


def test_a_subtypes_trend_dispersion_is_read_at_its_own_mean(simulation_source):
    """``dispersion_model="trend"``: a subtype's programme genes are ×fold above its parent's, so the trend (falling
    with the mean) gives them their own, smaller dispersion — it once copied the parent's, read before the programme."""
    reference, types = simulation_source
    sim = singlecell.simulate(reference, types, n_cells=200, seed=1, subtypes={"T cells": 2}, programme_genes=50,
                              programme_fold=5.0, dispersion_model="trend")
    truth = sim.uns["simulation"]
    groups = list(truth["groups"])
    assert "T cells" not in groups  # the parent is replaced by its subtypes
    one, two = groups.index("T cells/1"), groups.index("T cells/2")
    programme = truth["means"][one] > 1.5 * truth["means"][two]  # T cells/1's own programme genes
    assert programme.sum() >= 30
    assert (truth["dispersion"][one][programme] < truth["dispersion"][two][programme]).mean() > 0.8
    same = ~programme & (truth["means"][one] == truth["means"][two])
    np.testing.assert_array_equal(truth["dispersion"][one][same], truth["dispersion"][two][same])


def test_a_chemistry_like_batch_effect_is_part_shared_part_per_lineage(simulation_source):
    """``shared+celltype``: two lineages' batch shifts correlate by about the shared share of the variance (``global``:
    all of it, ``celltype``: none); subtypes of one lineage shift together; the same for any number of cells."""
    reference, types = simulation_source

    def batch_shift(n, **options):
        sim = singlecell.simulate(reference, types, n_cells=n, n_batches=2, batch_strength=1.0, seed=5,
                                  weights={"T cells": 4}, **options)
        b = sim.obs["batch"].astype(str).to_numpy()
        one, two = (sim[b == f"batch{k}"] for k in (0, 1))
        first, second = _type_means(one), _type_means(two)
        return {g: second[g] - first[g] for g in first}

    top = np.argsort(np.asarray(reference.X.mean(axis=0)).ravel())[::-1][:300]

    def r(a, b):
        return float(np.corrcoef(a[top], b[top])[0, 1])

    mixed = batch_shift(3000, batch_effect="shared+celltype", subtypes={"T cells": 2})
    between = r(mixed["Monocytes"], mixed["Macrophages"])
    assert 0.2 < between < 0.8, between  # σ² split 0.5 : 0.5
    assert r(mixed["T cells/1"], mixed["T cells/2"]) > 0.8  # subtypes share their lineage's shift
    assert r(batch_shift(3000, batch_effect="celltype")["Monocytes"], batch_shift(3000, batch_effect="celltype")["Macrophages"]) < 0.3
    all_shared = batch_shift(3000, batch_effect="shared+celltype", shared_fraction=1.0)
    assert r(all_shared["Monocytes"], all_shared["Macrophages"]) > 0.8
    smaller = batch_shift(1500, batch_effect="shared+celltype", subtypes={"T cells": 2})
    assert r(smaller["Monocytes"], mixed["Monocytes"]) > 0.8  # drawn before anything n_cells decides
    with pytest.raises(InputError, match="shared_fraction"):
        singlecell.simulate(reference, types, n_cells=10, batch_effect="shared+celltype", shared_fraction=1.5)


def test_gpu_leiden_keeps_cugraphs_full_hierarchy(monkeypatch):
    """rapids-singlecell 0.18 passes ``n_iterations`` to cuGraph's ``leiden(max_iter=…)``, the maximum number of
    *levels*: the CPU's 2 igraph iterations must not reach it (it once did, truncating the GPU's hierarchy)."""
    import sys
    import types as pytypes

    from sparkbooks.singlecell import workflow

    calls = {}
    fake = pytypes.ModuleType("rapids_singlecell")
    fake.tl = pytypes.SimpleNamespace(leiden=lambda adata, **kw: calls.update(kw))
    monkeypatch.setitem(sys.modules, "rapids_singlecell", fake)
    who = workflow.leiden(object(), resolution=0.6, seed=3, use_backend="rapids_singlecell")
    assert who == "cuGraph Leiden (GPU)" and calls["rng"] == 3 and calls["resolution"] == 0.6
    assert "n_iterations" not in calls  # rapids-singlecell's default: 100 levels, the hierarchy to its end
    assert workflow.leiden_options("rapids_singlecell") == {}
    assert workflow.leiden_options("scanpy") == {"n_iterations": workflow.LEIDEN_ITERATIONS}


def test_gpu_harmony_runs_in_float32_as_nvidias_notebook(monkeypatch):
    """rapids-singlecell's harmony_integrate defaults to float64; NVIDIA's notebook passes dtype=cp.float32 (a GB10's
    FP64 rate is a small fraction of its FP32 one). The call must pass float32 and the seed."""
    import sys
    import types as pytypes

    import anndata as ad

    from sparkbooks.singlecell import workflow

    calls = {}

    def fake_harmony(adata, key, **kw):
        calls.update(kw, key=key)
        adata.obsm["X_pca_harmony"] = adata.obsm["X_pca"]

    fake = pytypes.ModuleType("rapids_singlecell")
    fake.pp = pytypes.SimpleNamespace(harmony_integrate=fake_harmony)
    monkeypatch.setitem(sys.modules, "rapids_singlecell", fake)
    cells = ad.AnnData(np.zeros((4, 2), dtype=np.float32), obsm={"X_pca": np.ones((4, 2))})
    cells.obs["batch"] = ["a", "b", "a", "b"]
    workflow.harmony(cells, "batch", seed=7, use_backend="rapids_singlecell")
    assert calls == {"key": "batch", "rng": 7, "dtype": np.float32}


def test_benchmark_peak_is_the_largest_step_peak_and_its_record_reads_back(tmp_path, load_benchmark):
    """Each step resets VmHWM, which resets ru_maxrss: the 216k run's summary printed the last step's 9,302 MiB
    against a 13,429 MiB step. The record the benchmark writes must be one the guide can read."""
    bench = load_benchmark("single_cell_scaling")
    steps = {"pca": 8514.0, "logreg_markers": 13429.0, "diffmap": 9302.0}
    fixed = bench.with_process_peak({"peak_mb": 9302.0, "peak_by_step": steps})
    assert fixed["peak_mb"] == 13429.0
    run = {"seconds": {"pca": 2.0, "umap": 3.0, "diffmap": 1.0}, "non_embedding_s": 3.0, "cells": 600, "genes": 900,
           "load_s": 0.2, "nmi_groups": 0.9, "ari_groups": 0.8, "ari_batch": 0.0, "ari_groups_before_harmony": 0.5,
           "clusters": 3, "groups": 3, "iterations": {"leiden": 3}, "ratio": {"pca": None}, "peak_mb": 500.0,
           "peak_by_step": {"pca": 700.0, "umap": 650.0, "diffmap": 400.0}}
    record = bench.record({"600": bench.with_process_peak(run)}, command=["benchmarks/single_cell_scaling.py"],
                          started="2026-12-06T17:12Z", finished="2026-12-06T17:13Z", fast=False, n_genes=900)
    path = tmp_path / "r.json"
    path.write_text(__import__("json").dumps(record))
    back = singlecell.measured.load(path)
    assert back["runs"]["600"]["peak_mb"] == 700 and back["machine"]["cpus"] and back["source"]["transcribed"] is False
    assert "python benchmarks/single_cell_scaling.py" in back["command"]


def test_measured_216k_table_is_read_from_the_committed_record_and_judged_from_it(tmp_path):
    """The guide's 216,382-cell table comes from benchmarks/results/single_cell_216382.json (it was typed in by hand),
    the ≤ 150 s goal is judged from its figures, and the shortened pictures are labelled and get no ratio."""
    import copy
    import json
    from pathlib import Path

    from sparkbooks.singlecell import measured

    record = measured.load()
    name, run = next(iter(record["runs"].items()))
    assert run["cells"] == 216_382 and record["machine"]["cpus"] and record["date"] and "--sizes 216382" in record["command"]
    assert run["peak_mb"] == max(run["peak_mb_by_step"].values())  # the process peak, not the last step's
    goal = next(ln for ln in measured.summary(record).splitlines() if "but the pictures" in ln)
    assert (run["non_embedding_s"] > 150) == ("**not met**" in goal)
    quick = copy.deepcopy(record)
    quick["runs"][name]["non_embedding_s"] = 140.0
    assert "**met**" in next(ln for ln in measured.summary(quick).splitlines() if "but the pictures" in ln)
    table = measured.table(record)
    if record["fast"]:
        assert all(table.loc[s, "settings"].startswith("shortened") for s in ("umap", "umap_harmony", "tsne"))
        assert table.loc[["umap", "tsne"], "ratio"].isna().all()
    assert table.loc["pca", "ratio"] == pytest.approx(run["steps"]["pca"] / singlecell.official.NVIDIA_SECONDS["pca"], abs=0.05)
    # review 43 (round 3) #2: NVIDIA's 7.84 s is one cell of four steps; one step against it read 3.6×, not ≈ 27×
    full = copy.deepcopy(record)
    full["fast"] = False
    four = sum(run["steps"][s] for s in ("neighbors_harmony", "umap_harmony", "louvain_harmony", "leiden_harmony"))
    assert measured.table(full).loc["neighbors_harmony", "ratio"] == pytest.approx(four / 7.84, abs=0.05)
    if record["fast"]:  # the sum holds a shortened UMAP: no ratio
        assert table.loc["neighbors_harmony", "ratio"] is None or table["ratio"].isna()["neighbors_harmony"]
    if record["source"]["transcribed"]:
        assert "Transcribed" in measured.summary(record) and record["source"]["log"]
    # the guide reads the record and types none of its figures
    nb = json.loads((Path(__file__).resolve().parents[1] / "playbooks/single-cell/single-cell.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "sb.singlecell.measured.load()" in code and "measured.summary(" in code
    assert f"{run['non_embedding_s']:.1f}" not in prose and f"{run['total_s']:.1f}" not in prose
    with pytest.raises(SourceError, match="single_cell_scaling.py"):
        measured.load(tmp_path / "missing.json")


def test_scaling_pins_the_blas_pools_for_every_size(monkeypatch):
    """Unpinned, OpenBLAS's pools and OpenMP's contend on a small machine (PCA on 4,000 cells: 13 s against 3 s
    pinned): Step 10's timings run with BLAS at ``blas_threads`` and say so; the prose names no growth it did not
    compute."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from threadpoolctl import threadpool_info

    from sparkbooks.singlecell import workflow

    seen = []

    def fake_analyse(sim, **kw):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return SimpleNamespace(seconds={"pca": 1.0, "umap": 2.0})

    monkeypatch.setattr(workflow, "simulate", lambda *a, n_cells, **kw: n_cells)
    monkeypatch.setattr(workflow, "analyse", fake_analyse)
    table = workflow.scaling(None, [], [100, 200], blas_threads=1)
    assert seen == [{1}, {1}] and table.attrs["blas_threads"] == 1 and list(table.index) == [100, 200]
    nb = json.loads((Path(__file__).resolve().parents[1] / "playbooks/single-cell/single-cell.ipynb").read_text())
    step10 = next("".join(c["source"]) for c in nb["cells"] if "## Step 10" in "".join(c["source"]))
    assert "grow fastest" not in step10.split("## Step 10")[1]
    assert any("growth" in "".join(c["source"]) and "fastest_growing_step" in "".join(c["source"]) for c in nb["cells"])
