"""Every domain follows the one device policy (issue 52 item 3): with SPARKBOOKS_ACCELERATOR=cpu nothing picks a GPU
path even on a machine where every probe passes; with auto the same faked machine takes each GPU path."""

import pytest

from sparkbooks import devices, settings

#: a DGX Spark where every probe passed
SPARK = devices.Devices(policy="auto", torch_cuda=1, cuda_name="NVIDIA GB10", compute_capability="12.1",
                        unified_memory=True, bf16=True, nccl=True, warp_cuda=1, cudf=True,
                        installed=("torch", "warp", "cudf", "cuml", "cupy", "rapids_singlecell", "nx_cugraph", "cuopt"),
                        available_bytes=100 * 2**30)


@pytest.fixture(params=["cpu", "auto"])
def policy(request, monkeypatch):
    monkeypatch.setenv("SPARKBOOKS_ACCELERATOR", request.param)
    settings.reset()
    devices.refresh(SPARK)
    yield request.param
    settings.reset()
    devices.refresh()


def test_single_cell_picks_rapids_only_when_the_policy_allows(policy):
    pytest.importorskip("scanpy")
    from sparkbooks.singlecell import workflow

    assert workflow.backend() == ("scanpy" if policy == "cpu" else "rapids_singlecell")


def test_txt2kg_picks_cugraph_only_when_the_policy_allows(policy):
    from sparkbooks.retrieval.kg import graph

    assert graph.backend() == ("networkx" if policy == "cpu" else "cugraph")


def test_robot_picks_warp_cuda_only_when_the_policy_allows(policy):
    from sparkbooks.robot import batched

    device = batched.choose_device("auto")
    assert device.name == ("cpu" if policy == "cpu" else "cuda:0")
    assert ("SPARKBOOKS_ACCELERATOR=cpu" in device.why) == (policy == "cpu")
    assert policy == "cpu" or "NVIDIA GB10" in device.why


