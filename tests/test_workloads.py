import pytest

from sparkbooks.dataframes import workloads
from sparkbooks.accel import GpuProbe
from sparkbooks.exceptions import SparkbooksError


def test_sales_data_is_deterministic_and_shaped():
    a = workloads.make_sales(5_000, seed=1, missing=0.02)
    b = workloads.make_sales(5_000, seed=1, missing=0.02)
    assert a["sales"].equals(b["sales"])
    assert len(a["sales"]) == 5_000 and a["sales"]["product_id"].max() < len(a["products"])
    assert 50 < a["sales"]["unit_price"].isna().sum() < 150


def test_etl_reads_files_and_reports_cold_warm_and_checks(tmp_path):
    data = workloads.write_sales(tmp_path / "data", 20_000, seed=0)
    result = workloads.pandas_etl(20_000, seed=0, data_dir=str(data), out_dir=str(tmp_path), repeats=3)
    checks = result["checks"]
    assert checks["rows_joined"] == checks["csv_rows"] == 20_000
    assert checks["missing_prices_left"] < 0.005 * 20_000  # only products with no known price at all stay missing
    stages = ["read_parquet", "read_csv", "fill_missing", "join", "derive", "strings", "apply", "groupby", "rolling", "top_n"]
    assert list(result["cold"]) == stages and all(len(v) == 3 for v in result["warm_runs"].values())
    assert result["total_s"] == pytest.approx(sum(result["warm"].values()))
    assert all(c == {"gpu_calls": 0, "cpu_calls": 0, "fallbacks": []} for c in result["counts"].values())
    assert {p.name for p in tmp_path.glob("*.parquet")} == {"summary.parquet", "weekly.parquet", "top.parquet"}


def test_table_comparison_catches_a_changed_value(tmp_path):
    import pandas as pd

    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    frame = pd.DataFrame({"revenue": [1.0, 2.0, 3.0]}, index=pd.Index(["x", "y", "z"], name="region"))
    frame.to_parquet(tmp_path / "a" / "summary.parquet")
    frame.iloc[::-1].to_parquet(tmp_path / "b" / "summary.parquet")  # another row order is not a difference
    assert workloads.compare_tables(tmp_path / "a", tmp_path / "b") == []
    frame.assign(revenue=[1.0, 2.0, 3.001]).to_parquet(tmp_path / "b" / "summary.parquet")
    assert workloads.compare_tables(tmp_path / "a", tmp_path / "b")[0].startswith("summary:")
    (tmp_path / "b" / "summary.parquet").unlink()
    assert workloads.compare_tables(tmp_path / "a", tmp_path / "b") == ["summary: the GPU run wrote no table"]


def _fake_comparison(**gpu_checks):
    stage = {"s": 1.0}
    cpu = {"checks": {"forest_accuracy": 0.850, "kmeans_inertia_per_sample": 100.0, "rows": 10}, "cold": stage,
           "warm": stage, "total_s": 1.0, "total_cold_s": 1.0, "wall_s": 2.0, "counts": {"s": {}}}
    gpu = cpu | {"checks": cpu["checks"] | gpu_checks, "counts": {"s": {"gpu_calls": 5, "cpu_calls": 1, "fallbacks": ["x"]}}}
    return workloads.Comparison("sklearn", {}, cpu, gpu)


def test_per_metric_tolerances_pass_legitimate_differences_and_fail_real_ones():
    assert _fake_comparison(forest_accuracy=0.838, kmeans_inertia_per_sample=100.9).disagreements() == {}
    bad = _fake_comparison(forest_accuracy=0.80, kmeans_inertia_per_sample=102.0, rows=11)
    assert set(bad.disagreements()) == {"forest_accuracy", "kmeans_inertia_per_sample", "rows"}
    assert any("128 quantile bins" in p for p in bad.problems())


def test_a_gpu_child_that_ran_nothing_on_the_gpu_is_a_problem():
    cmp = _fake_comparison()
    cmp.gpu["counts"] = {"s": {"gpu_calls": 0, "cpu_calls": 7, "fallbacks": ["read_csv"]}}
    assert cmp.problems() == ["the GPU child ran no call on the GPU: every call fell back to the CPU"]
    assert cmp.table().loc["s", "fell_back"] == "read_csv"


@pytest.fixture
def fake_devices():
    """Install a faked device report (sparkbooks.devices, the one policy); the real probe comes back afterwards."""
    from sparkbooks import devices

    yield lambda **report: devices.refresh(devices.Devices(**report))
    devices.refresh()


def test_compare_runs_the_cpu_path_in_a_child_and_reports_no_gpu_figures(fake_devices):
    # the machine may have a GPU (a DGX Spark does): fake one where cuDF does not compute, as on a laptop
    fake_devices(policy="auto", cudf=False, installed=("cudf", "cuml"), reasons=(("cudf", "no GPU here (faked by the test)"),))
    cmp = workloads.compare("sklearn", {"n_samples": 2_000, "seed": 0, "repeats": 1})
    assert cmp.gpu is None and "GPU run skipped" in cmp.gpu_reason
    table = cmp.table()
    assert "gpu_warm_s" not in table.columns and table.loc["forest_fit", "cpu_warm_s"] > 0
    assert table.loc["forest_fit", "accelerated"] == "not accelerated (CPU path)"
    assert cmp.cpu["wall_s"] > cmp.cpu["total_cold_s"]  # start-up and imports are in the wall time
    assert cmp.cpu["checks"]["forest_accuracy"] > 0.5 and cmp.problems() == []
    assert cmp.gpu_reason == "GPU run skipped: no GPU here (faked by the test)"


