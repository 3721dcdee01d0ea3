"""Every GPU call the package makes, bound to the real signatures of RAPIDS, cuOpt and rapids-singlecell.

On every commit (no GPU, no RAPIDS): the call sites found in the source are checked against
``gpu_api_snapshot.json``, written from the real CUDA 13 wheels by ``make gpu-api-snapshot``.
Where the wheels are installed (``make gpu-contract``: they import and run cudf.pandas in
CPU-fallback mode without a GPU), the ``gpu_contract`` tests also run the fixed Spark-path bugs for real.
"""

import functools
import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec

import pytest

from . import gpu_contract as gc

SNAPSHOT = json.loads(gc.SNAPSHOT.read_text())
SCAN = gc.scan_package()
HAVE_RAPIDS = find_spec("cudf") is not None and find_spec("cuml") is not None
live = pytest.mark.skipif(not HAVE_RAPIDS, reason="needs the RAPIDS wheels (make gpu-contract)")


def test_the_snapshot_comes_from_the_pinned_releases():
    versions = SNAPSHOT["versions"]
    assert versions["cudf-cu13"].startswith("26.10") and versions["cuml-cu13"].startswith("26.10")
    assert versions["cuopt-cu13"].startswith("26.10") and versions["rapids-singlecell-cu13"] == "0.18.1"
    assert SNAPSHOT["missing"] == [], "the generator could not find these in the real wheels"


def test_every_gpu_reference_in_the_package_is_a_direct_call():
    assert SCAN.uncovered == [], "pass no GPU function around: call it where it is named, so it can be checked"


@pytest.mark.parametrize("site", SCAN.calls, ids=lambda s: f"{s.where}:{s.target}")
def test_every_gpu_call_binds_to_the_real_signature(site):
    entry = SNAPSHOT["callables"].get(site.target)
    assert entry is not None, (f"{site.where} calls {site.target}, which the snapshot lacks: regenerate it with "
                               "`make gpu-api-snapshot` (if the generator cannot find it either, the name is wrong)")
    assert gc.bind(site, entry) is None, gc.bind(site, entry)


def test_the_checker_rejects_a_wrong_keyword_and_an_unknown_call():
    source = textwrap.dedent("""
        import rapids_singlecell as rsc
        def f(adata, gpu):
            tl = rsc.tl if gpu else None
            tl.leiden(adata, resolution=1.0, flavor="igraph")  # scanpy's keyword: rapids-singlecell has none
            rsc.pp.neighbors(adata, n_neighbors=15, rng=0)       # fine
            rsc.tl.no_such_tool(adata)
            helper(rsc.pp.scale)                                 # passed around: escapes the check
    """)
    found = gc.scan_source(source, "example.py")
    by_target = {s.target: s for s in found.calls}
    leiden = SNAPSHOT["callables"]["rapids_singlecell.tl.leiden"]
    assert "flavor" in gc.bind(by_target["rapids_singlecell.tl.leiden"], leiden)
    assert gc.bind(by_target["rapids_singlecell.pp.neighbors"], SNAPSHOT["callables"]["rapids_singlecell.pp.neighbors"]) is None
    assert "rapids_singlecell.tl.no_such_tool" not in SNAPSHOT["callables"]
    assert found.uncovered == ["example.py:8 uses rapids_singlecell.pp.scale without calling it"]


def test_cuopt_calls_resolve_through_instances_and_return_types():
    targets = {s.target for s in SCAN.calls}
    assert {"cuopt.linear_programming.data_model.DataModel.set_csr_constraint_matrix",
            "cuopt.linear_programming.solver_settings.SolverSettings.set_parameter",
            "cuopt.linear_programming.Solution.get_termination_reason"} <= targets


@functools.cache
def _estimators() -> dict:
    return gc.accelerated_estimators()  # built when a test runs, not at collection (umap's import alone is ≈ 7 s)


def test_the_snapshot_holds_every_estimator_the_package_builds_under_cuml_accel():
    assert sorted(_estimators()) == sorted(SNAPSHOT["accelerated"]), "regenerate with `make gpu-api-snapshot`"


@pytest.mark.parametrize("name", sorted(SNAPSHOT["accelerated"]), ids=str)
def test_estimators_under_cuml_accel_use_settings_cuml_runs_on_the_gpu(name):
    """cuml.accel falls back to the CPU, silently, for settings cuML lacks (e.g. UMAP init='pca')."""
    entry = SNAPSHOT["accelerated"].get(name)
    assert name in _estimators(), f"the package no longer builds {name}: regenerate with `make gpu-api-snapshot`"
    current = gc.settings_of(_estimators()[name])
    assert entry is not None and entry["params"] == current, f"{name} changed: regenerate with `make gpu-api-snapshot`"
    if name.endswith("_cpu_init"):
        assert entry["gpu"].startswith("unsupported"), "the CPU-path setting exists because cuML refuses it"
    else:
        assert entry["gpu"] == "supported", f"{name}: cuML says {entry['gpu']}"