def test_minilm_uses_cuda_only_when_the_policy_allows(policy, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    from sparkbooks.retrieval import embeddings

    asked = []
    monkeypatch.setattr(st, "SentenceTransformer", lambda path, device: asked.append(device))
    embeddings.load_minilm()
    assert asked == ["cpu" if policy == "cpu" else "cuda"]


def test_training_picks_nccl_and_bf16_only_when_the_policy_allows(policy):
    pytest.importorskip("torch")
    from sparkbooks.training import finetune, pretrain

    assert finetune.default_backend() == ("gloo" if policy == "cpu" else "nccl")
    assert pretrain.default_precision("cuda") == ("fp32" if policy == "cpu" else "bf16")
    assert devices.torch_device() == ("cpu" if policy == "cpu" else "cuda")


def test_llama_cpp_offloads_only_when_the_policy_allows(policy):
    from sparkbooks.llm import llamacpp

    assert llamacpp.gpu_layers() == (0 if policy == "cpu" else llamacpp.ALL_LAYERS)


def test_the_session_path_says_cpu_under_the_cpu_policy(policy):
    from sparkbooks import accel

    if policy == "cpu":
        assert accel.enable(accelerators=()).path == "cpu"
    assert devices.probe().summary().startswith("CPU only") == (policy == "cpu")


# ---- single-cell: one Leiden for the sweep, the clustering, sub-clustering and the integration benchmark (item 8) ----

@pytest.fixture
def graph():
    """120 cells in three groups with a neighbour graph: enough for Leiden, seconds to build."""
    sc = pytest.importorskip("scanpy")
    import anndata as ad
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.abs(np.concatenate([rng.normal(c, 0.3, (40, 8)) for c in (1.0, 4.0, 7.0)])).astype(np.float32)
    adata = ad.AnnData(x)
    adata.raw = adata  # subcluster() ranks markers on the raw matrix
    adata.obsm["X_pca"] = x
    adata.obs["batch"] = np.tile(["a", "b"], 60)
    adata.obs["truth"] = np.repeat(["g0", "g1", "g2"], 40)
    sc.pp.neighbors(adata, n_neighbors=10, use_rep="X_pca", random_state=0)
    return adata


def _record_leiden(monkeypatch):
    """Spies on both Leiden implementations: scanpy's (igraph) and a stand-in rapids_singlecell's (cuGraph)."""
    import sys
    import types

    import numpy as np
    import pandas as pd
    import scanpy as sc

    calls = []
    real = sc.tl.leiden

    def cpu(adata, **kwargs):
        calls.append(("igraph", kwargs.get("n_iterations")))
        return real(adata, **kwargs)

    def gpu(adata, **kwargs):
        calls.append(("cugraph", kwargs.get("n_iterations")))
        labels = (np.arange(adata.n_obs) * 3 // adata.n_obs).astype(str)
        adata.obs[kwargs.get("key_added", "leiden")] = pd.Categorical(labels)

    monkeypatch.setattr(sc.tl, "leiden", cpu)
    rsc = types.ModuleType("rapids_singlecell")
    rsc.tl = types.SimpleNamespace(leiden=gpu)
    monkeypatch.setitem(sys.modules, "rapids_singlecell", rsc)
    return calls


def test_the_resolution_sweep_runs_the_clusterings_leiden(policy, graph, monkeypatch):
    from sparkbooks.singlecell import annotation, workflow

    calls = _record_leiden(monkeypatch)
    expected = "igraph" if policy == "cpu" else "cugraph"
    table = annotation.resolution_sweep(graph, [0.5, 1.0], seeds=(0, 1))
    assert len(table) == 2
    workflow.leiden(graph, resolution=0.5, seed=0)  # what analyse() runs at the chosen resolution
    # each library gets the setting in its own meaning (workflow.leiden_options): igraph 2 iterations, cuGraph none
    iterations = workflow.LEIDEN_ITERATIONS if expected == "igraph" else None
    assert calls and set(calls) == {(expected, iterations)}, calls


def test_subclustering_and_the_integration_benchmark_use_the_same_leiden(graph, monkeypatch):
    pytest.importorskip("harmonypy")
    from sparkbooks.singlecell import annotation, integration, workflow

    calls = _record_leiden(monkeypatch)
    workflow.leiden(graph, resolution=0.5, seed=0)
    annotation.subcluster(graph, [graph.obs["leiden"].cat.categories[0]], resolution=0.5)
    integration.benchmark(graph, batch_key="batch", truth_key="truth", resolution=0.5, n_neighbors=10,
                          use_backend="scanpy")
    # the benchmark clusters each embedding at several resolutions (scib's best-of NMI/ARI): every call, however many,
    # goes through the one shared leiden with its iteration setting
    assert len(calls) >= 5 and set(calls) == {("igraph", workflow.LEIDEN_ITERATIONS)}, calls


def test_analyse_clusters_through_the_shared_leiden():
    import inspect

    from sparkbooks.singlecell import workflow

    source = inspect.getsource(workflow.analyse)
    assert "leiden(adata, resolution=resolution, seed=seed, use_backend=name)" in source
    assert "rsc.tl.leiden" not in source and "sc.tl.leiden" not in source


# ---- what the GPU path installs (issue 52 item 9) -------------------------------------------------------------------

def test_the_gpu_extra_installs_the_cupy_rapids_singlecell_imports():
    """rapids-singlecell imports cupy without requiring it: `pip install -e '.[gpu]'` alone left single-cell's GPU path
    unimportable (then the rapids_singlecell kind, which only sees the package installed, would pick a path that dies)."""
    import re
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    gpu = pyproject["project"]["optional-dependencies"]["gpu"]
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower(): r for r in gpu}
    assert "rapids-singlecell-cu13" in names and "cupy-cuda13x" in names, sorted(names)
    assert "[ctk]" in names["cupy-cuda13x"]  # the CUDA toolkit libraries cupy loads, as pip wheels