@pytest.mark.parametrize(("report", "started"), [
    ({"policy": "cpu", "cudf": True, "installed": ("cudf", "cuml")}, ["cpu"]),  # SPARKBOOKS_ACCELERATOR=cpu
    ({"policy": "auto", "cudf": True, "installed": ("cudf",)}, ["cpu"]),  # cuml.accel needs cuml installed
    ({"policy": "auto", "cudf": True, "installed": ("cudf", "cuml")}, ["cpu", "gpu"]),
])
def test_the_device_policy_decides_whether_a_gpu_child_starts(fake_devices, monkeypatch, report, started):
    from sparkbooks.dataframes import comparison
    from sparkbooks.settings import settings

    monkeypatch.setattr(settings, "accelerator", report["policy"])  # what SPARKBOOKS_ACCELERATOR sets
    fake_devices(**report)
    paths = []
    fake_result = {"checks": {}, "cold": {}, "warm": {}, "total_s": 1.0, "total_cold_s": 1.0, "wall_s": 1.0, "counts": {}}
    monkeypatch.setattr(comparison, "run_isolated", lambda name, params, *, path, timeout: paths.append(path) or fake_result)
    cmp = workloads.compare("sklearn", {"n_samples": 10})
    assert paths == started and (cmp.gpu is None) == (started == ["cpu"])
    if report["policy"] == "cpu":
        assert cmp.gpu_reason == "GPU run skipped: CPU requested (SPARKBOOKS_ACCELERATOR=cpu)"


def test_every_summary_aggregation_is_one_cudf_runs():
    """A Python function in ``agg`` makes cuDF's group-by fail and cudf.pandas run the whole ``agg`` in pandas."""
    # cuDF's group-by aggregations (user guide, "GroupBy" → "Aggregation"; cudf 26.10)
    cudf_aggregations = {"count", "size", "sum", "idxmin", "idxmax", "min", "max", "mean", "var", "std", "quantile",
                         "median", "nunique", "nth", "collect", "unique", "first", "last", "corr", "cov", "prod"}
    for name, (column, how) in workloads.SUMMARY_AGGREGATIONS.items():
        assert isinstance(how, str) and how in cudf_aggregations, (name, how)
        assert column != "size_band", name  # a string column: counted through its precomputed boolean


def test_the_summary_counts_bulk_orders_as_the_python_function_did(tmp_path):
    import pandas as pd

    data = workloads.write_sales(tmp_path / "data", 20_000, seed=0)
    workloads.pandas_etl(20_000, seed=0, data_dir=str(data), out_dir=str(tmp_path), repeats=1)
    summary = pd.read_parquet(tmp_path / "summary.parquet")
    sales = workloads.make_sales(20_000, seed=0)
    df = sales["sales"].merge(sales["products"], on="product_id").merge(sales["stores"], on="store_id")
    df["month"] = df["date"].dt.month
    before = df.groupby(["region", "category", "month"])["quantity"].agg(lambda q: int((q >= 4).sum()))
    assert summary["bulk"].dtype == "int64" and summary["bulk"].to_dict() == before.to_dict()


