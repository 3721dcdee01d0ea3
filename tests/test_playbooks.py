"""Every playbook, executed on its cpu profile through papermill, keeps its contract and records results."""

import json

import pytest

import sparkbooks as sb
from sparkbooks.notebook import contract_problems

PLAYBOOKS = [pb.slug for pb in sb.catalog.discover()]


@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_committed_notebook_keeps_the_contract(slug):
    assert contract_problems(sb.catalog.get(slug).path) == []


@pytest.mark.slow
@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_cpu_run_succeeds_and_records_at_least_three_results(executed, slug):
    run = json.loads((executed["runs"] / slug / "run.json").read_text())
    results = json.loads((executed["runs"] / slug / "results.json").read_text())
    assert run["status"] == "ok" and run["profile"] == "cpu"
    assert len(results["results"]) >= 3
    assert results["params"]["profile"] == "cpu"


@pytest.mark.slow
def test_start_here_measures_only_what_ran(executed):
    results = json.loads((executed["runs"] / "start-here" / "results.json").read_text())
    values = {r["name"]: r["value"] for r in results["results"]}
    assert values["pandas_etl_cpu_s"] > 0 and values["sklearn_cpu_s"] > 0
    assert values["pandas_rows_per_s"] > 10_000
    assert 0.6 < values["forest_accuracy"] <= 1
    if not sb.probe_gpu().ok:  # no GPU: no GPU number may appear
        assert values["gpu_path"] == "cpu"
        assert not [n for n in values if "gpu_s" in n or "speedup" in n]
