import pytest

from sparkbooks import workloads
from sparkbooks.accel import GpuProbe
from sparkbooks.exceptions import SparkbooksError


def test_sales_data_is_deterministic_and_shaped():
    a = workloads.make_sales(5_000, seed=1)
    b = workloads.make_sales(5_000, seed=1)
    assert a["sales"].equals(b["sales"])
    assert len(a["sales"]) == 5_000 and a["sales"]["product_id"].max() < len(a["products"])


def test_etl_checks_are_consistent():
    result = workloads.pandas_etl(20_000, seed=0)
    assert result["checks"]["rows_joined"] == 20_000
    assert set(result["stages"]) == {"generate", "join", "derive", "groupby", "rolling", "top_n"}
    assert result["total_s"] == pytest.approx(sum(v for k, v in result["stages"].items() if k != "generate"))


def test_compare_runs_the_cpu_path_in_a_child_and_reports_no_gpu_figures(monkeypatch):
    # the machine may have a GPU (a DGX Spark does): fake a failing probe, as on a laptop
    monkeypatch.setattr(workloads, "probe_gpu", lambda: GpuProbe(False, "no GPU here (faked by the test)", 0.0))
    cmp = workloads.compare("sklearn", {"n_samples": 2_000, "seed": 0})
    assert cmp.gpu is None and "GPU run skipped" in cmp.gpu_reason
    table = cmp.table()
    assert "gpu_s" not in table.columns and table.loc["kmeans", "cpu_s"] > 0
    assert cmp.cpu["checks"]["forest_accuracy"] > 0.5
    assert cmp.disagreements() == {}


def test_unknown_workload_is_named():
    with pytest.raises(SparkbooksError, match="Workloads: pandas-etl, sklearn"):
        workloads.run_isolated("spark-sql", {})


@pytest.mark.gpu
def test_gpu_path_agrees_with_the_cpu_path():
    cmp = workloads.compare("pandas-etl", {"n_rows": 200_000, "seed": 0})
    assert cmp.gpu is not None and cmp.disagreements() == {}