def test_a_child_runs_the_package_entry_point():
    import subprocess
    import sys

    from sparkbooks.dataframes import child

    assert child.ENTRY_POINT == "sparkbooks.dataframes"
    done = subprocess.run([sys.executable, "-W", "error", "-m", child.ENTRY_POINT, "--help"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("usage: python -m sparkbooks.dataframes") and done.stderr == ""


def test_a_gpu_child_without_its_accelerator_refuses(capsys, monkeypatch):
    from sparkbooks import accel

    monkeypatch.setattr(accel, "probe_gpu", lambda **_: GpuProbe(False, "no GPU (faked by the test)", 0.0))
    assert workloads.main(["sklearn", "--path", "gpu", "--params", "{}"]) == 1
    assert "AcceleratorUnavailableError" in capsys.readouterr().err


def test_unknown_workload_is_named():
    with pytest.raises(SparkbooksError, match="Workloads: pandas-etl, sklearn"):
        workloads.run_isolated("spark-sql", {})


@pytest.mark.gpu
def test_gpu_path_agrees_with_the_cpu_path():
    cmp = workloads.compare("pandas-etl", {"n_rows": 200_000, "seed": 0})
    assert cmp.gpu is not None and cmp.problems() == []


# ---- issue 48: problems() judges the time spent on the CPU, stage by stage --------------------------------------

def _etl_comparison(counts):
    stages = {name: 1.0 for name in counts}
    cpu = {"checks": {"rows": 10}, "cold": stages, "warm": stages, "total_s": 5.0, "total_cold_s": 5.0, "wall_s": 9.0,
           "counts": {name: {} for name in counts}}
    return workloads.Comparison("pandas-etl", {}, cpu, cpu | {"counts": counts})


def test_problems_names_stages_that_ran_only_on_the_cpu_even_when_others_used_the_gpu():
    on_gpu = {"gpu_calls": 40, "cpu_calls": 0, "fallbacks": [], "stage_s": 0.5, "cpu_s": 0.0}
    on_cpu = {"gpu_calls": 0, "cpu_calls": 6, "fallbacks": ["DataFrame.merge"], "stage_s": 2.0, "cpu_s": 2.0}
    counts = {"read_parquet": on_gpu, "join": on_cpu, "apply": on_cpu, "groupby": on_cpu | {"fallbacks": ["GroupBy.agg"]},
              "derive": on_gpu}
    found = _etl_comparison(counts).problems()
    assert [p.split(":")[0] for p in found] == ["join", "groupby"]  # apply is expected on the CPU
    assert "100% of its time on the CPU" in found[0] and "DataFrame.merge" in found[0]
    # a child that recorded no times: judged by its calls
    untimed = {k: {key: v for key, v in c.items() if key not in ("stage_s", "cpu_s")} for k, c in counts.items()}
    assert [p.split(":")[0] for p in _etl_comparison(untimed).problems()] == ["join", "groupby"]


def test_a_stage_may_spend_at_most_a_tenth_of_its_time_in_fallbacks():
    base = {"gpu_calls": 9, "cpu_calls": 1, "fallbacks": ["Series.dt.days"], "stage_s": 1.0}
    assert _etl_comparison({"derive": base | {"cpu_s": 0.09}}).problems() == []
    assert _etl_comparison({"derive": base | {"cpu_s": 0.2}}).problems() == [
        "derive: 20% of its time on the CPU (limit 10%; fell back: Series.dt.days)"]
    table = _etl_comparison({"derive": base | {"cpu_s": 0.2}}).table()
    assert table.loc["derive", "cpu_time_share"] == pytest.approx(0.2)


def _fake_cudf_pandas(monkeypatch):
    """A stand-in for cudf.pandas.fast_slow_proxy with its two hooks and the function every proxied call goes through."""
    import sys
    import time
    import types

    fsp = types.ModuleType("cudf.pandas.fast_slow_proxy")
    exec('''
def _fast_function_call():
    return None

def _slow_function_call():
    return None

def _fast_slow_function_call(func, /, *args, **kwargs):
    try:
        result = func(True, *args, **kwargs)
        _fast_function_call()
        return result, True
    except NotImplementedError:
        slow_args = (func,)
        _slow_function_call()
        return func(False, *args, **kwargs), False
''', fsp.__dict__)
    pandas_mod = types.ModuleType("cudf.pandas")
    pandas_mod.fast_slow_proxy = fsp
    for name, module in (("cudf", types.ModuleType("cudf")), ("cudf.pandas", pandas_mod),
                         ("cudf.pandas.fast_slow_proxy", fsp)):
        monkeypatch.setitem(sys.modules, name, module)

    def gpu_op(fast):
        time.sleep(0.01)
        return 1

    def cpu_op(fast):
        if fast:
            raise NotImplementedError
        time.sleep(0.05)
        fsp._fast_slow_function_call(gpu_op)  # a proxied call inside a fallback: counted once, with its parent
        return 2

    return fsp, gpu_op, cpu_op


def test_the_cudf_pandas_hooks_time_fallbacks_and_put_everything_back(monkeypatch):
    from sparkbooks.dataframes import measure

    fsp, gpu_op, cpu_op = _fake_cudf_pandas(monkeypatch)
    original = fsp._fast_slow_function_call
    with measure._cudf_pandas_tally() as tally:
        fsp._fast_slow_function_call(gpu_op)
        fsp._fast_slow_function_call(cpu_op)
    assert tally["gpu"] == 2 and tally["cpu"] == 1 and {f.rsplit(".", 1)[-1] for f in tally["fallbacks"]} == {"cpu_op"}
    assert 0.05 <= tally["cpu_s"] < 0.5  # the fallback's time, its inner call not counted twice, the GPU call not at all
    assert fsp._fast_slow_function_call is original and fsp._slow_function_call.__module__ != measure.__name__


def test_every_aggregation_in_the_etl_is_a_name_not_a_python_function():
    """No lambda or callable in any agg/aggregate/transform of the pandas stages: cuDF cannot run one."""
    import ast
    import inspect

    from sparkbooks.dataframes import etl

    tree = ast.parse(inspect.getsource(etl))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr in ("agg", "aggregate", "transform")]
    assert calls, "the ETL has no aggregation to check"
    for call in calls:
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            assert not any(isinstance(n, ast.Lambda) for n in ast.walk(arg)), ast.unparse(call)
            if isinstance(arg, ast.Constant):
                assert isinstance(arg.value, str), ast.unparse(call)
    for name, spec in workloads.SUMMARY_AGGREGATIONS.items():
        assert isinstance(spec, tuple) and all(isinstance(x, str) for x in spec), name