def test_cuopt_settings_use_parameter_names_cuopt_knows():
    from sparkbooks.finance import cvar

    unknown = sorted((set(cvar.CUOPT_EXACT) | {"time_limit"}) - set(SNAPSHOT["cuopt_parameters"]))
    assert unknown == [], f"cuOpt 26.10 has no parameters {unknown}"
    assert cvar.CUOPT_EXACT["crossover"] is True and max(v for k, v in cvar.CUOPT_EXACT.items() if "tolerance" in k) <= 1e-8


# --- live checks where the wheels are installed (the GPU-contract environment) -------------------------------

@pytest.mark.gpu_contract
@live
def test_the_snapshot_is_current():
    fresh = json.loads(json.dumps(gc.build_snapshot()))
    for key in ("versions", "missing", "callables", "accelerated", "cuopt_parameters"):
        assert fresh[key] == SNAPSHOT[key], f"{key} differs from the installed wheels: `make gpu-api-snapshot`"


def _child(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUML_ACCEL")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=900)


FAKE_GPU = """
    from sparkbooks import accel
    accel.probe_gpu = lambda **_: accel.GpuProbe(True, "faked for the test: cudf.pandas falls back to the CPU", 0.0)
"""


@pytest.mark.gpu_contract
@live
def test_single_cell_keeps_cudf_pandas_off_and_anndata_accepts_its_frames():
    # Spark-path bug: begin() installed cudf.pandas after scanpy/anndata were imported, and AnnData then rejected
    # sparkbooks' proxy DataFrames ("Cannot convert <class 'pandas.DataFrame'> to obs DataFrame").
    done = _child(FAKE_GPU + """
    import scanpy
    import sparkbooks as sb
    ns = {name: p.default for name, p in sb.catalog.get("single-cell").parameters.items()}
    ns |= dict(profile="cpu", n_cells=500, scaling_sizes=[300], n_top_genes=500)
    session = sb.begin(ns, playbook="single-cell")
    assert session.accel.on_gpu and session.accel.active == (), session.accel
    adata = sb.singlecell.load_sample()
    result = sb.singlecell.analyse(adata, n_top_genes=500, use_backend="scanpy", seed=0)
    assert "rank_genes_groups" in result.adata.uns
    print("OK", result.adata.obs["leiden"].nunique())
    """)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-2000:]


@pytest.mark.gpu_contract
@live
def test_cudf_pandas_after_pandas_is_refused_with_the_fix():
    done = _child(FAKE_GPU + """
    import pandas
    from sparkbooks.exceptions import AcceleratorUnavailableError
    try:
        accel.enable(prefer="auto", accelerators=("cudf.pandas",))
    except AcceleratorUnavailableError as exc:
        print("REFUSED", exc)
    """)
    assert "REFUSED" in done.stdout and "Restart the kernel" in done.stdout, done.stdout + done.stderr[-1500:]


@pytest.mark.gpu_contract
@live
def test_the_cpu_baseline_child_never_inherits_cuml_accel(monkeypatch):
    # Spark-path bug: cuml.accel.install() exports CUML_ACCEL_ENABLED=1 and cuml's .pth file switches the
    # accelerator on in any child that sees it, so the "CPU" baseline ran on the GPU.
    from sparkbooks.dataframes import workloads

    monkeypatch.setenv("CUML_ACCEL_ENABLED", "1")
    result = workloads.run_isolated("sklearn", {"n_samples": 2_000, "seed": 0}, path="cpu")
    assert result["accelerators"] == [] and "CPU path" in result["path"]


@pytest.mark.gpu_contract
@live
def test_gpu_child_counts_calls_and_writes_tables_equal_to_the_cpu_child(tmp_path):
    # start-here's GPU child on the real cudf.pandas (CPU-fallback mode: every call a fallback, so the counts and the
    # fallback names must be non-empty), its result tables equal to a plain-pandas child's on the same files.
    from sparkbooks.dataframes import workloads

    data = workloads.write_sales(tmp_path / "data", 5_000, seed=0)
    (tmp_path / "gpu").mkdir()
    (tmp_path / "cpu").mkdir()
    params = {"n_rows": 5_000, "seed": 0, "data_dir": str(data), "repeats": 1}
    done = _child(FAKE_GPU + f"""
    import json
    from sparkbooks.dataframes import workloads
    from sparkbooks.dataframes import measure
    measure.gpu_sync = lambda: None  # no device to synchronise: the GPU is faked (run_repeated reads it from measure)
    code = workloads.main(["pandas-etl", "--path", "gpu", "--params", json.dumps({params | {"out_dir": str(tmp_path / "gpu")}!r})])
    assert code == 0, code
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("SPARKBOOKS_RESULT ")][-1].split(" ", 1)[1])
    assert "cudf.pandas" in result["accelerators"]
    counts = result["counts"]
    assert counts["read_csv"]["cpu_calls"] >= 1 and "read_csv" in counts["read_csv"]["fallbacks"]
    assert "Series.apply" in counts["apply"]["fallbacks"]
    cpu = workloads.run_isolated("pandas-etl", params | {"out_dir": str(tmp_path / "cpu")}, path="cpu")
    assert cpu["checks"] == result["checks"]
    assert workloads.compare_tables(tmp_path / "cpu", tmp_path / "gpu") == []
