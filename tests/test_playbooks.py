"""Every playbook, executed on its cpu profile through papermill, keeps its contract and records results."""

import math
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

import sparkbooks as sb
from sparkbooks.notebook import contract_problems, output_differences

from .conftest import FIXTURES, REPO, RUN_TAG, llama_server_pids

PLAYBOOKS = [pb.slug for pb in sb.catalog.discover()]


def recorded(playbook_runs, slug: str) -> tuple[dict, dict]:
    """``(name → value, the whole results.json)`` of one playbook's cpu run (executed on first request)."""
    results = json.loads((playbook_runs(slug) / "results.json").read_text())
    return {r["name"]: r["value"] for r in results["results"]}, results


def shown(playbook_runs, slug: str) -> str:
    """Everything a reader of the executed notebook sees in its outputs: streams, plain text and Markdown."""
    notebook = nbformat.read(playbook_runs(slug) / f"{slug}.ipynb", as_version=4)
    return "\n".join(part for cell in notebook.cells for out in cell.get("outputs", [])
                     for part in (out.get("text", ""), *(out.get("data", {}).get(k, "") for k in ("text/markdown", "text/plain"))))


def assert_no_server_left(playbook_runs, slug: str) -> None:
    playbook_runs(slug)
    assert playbook_runs.servers_left[slug] & llama_server_pids() == set(), f"a llama-server outlived the run of {slug}"


@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_committed_notebook_keeps_the_contract(slug):
    assert contract_problems(sb.catalog.get(slug).path) == []


@pytest.mark.slow
@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_playbook_runs(playbook_runs, slug):
    """Each playbook executes once per session, here (its own item and its own time in --durations).

    A failure names its playbook and fails only that playbook's tests; the next playbook still runs.
    """
    run = json.loads((playbook_runs(slug) / "run.json").read_text())
    results = json.loads((playbook_runs(slug) / "results.json").read_text())
    assert run["status"] == "ok" and run["profile"] == "cpu"
    assert results["params"]["profile"] == "cpu"


@pytest.mark.slow
@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_cpu_run_records_at_least_three_results(playbook_runs, slug):
    results = json.loads((playbook_runs(slug) / "results.json").read_text())
    assert len(results["results"]) >= 3


#: the guide's promise to its reader: a cpu run takes at most this many times its stated `minutes.cpu`
TIME_BUDGET_FACTOR = 1.5


def time_budget_problem(pb, run: dict) -> str | None:
    """Why a recorded cpu run breaks its playbook's stated time, or ``None``."""
    allowed = TIME_BUDGET_FACTOR * pb.minutes["cpu"] * 60
    if run["profile"] != "cpu" or run["seconds"] <= allowed:
        return None
    return (f"{pb.slug}: the cpu run took {run['seconds']:.0f} s, over {TIME_BUDGET_FACTOR} × its stated "
            f"minutes.cpu = {pb.minutes['cpu']} min ({allowed:.0f} s); make it faster or state the time it takes")


@pytest.mark.slow
@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_cpu_run_keeps_its_stated_time(playbook_runs, slug):
    run = json.loads((playbook_runs(slug) / "run.json").read_text())
    assert run["seconds"] > 0
    assert time_budget_problem(sb.catalog.get(slug), run) is None


def test_time_budget_check_catches_a_slow_run():
    pb = sb.catalog.get("start-here")
    allowed = TIME_BUDGET_FACTOR * pb.minutes["cpu"] * 60
    assert time_budget_problem(pb, {"profile": "cpu", "seconds": allowed}) is None
    assert "over 1.5 × its stated" in time_budget_problem(pb, {"profile": "cpu", "seconds": allowed + 1})
    assert time_budget_problem(pb, {"profile": "spark", "seconds": 10 * allowed}) is None  # not the cpu promise


@pytest.mark.slow
@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_tagged_outputs_match_the_committed_reference(playbook_runs, slug):
    """nbval's comparison on papermill's run: each playbook executes once per test session, not twice."""
    pb = sb.catalog.get(slug)
    assert output_differences(pb.path, playbook_runs(slug) / f"{slug}.ipynb") == []


@pytest.mark.slow
def test_site_renders_a_guide_for_each_playbook_that_ran(executed, playbook_runs):
    """The site over whichever guides executed: a failed playbook's page shows its failure, the others their run."""
    index = (executed["site"] / "index.html").read_text()
    for slug in playbook_runs.attempted:
        status = "failed" if isinstance(playbook_runs.outcome(slug), str) else "ok"
        page = (executed["site"] / f"{slug}.html").read_text()
        assert f"sb-status-{status}" in page, slug
        row = re.search(rf'<tr id="pb-{slug}">(.*?)</tr>', index, re.S).group(1)
        assert f'href="{slug}.html"' in row and f"sb-status-{status}" in row, slug


def _fixture_playbook(home: Path, slug: str, *, cpu: dict, minutes: float) -> None:
    """The failure-mode fixture playbook under another slug, with its own cpu profile and stated minutes."""
    nb = json.loads((FIXTURES / "fixture-failures" / "fixture-failures.ipynb").read_text())
    nb["metadata"]["playbook"] |= {"title": f"Fixture {slug}", "minutes": {"cpu": minutes}}
    nb["metadata"]["playbook"]["profiles"]["cpu"] = cpu
    (home / "playbooks" / slug).mkdir(parents=True)
    (home / "playbooks" / slug / f"{slug}.ipynb").write_text(json.dumps(nb))


@pytest.mark.slow
def test_a_broken_playbook_fails_only_its_own_items(tmp_path):
    """This file's own items, collected over two fixture playbooks: one raises, the next one still runs and is judged."""
    home = tmp_path / "home"
    _fixture_playbook(home, "a-broken", cpu={"mode": "raise"}, minutes=10)
    _fixture_playbook(home, "b-good", cpu={}, minutes=0.001)  # runs well, but far over its stated time
    (home / "nbconvert_templates").symlink_to(REPO / "nbconvert_templates")
    report = tmp_path / "report.xml"
    env = dict(os.environ, SPARKBOOKS_HOME=str(home))
    env.pop("CI", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-p", "no:cacheprovider", "-q", "--junitxml", str(report),
         "-k", "test_playbook_runs or test_cpu_run_keeps_its_stated_time or test_site_renders"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        failure = case.find("failure")
        outcomes[case.get("name")] = "passed" if failure is None else failure.get("message", "")
    assert outcomes["test_playbook_runs[b-good]"] == "passed"  # the playbook after the broken one still ran
    assert outcomes["test_site_renders_a_guide_for_each_playbook_that_ran"] == "passed"  # both pages, each its status
    for name in ("test_playbook_runs[a-broken]", "test_cpu_run_keeps_its_stated_time[a-broken]"):
        assert "playbook 'a-broken' failed on its cpu profile" in outcomes[name]
        assert "fixture asked to fail" in outcomes[name]
    assert "b-good: the cpu run took" in outcomes["test_cpu_run_keeps_its_stated_time[b-good]"]
    assert len(outcomes) == 5, outcomes


def test_a_server_is_counted_only_for_the_run_that_started_it(tmp_path):
    """Playbooks run while other tests start their own llama-servers: a run owns only the servers carrying its tag."""
    fake = tmp_path / "llama-server"
    shutil.copy(shutil.which("sleep"), fake)
    with subprocess.Popen([str(fake), "30"], env=dict(os.environ, **{RUN_TAG: "rag"})) as server:
        try:
            deadline = time.monotonic() + 30
            while server.pid not in llama_server_pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.pid in llama_server_pids(tag="rag")
            assert server.pid not in llama_server_pids(tag="txt2kg") and server.pid in llama_server_pids()
        finally:
            server.kill()


def _pair(tmp_path, reference: str, ran: str):
    cells = [nbformat.v4.new_code_cell("print(x)", metadata={"tags": ["nbval-check-output"]}, execution_count=1)]
    committed, executed = nbformat.v4.new_notebook(cells=cells), nbformat.v4.new_notebook(cells=[dict(cells[0])])
    committed.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=reference)]
    executed.cells = [nbformat.v4.new_code_cell("print(x)", execution_count=1,
                                                outputs=[nbformat.v4.new_output("stream", name="stdout", text=ran)])]
    paths = tmp_path / "committed.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(committed, paths[0])
    nbformat.write(executed, paths[1])
    return paths


def test_output_check_fails_on_a_changed_output_and_honours_sanitizers(tmp_path):
    assert output_differences(*_pair(tmp_path, "3 topics\n", "3 topics\n")) == []
    problems = output_differences(*_pair(tmp_path, "3 topics\n", "4 topics\n"))
    assert len(problems) == 1 and "3 topics" in problems[0] and "4 topics" in problems[0]
    assert output_differences(*_pair(tmp_path, "took 1.2 s\n", "took 3.4 s\n"), sanitize={r"\d+\.\d+ s": "S"}) == []
    # a cold cache downloads first; what the download printed is not the playbook's result
    cold = "fetching prices: https://example.org/p.csv\n  fetching prices … still running (10.0 s)\nfetched prices → /c/p.csv (12.1 s)\n"
    assert output_differences(*_pair(tmp_path, "20 assets\n", cold + "20 assets\n")) == []
    assert output_differences(*_pair(tmp_path, "20 assets\n", cold + "19 assets\n")) != []


@pytest.mark.slow
def test_start_here_measures_only_what_ran(playbook_runs):
    values, results = recorded(playbook_runs, "start-here")
    # review 48 (round 7): every Next-steps link opens from where the executed notebook sits (it 404'd in JupyterLab)
    import re

    executed = (playbook_runs("start-here") / "start-here.ipynb").read_text()
    links = re.findall(r"\]\(([^)]+\.ipynb)\)", executed)
    assert len(links) >= 11 and all((playbook_runs("start-here") / link).exists() for link in links), links
    notes = {r["name"]: r.get("note", "") for r in results["results"]}
    assert values["pandas_etl_cpu_s"] > 0 and values["sklearn_cpu_s"] > 0
    assert values["pandas_rows_per_s"] > 10_000 and values["pandas_etl_cpu_cold_s"] > 0
    assert values["pandas_wall_cpu_s"] > values["pandas_etl_cpu_s"]  # start-up and every run are in the wall time
    assert 0.6 < values["forest_accuracy"] <= 1
    assert values["triad_cpu_gbps"] > 0 and "5 repeats" in notes["triad_cpu_gbps"]  # measured, not the 273 GB/s spec
    assert values["hello_matmul_cpu_gflops"] > 0
    if not sb.probe_gpu().ok:  # no GPU: no GPU number may appear
        assert values["gpu_path"] == "cpu"
        assert not [n for n in values if ("gpu" in n and n != "gpu_path") or "speedup" in n]


@pytest.mark.slow
def test_nemotron_nano_measures_a_real_server_and_leaves_none_behind(playbook_runs):
    values, results = recorded(playbook_runs, "nemotron-nano")
    for name in ("ttft_s", "decode_tok_s", "aggregate_tok_s_at_max", "stand_in_predicted_MiB", "stand_in_measured_rss_MiB",
                 "tpot_p50_ms_at_max", "prefill_tok_s_longest"):
        assert values[name] > 0, name
    notes = {r["name"]: r["note"] for r in results["results"]}
    assert isinstance(values["speed_consistent"], bool)  # recorded either way: a flagged run says why
    assert values["speed_consistent"] == notes["speed_consistent"].startswith("checked: ")
    # review of issue 44 (round 4), finding 1: the clean line names only the checks the figures allowed — llama.cpp
    # times itself, so here the clocks were compared (on vLLM the line says "no server clock")
    if values["speed_consistent"]:
        assert "client and server clocks within 2.0× at every level" in notes["speed_consistent"], notes["speed_consistent"]
    # issue 44: the published TTFT is audited by the server's own cache figures, beside the cache-off figure
    assert re.search(r"cache audit: \d+ refused, 0 unaudited", notes["ttft_s"]) and values["ttft_refused"] >= 0
    assert values["ttft_vs_length_sweep"] > 0 and ("within" in notes["ttft_vs_length_sweep"] or "outside" in notes["ttft_vs_length_sweep"])
    # round 4, finding 5: Step 3's TTFT outside the 15% goal against the length sweep's row of its length is flagged
    assert "outside" not in notes["ttft_vs_length_sweep"] or not values["speed_consistent"], notes["speed_consistent"]
    # review of issue 44: a warm-template TTFT beside the cold one (cache on, only template + system prompt may hit),
    # and the thread count default_threads() chose, which differs between a busy and an idle machine
    assert re.search(r"cache audit: \d+ refused, 0 unaudited", notes["ttft_warm_s"])
    # round 4, finding 2: a figure only where a sample hit the cache; else "no warm hit: not measured"
    hit = int(re.search(r"(\d+) of \d+ prompt tokens from cache", notes["ttft_warm_s"]).group(1))
    assert values["ttft_warm_s"] == "not measured" and hit == 0 or values["ttft_warm_s"] > 0
    assert values["llama_server_threads"] >= 1
    same, total = (int(x) for x in values["spec_identical_outputs"].split("/"))
    # review 44: with no identical output there is no like-for-like speed-up: "not measured", said so
    assert values["spec_speedup"] == "not measured" if same == 0 else values["spec_speedup"] > 0
    assert "95% CI" in notes["spec_speedup"] and (same == 0 or 0 <= values["spec_acceptance"] <= 1)
    # review 44: the server's decode beside llama-batched-bench's (lock-step, its own clock) and the streamed path
    assert values["server_vs_engine_decode"] > 0 and values["streamed_vs_engine_decode"] > 0
    assert values["aggregate_vs_closed_loop_estimate"] > 0 and "not a bound" in notes["aggregate_vs_closed_loop_estimate"]
    for name in ("server_vs_engine_decode", "streamed_vs_engine_decode"):  # each verdict computed from its ratios
        ratios = [float(x) for x in re.search(r": ([0-9., ]+) — ", notes[name]).group(1).split(", ")]
        assert ("not within" not in notes[name]) == all(abs(r - 1) <= 0.10 for r in ratios), notes[name]
    # review of issue 44 (round 3): a greedy output changed by speculation is reported, never passed over; a flagged
    # run's prefill figure says so (a disturbed row of the length sweep no longer passes the audit)
    assert ("changed with speculation" in notes["spec_identical_outputs"]) == (same < total)
    assert ("flagged" in notes["prefill_tok_s_longest"]) == (not values["speed_consistent"])
    low, high = (float(x) for x in re.search(r"range ([0-9.]+)–([0-9.]+)", notes["decode_tok_s"]).groups())
    assert low <= values["decode_tok_s"] <= high
    assert values["json_valid_rate"] == 1.0 and "30 sentences" in notes["json_valid_rate"]
    low, high = (float(x) for x in re.search(r"95% CI ([0-9.]+)–([0-9.]+)", notes["json_all_fields_right"]).groups())
    assert low <= values["json_all_fields_right"] <= high
    assert "McNemar" in notes["json_all_fields_right_unconstrained"]
    assert 0.5 < values["stand_in_measured_rss_MiB"] / values["stand_in_predicted_MiB"] < 3
    assert values["tool_routed_ok"] is True
    assert results["stand_ins"] and "SmolLM2" in results["stand_ins"][0]
    assert_no_server_left(playbook_runs, "nemotron-nano")


@pytest.mark.slow
def test_nvfp4_fit_judges_nvfp4_against_fp8_with_intervals(playbook_runs):
    values, results = recorded(playbook_runs, "nvfp4-fit")
    notes = {r["name"]: r.get("note", "") for r in results["results"]}
    assert values["fp8_kl"] < values["nvfp4_mse_kl"] < values["nvfp4_kl"] < values["nvfp4_w4a4_kl"]
    assert values["fp8_top1"] > values["nvfp4_top1"] > 0.5
    assert "95% CI" in notes["nvfp4_vs_fp8_kl_ratio"] and "95% CI" in notes["fp8_ppl_ratio"]
    # issue 44: the verdict follows NVIDIA's stated tolerance (accuracy within one point), not FP8's KL, so it can go
    # either way; the Step 5 line is the same verdict, and it follows the interval in its own evidence
    # review of issue 44: the word names its evidence (a 135M PTQ stand-in) and the note its bootstrap unit
    outcome = values["nvfp4_verdict"].removesuffix(" (135M PTQ stand-in)")
    assert values["claim_2"] == values["nvfp4_verdict"] and outcome in ("reproduced", "refuted", "not decided")
    low, high = (float(x) for x in re.search(r"95% CI ([+-][0-9.]+) to ([+-][0-9.]+)", notes["nvfp4_verdict"]).groups())
    interval_says = "reproduced" if low >= -1 else "refuted" if high < -1 else "not decided"
    # review of issue 44 (round 3): the shipped stand-in is dequantised from Q4_1, so its baseline is a 4-bit model and
    # the verdict is "not decided", computed from the baseline's own weights, with what the interval alone would say
    assert "the baseline is not a float model" in notes["nvfp4_verdict"]
    assert outcome == "not decided" and f"the interval alone would say {interval_says}" in notes["nvfp4_verdict"]
    # review of issue 44 (round 4), finding 3: with the baseline on Q4_1's grid no claim against it may carry a verdict
    # other than "not decided" (it published "does not hold" beside the verdict's "not decided")
    against_baseline = [c for c in results.get("claims", []) if c["baseline"] == "baseline_next_token_accuracy"]
    assert all(c["verdict"] == "not decided" for c in against_baseline), against_baseline
    assert "within one point" in notes["nvfp4_verdict"] and "99.9%" in notes["nvfp4_verdict"]
    assert f"paired bootstrap over {results['params']['n_docs']} documents" in notes["nvfp4_verdict"]
    assert values["nvfp4_mse_kl_p99"] > values["nvfp4_mse_kl"] and "llama-perplexity" in notes["nvfp4_mse_kl_p99"]
    assert values["checkpoint_error_max"] < 0.01
    assert values["station_hbm_kimi"] == "does not fit" and values["claim_4"].startswith("only with offload")
    assert values["decode_bound_holds"] is True  # no bound below a measured single-Spark decode rate
    assert values["station_hbm_verdicts_that_depend_on_utilization"] >= 1  # Maverick: 0.8 no, 0.9 yes
    # Ultra's layout is known since issue 44 (it was "KV unknown"): judged like the others, 307 GiB of NVFP4 weights
    assert values["claim_5"] == "3 of 7 in HBM, 4 more only with offload"  # all seven judged: none left "KV unknown"
    # issue 44: the KL pipeline against llama-perplexity (the committed cross-check), and NVFP4 beside llama.cpp's
    # IQ4_NL at the same 4.5 bits on the same tokens, decided by a claim that can go either way
    from sparkbooks.quant.kld_crosscheck import kld_crosscheck

    check = kld_crosscheck()  # the guide's words follow the committed record's figures, whichever way they fall
    assert ("both goals met" in notes["kl_pipeline_vs_llama_perplexity"]) == check.holds
    assert values["kl_pipeline_vs_llama_perplexity"] == round(max((check.ratio(k) for k in check.large), key=lambda r: abs(r - 1)), 3)
    assert values["kl_runtime_floor_nats"] < 0.01 and "differs from llama-perplexity's by" in notes["kl_pipeline_vs_llama_perplexity"]
    versus = [c for c in results["claims"] if c["name"] == "nvfp4_beats_iq4_nl"]
    assert len(versus) == 1 and versus[0]["verdict"] in ("holds", "does not hold", "not decided")


@pytest.mark.slow
def test_topic_clustering_beats_chance_and_names_with_the_stand_in(playbook_runs):
    values, results = recorded(playbook_runs, "topic-clustering")
    notes = {r["name"]: r["note"] for r in results["results"]}
    assert values["topics"] >= 10
    assert values["ami"] > values["ami_shuffled"] + 0.05 and "held-out" in notes["npmi"]
    # NPMI beside its chance level (keywords of the same labels permuted), decided as a claim from the run
    assert -1 <= values["npmi_shuffled"] <= 1 and "permuted" in notes["npmi_shuffled"]
    assert "npmi_beats_shuffled" in {c["name"] for c in results["claims"]}
    assert -1 < values["npmi"] <= 1 and -1 <= values["npmi_docs_eps"] <= 1 and 0.6 < values["diversity"] <= 1
    assert values["held_out_docs"] > 0 and "duplicates dropped" in notes["held_out_docs"]  # a seeded tenth, never fitted
    # review 48: a cache hit ran no model, so it names no device
    assert values["embed_device"] in ("CPU", "not run (cache)") or sb.devices.use_gpu("torch")
    assert (values["embed_device"] == "not run (cache)") == ("from the cache" in notes["embed_device"])
    assert 0 < values["bbc_largest_topic_share"] <= 1 and "largest" in notes["bbc_largest_topic_share"]
    # the labelled corpus: far above chance, and every baseline scored on the same labels
    assert values["bbc_ami"] > 0.3 and {"bbc_ami_lda", "bbc_ami_nmf", "bbc_ami_kmeans", "bbc_ami_kmeans_same_k"} <= set(values)
    assert "full articles" in notes["bbc_ami_lda"] and "full articles" in notes["bbc_ami_nmf"]  # not MiniLM's 600-char cut
    assert all("mean of 6 seeds" in notes[k] for k in ("bbc_ami", "bbc_ami_lda", "bbc_ami_kmeans_same_k"))  # not one fit
    # review of issue 48: NPMI counted on every unseen tweet (not a sparse 6k tenth), k-means at the same k beside it
    assert values["npmi_reference_docs"] >= 50_000 and values["npmi_reference_docs"] > values["held_out_docs"]
    assert {"npmi_kmeans_same_k", "ami_kmeans_same_k"} <= set(values)
    assert {"npmi_beats_kmeans", "ami_beats_kmeans"} <= {c["name"] for c in results["claims"]}
    assert {c["test"] for c in results["claims"] if c["name"].startswith("bbc_beats_")} == {"seed-bootstrap"}
    assert "bbc_beats_kmeans" in {c["name"] for c in results["claims"]}  # k-means told k = 5, the first baseline
    # review of issue 48 (round 5): NPMI against chance by a permutation p over ≥ 99 shuffles, for Step 8's merge too
    chance = {c["name"]: c for c in results["claims"] if c["test"] == "permutation"}
    assert set(chance) == {"npmi_beats_shuffled", "npmi_eps_beats_shuffled", "npmi_reduced_beats_shuffled",
                           "npmi_reduced_eps_beats_shuffled"} and all(
        0.01 - 1e-9 <= c["p"] <= 1 for c in chance.values())
    assert "mean of 99" in notes["npmi_shuffled"] and "mean of 99" in notes["npmi_reduced_shuffled"]
    assert "mean of 99" in notes["npmi_docs_eps_shuffled"]  # review 48 (round 6): chance under the ε convention too
    assert 0 < values["outlier_share"] < 0.5
    assert any("SmolLM2" in s for s in results["stand_ins"])
    # issue 48's million documents: labelled live both ways; the committed record's 1M figures, said to be its own
    assert values["predict_s_per_1k"] > 0 and 0 <= values["predict_outlier_share"] < 1
    assert values["million_cpu_minutes"] > 0 and values["million_peak_rss_gib"] > 1  # 1M × 384 float32 alone is 1.4 GiB
    assert "not this run" in notes["million_cpu_minutes"]
    assert "transform + approximate_predict" in notes["million_cpu_minutes"] and "nearest centroid" in notes["million_cpu_minutes"]
    # the full-size reduction read from its record (6 seeds, seed-level t), the coarser HDBSCAN as the trivial route
    full = {c["name"]: c for c in results["claims"] if c["name"].startswith("full_")}
    assert set(full) == {"full_merged_vs_coarse_ami"}  # NPMI in 6k held-out tweets and merge vs same merge: not decided
    assert {c["test"] for c in full.values()} == {"seed-t"} and "mean of 6 seeds; not this run" in notes["full_ami_coarse"]
    assert_no_server_left(playbook_runs, "topic-clustering")


@pytest.mark.slow
def test_vlm_cpu_path_scores_real_ocr_and_llm_and_invents_no_vlm_answer(playbook_runs):
    values, results = recorded(playbook_runs, "vlm")
    notes = {r["name"]: r["note"] for r in results["results"]}
    # 12 invoices of seed 7, never used while developing the extraction. Measured on the dev VM (normalised): page-span
    # LLM all fields 0.733, vendor 1.00, total 0.833; the first-candidate rule 0.667 (vendor 0.75, total 0.583); free-text
    # LLM 0.383. The model's own choices — the issuing company among the first lines, the total among every amount —
    # must beat the rule's "first line" and "last amount" on the same pages; the margins allow about one miss in twelve.
    assert values["schema_valid_rate"] == 1.0
    assert values["doc_accuracy"] >= 0.65 and values["doc_accuracy"] > values["free_text_accuracy"]
    assert values["vendor_accuracy"] >= 0.9 and values["total_accuracy"] >= 0.75
    for field in ("vendor", "total"):
        assert values[f"{field}_accuracy"] > float(notes[f"{field}_accuracy"].split("the rule: ")[1]), notes
    # the gain over the rule is the recorded difference, with an interval that brackets it
    low, high = (float(x) for x in re.search(r"95% CI ([-+0-9.]+) to ([-+0-9.]+)", notes["llm_gain_over_rule"]).groups())
    assert low <= values["llm_gain_over_rule"] <= high
    assert values["llm_gain_over_rule"] == pytest.approx(values["doc_accuracy"] - values["rule_accuracy"], abs=0.002)
    assert 0 < values["ocr_s_per_page"] < values["seconds_per_doc"]
    assert not {"vlm_doc_accuracy", "images_per_s_max"} & set(values), "a VLM figure without a VLM"
    notebook = (playbook_runs("vlm") / "vlm.ipynb").read_text()
    assert "No VLM endpoint: nothing is captioned" in notebook and "data:image/jpeg;base64," in notebook
    assert any("PP-OCRv4" in s and "SmolLM2" in s for s in results["stand_ins"])
    assert values["llama_server_threads"] >= 1  # review of issue 44: default_threads()'s choice is in results.json
    assert_no_server_left(playbook_runs, "vlm")


def _torchrun_workers() -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"sparkbooks.training.finetune_worker" in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_fine_tune_learns_on_held_out_data_and_serves_what_it_learned(playbook_runs):
    values, results = recorded(playbook_runs, "fine-tune")
    notes = {r["name"]: r["note"] for r in results["results"]}
    assert values["tuned_accuracy"] > values["base_accuracy"]
    assert "tuned better (exact McNemar" in notes["base_accuracy"]  # over free text: significant, not just higher
    low, high = (float(x) for x in re.search(r"95% CI ([0-9.]+)–([0-9.]+)", notes["tuned_accuracy"]).groups())
    assert low <= values["tuned_accuracy"] <= high
    # the headline is against the fair base on held-out persons (one each), with a city-clustered test beside it
    assert "100 held-out sentences (one person and place each)" in notes["tuned_accuracy"]
    assert "country-clustered" in notes["tuned_accuracy"] and 0 < values["tuned_vs_base_country_clustered_p"] <= 1
    served = float(re.search(r"served q8_0: ([0-9.]+)", notes["torch_accuracy"]).group(1))
    assert abs(served - values["torch_accuracy"]) <= 0.1 and "identical answers" in notes["torch_accuracy"]
    assert 0.8 < values["planner_activations_ratio"] < 1.25
    assert values["tokens_per_s_2_ranks"] > 0 and values["tokens_per_s_1_rank"] > 0
    assert values["scaling_efficiency"] == pytest.approx(
        values["tokens_per_s_2_ranks"] / (2 * values["tokens_per_s_1_rank"]), abs=0.01)
    assert values["allreduce_busbw_GBps"] > 0 and "loopback" in notes["allreduce_busbw_GBps"]
    assert values["held_out_answers_in_training"] == 0  # new people, places and years (issue 46 item 2)
    assert "constrained" in notes["base_constrained_accuracy"] and "steps 2–3" in notes["scaling_efficiency"]
    assert "1 thread per rank on a CPU: core scaling" in notes["scaling_efficiency"]  # review 46 item 7
    claim = next(c for c in results["claims"] if c["name"] == "tuned_vs_constrained_base")
    if values["tuned_vs_base_country_clustered_p"] >= 0.05:  # review 46 item 1: the stricter test decides the claim
        assert claim["verdict"] != "holds"
    assert "country-clustered" in claim["sentence"] and "templates never trained on" in claim["sentence"]
    # review 46 (2nd) finding 1: only a tuned win on the templates never trained on earns "more than the format"
    unseen = notes["tuned_vs_base_unseen_templates_p"]
    assert "exact McNemar" in unseen and 0 <= values["tuned_vs_base_unseen_templates_p"] <= 1
    if "tuned better" not in unseen:
        assert "more than the format" not in claim["sentence"]
        if claim["verdict"] == "holds":
            assert "templates seen in training" in claim["sentence"]
    assert any("SmolLM2" in s and "Llama 3.1 8B" in s for s in results["stand_ins"])
    # review 46 (3rd) finding 1: the reader sees the verdict in the words the run decided, and no typed "none in training"
    seen = shown(playbook_runs, "fine-tune")
    assert claim["sentence"] in seen
    assert "none of them in training" not in seen and "countries also occur in training" in seen
    assert (playbook_runs("fine-tune") / "work" / "ranks-2" / "adapter" / "adapter_config.json").is_file()
    assert _torchrun_workers() == [] and not list((playbook_runs("fine-tune") / "work").glob("*/.adapter.tmp"))
    assert_no_server_left(playbook_runs, "fine-tune")


@pytest.mark.slow
def test_rag_scores_every_stage_on_the_frozen_key_and_says_which_one_limits(playbook_runs):
    values, results = recorded(playbook_runs, "rag")
    notes = {r["name"]: r["note"] for r in results["results"]}
    # review 49 (round 5) #1: answer-or-abstain beside refusing every question, decided on the same questions
    refuse_all = next(c for c in results["claims"] if c["name"] == "system_vs_refusing_everything")
    assert 0 < values["system_refuse_all_em"] < 1 and refuse_all["test"] == "mcnemar"
    assert refuse_all["sentence"] in shown(playbook_runs, "rag")
    assert values["recall5_hybrid"] >= 0.8 and values["recall5_bm25"] >= 0.7 and values["recall5_dense"] >= 0.7
    low, high = (float(x) for x in re.match(r"\[([0-9.]+), ([0-9.]+)\]", notes["recall5_hybrid"]).groups())
    assert low <= values["recall5_hybrid"] <= high  # the interval is around the figure it qualifies
    assert "of 6:" in notes["retrieval_differences"]  # three pairs at two depths, Holm-adjusted together
    assert 0 <= values["answer_em"] <= 1 and "6 answerable (seeded sample)" in notes["answer_em"]
    assert 0 <= values["answer_f1"] <= 1 and "bootstrap" in notes["answer_f1"]
    # the floor is the best single constant reply, decided against the 2 % goal by a claim (not pinned here)
    assert "containment scorer credited it on 12" in notes["scorer_floor_em"] and values["scorer_floor_goal"] == 0.02
    floor = next(c for c in results["claims"] if c["name"] == "scorer_floor_within_goal")
    assert floor["verdict"] == ("holds" if values["scorer_floor_em"] < 0.02 else "does not hold")
    # the gate is in the answer path: the system scored SQuAD 2.0 style, refusals counted from the run
    assert values["gate_refused_asked"] >= 1 and "LLM not asked" in notes["gate_refused_asked"]
    assert "HasAns EM" in notes["system_em"] and "NoAns" in notes["system_em"] and "gate on" in notes["system_em"]
    assert values["gate_auroc_question_length"] < values["gate_auroc"]
    assert "gate_vs_question_length" in {c["name"] for c in results["claims"]}
    # the reply budget fits: few replies cut at answer_tokens (was 14 of 18 at 64 tokens without the blank-line stop)
    assert values["answers_truncated"] <= 0.2 * 18, notes["answers_truncated"]
    assert {"constant_em", "echo_em", "closed_book_em", "constant_f1", "echo_f1"} <= set(values)
    assert 0 <= values["refusal_rate_unanswerable"] <= 1 and "of 12" in notes["refusal_rate_unanswerable"]
    assert 0.5 <= values["gate_auroc"] <= 1 and "near-miss" in notes["gate_auroc"]
    assert "out of fold" in notes["gate_refusals"] and "out of fold" in notes["gate_false_refusals"]
    assert values["limiting_stage"] in ("retrieval", "generation", "undecided") and "drawn with seed 0" in notes["limiting_stage"]
    assert {c["name"] for c in results["claims"]} >= {"answer_em_vs_constant", "answer_f1_vs_echo", "gate_vs_no_gate"}
    assert values["embed_chunks_per_s"] > 0 and values["generate_p50_s"] > 0
    assert any("SmolLM2" in s and "Nemotron" in s for s in results["stand_ins"])
    notebook = (playbook_runs("rag") / "rag.ipynb").read_text()
    assert "reopened: 876 chunks; same top 5: True" in notebook and "written twice, still 876" in notebook
    assert (playbook_runs("rag") / "work" / "index.db").is_dir()
    assert_no_server_left(playbook_runs, "rag")
    # the ANN frontier on real tweet vectors: exact search scores 1.0, recall rises with ef / nprobe, the first crossing
    import pandas as pd

    assert values["ann_exact_recall"] == 1.0 and "threads" in notes["ann_exact_qps"]
    frontier = pd.read_csv(playbook_runs("rag") / "work" / "ann_frontier.csv")
    assert frontier["engine"].nunique() == 3
    for key, curve in zip(("faiss_hnsw", "faiss_ivf", "lite_hnsw"), (g for _, g in frontier.groupby("engine", sort=False))):
        curve = curve.sort_values("value")
        assert curve["recall@10"].iloc[-1] >= curve["recall@10"].iloc[0]
        reached = curve[curve["recall@10"] >= 0.95]["value"]
        assert values[f"ann_{key}_first"] == (reached.iloc[0] if len(reached) else curve["value"].iloc[-1])
    assert {"ann_faiss_hnsw_vs_exact", "ann_lite_hnsw_vs_exact"} <= {c["name"] for c in results["claims"]}
    assert "interleaved" in notes["ann_faiss_hnsw_qps"] and "timings ≥ 0.1 s" in notes["ann_exact_qps"]
    # issue 49: the full-size frontier (≥ 50k real vectors, every timing ≥ 0.2 s) is in the run's results, labelled
    assert values["ann_full_base"] >= 50_000 and "committed benchmark record, not this run" in notes["ann_full_base"]
    assert values["ann_full_shortest_timing_s"] >= 0.2 and values["ann_full_faiss_hnsw_first"] in (10, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    # review 49 #2/#8: the closing note is computed from the run and says so when echo beats the answers
    claims = {c["name"]: c for c in results["claims"]}
    if claims["answer_f1_vs_echo"]["verdict"] == "does not hold":
        assert "Echoing the top passage is the better answer on this run" in notebook
    assert f"EM {values['answer_em']:.3f}, F1 {values['answer_f1']:.3f}" in notebook
    assert "chunks/s" in notebook and "1-minute load" in notes["embed_chunks_per_s"]


@pytest.mark.slow
def test_txt2kg_scores_every_stage_and_its_graph_outlives_the_kernel(playbook_runs):
    from sparkbooks.retrieval.kg.store import GraphStore

    values, results = recorded(playbook_runs, "txt2kg")
    notes = {r["name"]: r["note"] for r in results["results"]}
    assert values["schema_valid_rate"] == 1  # constrained decoding: every answer parses
    assert 0 <= values["evidence_drop_rate"] <= 1 and 0 <= values["triple_f1"] <= 1
    n_questions = 3 * results["params"]["per_hop"]
    for key in ("vector_accuracy", "graph_accuracy", "graph_gold_accuracy", "closed_book_accuracy",
                "closed_book_accuracy_real", "closed_book_accuracy_counterfactual"):
        k, n = (int(x) for x in re.match(r"(\d+)/(\d+) ", notes[key]).groups())
        assert n == n_questions and values[key] == pytest.approx(k / n, abs=1e-3)
    assert "in context 100%" in notes["graph_gold_accuracy"] and "support 1.00" in notes["graph_gold_accuracy"]
    # resolution judged over every surface form the key lists, against merging nothing (issue 45)
    assert values["resolver_pairwise_f1"] >= 0.95 > values["null_resolver_pairwise_f1"] == 0
    assert 0.8 <= values["context_tokens_graph_vs_vector"] <= 1.2  # one token budget for both routes
    assert values["closed_book_accuracy_counterfactual"] <= 0.2  # the counterfactual world is not in the model's memory
    assert {c["name"] for c in results["claims"]} >= {"graph_vs_vector", "graph_gold_vs_vector", "resolver_vs_null",
                                                       "counterfactual_closed_book_vs_real"}
    notebook = (playbook_runs("txt2kg") / "txt2kg.ipynb").read_text()
    assert "(written twice, reopened: the same)" in notebook and "graph unchanged: Counts(entities=" in notebook
    assert notebook.count("refused ") >= 4 and "RAN: " not in notebook and "Holm" in notebook
    work = playbook_runs("txt2kg") / "work"
    with GraphStore(work / "extracted.lbug") as store:  # the kernel is gone: the file alone holds the graph
        assert store.counts().facts == values["extracted_graph_facts"]
    with GraphStore(work / "gold.lbug") as store:
        assert store.counts().entities == values["gold_graph_entities"]
    page = (work / "graph.html").read_text()
    assert "vis.Network" in page and not any(f'{attr}="http' in page for attr in ("src", "href"))
    assert any("SmolLM2" in s and "Nemotron" in s for s in results["stand_ins"])
    assert_no_server_left(playbook_runs, "txt2kg")


@pytest.mark.slow
def test_pretrain_learns_measures_itself_and_keeps_its_checkpoints(playbook_runs):
    import torch

    values, results = recorded(playbook_runs, "pretrain")
    notes = {r["name"]: r["note"] for r in results["results"]}
    claims = {c["name"]: c for c in results["claims"]}
    # issue 47: the model must end below the count-bigram table on the same validation windows, decided by the claim
    assert values["val_loss"] < values["bigram_ce"] < values["unigram_ce"]
    assert claims["beats_bigram"]["verdict"] == "holds" and claims["beats_unigram"]["verdict"] == "holds"
    assert values["val_loss"] < math.log(results["params"]["vocab_size"]) - 0.5  # well below a uniform guess
    # review 47: the windows spread over ≥ 50 held-out articles (were 3), and the trigram table is a claim too, its
    # verdict wherever it falls and the same as its interval says
    assert int(re.search(r"spread over (\d+) of", notes["val_loss"]).group(1)) >= 50
    trigram = claims["beats_trigram"]
    assert values["trigram_ce"] < values["bigram_ce"] and trigram["baseline"] == "trigram_ce"
    assert trigram["verdict"] == ("holds" if trigram["high"] < 0 else "does not hold" if trigram["low"] > 0 else "not decided")
    assert values["mfu"] > 0.01 and values["tokens_per_s"] > 0 and values["matmul_peak_GFLOPs"] > 0
    # the headline MFU is over the nominal (spec) peak, named, from the core's own FLOPs per cycle (review 47: Zen 4 is
    # 32, not 64), not over a timed peak that load moves (round 3 #1: 0.959 published); MFU over the timed peak is
    # context, and the two stand in the inverse ratio of the peaks
    assert values["mfu"] < 0.6 and "over the nominal peak" in notes["mfu"] and "FLOP/cycle" in notes["mfu"]
    assert values["mfu_timed"] > 0 and "moves with load" in notes["mfu_timed"]
    nominal = values["matmul_peak_GFLOPs"] * values["mfu_timed"] / values["mfu"]
    stated = float(re.search(r"nominal peak, ([0-9,]+) GFLOP/s", notes["mfu"]).group(1).replace(",", ""))
    assert nominal == pytest.approx(stated, rel=0.03)  # MFUs are recorded to 3 decimals
    if "AMD family 0x19" in notes["mfu"]:
        assert "× 32 FP32 FLOP/cycle" in notes["mfu"]
    # review 47: BF16 is timed, not assumed slower; the prose says what the timing found
    ratio = values["matmul_peak_bf16_GFLOPs"] / values["matmul_peak_GFLOPs"]
    notebook = (playbook_runs("pretrain") / "pretrain.ipynb").read_text()
    assert ("BF16 is faster on this CPU" in notebook) == (ratio > 1.1) and "several times *slower*" not in notebook
    times, side = re.search(r"timed peak ([0-9.]+)× the nominal one: (above|below)", notebook).groups()
    listed = values["nominal_peak_listed_GFLOPs"]  # before raise_to_timed: the figure the sentence compares with
    assert (side == "above") == (values["matmul_peak_GFLOPs"] > listed) and float(times) == pytest.approx(
        values["matmul_peak_GFLOPs"] / listed, abs=0.02)
    # review 47: the timed BF16 matmul (2× FP32's FLOPs per cycle on AVX-512 BF16 cores) above twice the nominal FP32
    # peak meant the listed clock was a base clock and MFU was overstated; the headline's peak is now never below either
    assert nominal >= 0.97 * max(listed, values["matmul_peak_GFLOPs"])
    if "avx512_bf16" in Path("/proc/cpuinfo").read_text() and "amx_bf16" not in Path("/proc/cpuinfo").read_text():
        assert values["matmul_peak_bf16_GFLOPs"] <= 2 * nominal * 1.03
    # review 47 round 2: each comparison's detectable difference comes from its own per-seed differences (the old
    # per-arm figure measured every arm against the baseline, 3.5× off for removing_rht), at the family's level, and is
    # read against how far the continuation moved the baseline
    arms = ["nvfp4_rtn", "nvfp4_recipe", *results["params"]["recipes"]]
    from sparkbooks.training.pretrain.study import detectable_gap

    family = {"rtn_costs_loss", "recipe_costs_loss", "recipe_beats_rtn", "removing_2d_hurts", "removing_rht_hurts",
              "removing_sr_hurts", "removing_kept_blocks_hurts"}
    per_seed = {}  # (seed, run) → master loss, from the ablation's own metrics
    for metrics_file in (playbook_runs("pretrain") / "work" / "ablation").glob("seed*/*/metrics.json"):
        final = json.loads(metrics_file.read_text())["evals"][-1]
        per_seed[(metrics_file.parts[-3], metrics_file.parts[-2])] = final.get("master_val_loss", final["val_loss"])
    pairs = {"rtn_costs_loss": ("nvfp4_rtn", "baseline"), "recipe_costs_loss": ("nvfp4_recipe", "baseline"),
             "recipe_beats_rtn": ("nvfp4_recipe", "nvfp4_rtn"), "removing_rht_hurts": ("nvfp4_no_rht", "nvfp4_recipe")}
    for name, (arm, reference) in pairs.items():
        seeds = sorted({s for s, _ in per_seed})
        diffs = [per_seed[(s, arm)] - per_seed[(s, reference)] for s in seeds]
        assert values[f"detectable_{name}"] == pytest.approx(detectable_gap(diffs, alpha=0.05 / len(family)), abs=1e-4)
        assert "the baseline moved" in notes[f"detectable_{name}"]
    assert "comparisons decided" in notebook
    # review 47 round 3: master weights scored unquantised include their adaptation to the quantiser they trained
    # through — not "training's effect alone"; an undecided interval says what it still allows, not "too small to see";
    # summaries keep the body's qualifiers (an MFU over a timing-inferred peak is an upper bound)
    for overclaim in ("training's effect alone", "does not close NVFP4's gap", "below what this scale resolves",
                      "the verdict it gives", "Before any gap is read", "plus what training added",
                      "apart from what training added"):
        assert overclaim not in notebook
    if any(claims[name]["verdict"] == "not decided" for name in family):
        assert re.search(r"not decided: its 99\.29% interval allows anything from", notebook)
    assert "(95 %, uncorrected: the family's claims decide)" in notebook  # round 4: the summary's per-arm intervals
    if "raised to" in notes["mfu"]:
        assert re.search(r"Main run:.*MFU ≤ [0-9.]+%", notebook) and "measured MFU (≤ " in notebook
    assert "of the blocks' linear weights" in notebook
    ablation_claim = claims["ablation_baseline_beats_bigram"]
    assert ablation_claim["verdict"] == ("holds" if ablation_claim["high"] < 0 else "does not hold"
                                         if ablation_claim["low"] > 0 else "not decided")
    # what the NVFP4 variant keeps in high precision is printed against NVIDIA's share, not labelled "NVIDIA's recipe"
    assert "NVIDIA keeps blocks in BF16 too" in notebook
    assert "no decoder block in high precision" in notebook  # round-to-nearest keeps none
    assert "NVIDIA's measured 56%" not in notebook and "spec sheet 125" not in notebook
    # sized on NVIDIA's measured Station rates: 1,399 TFLOP/s BF16, 2,347 TFLOP/s NVFP4, over 6 FLOPs · 250k tokens/s
    assert values["claim_max_params_station_bf16_B"] == pytest.approx(1_399e12 / (6 * 250_000) / 1e9, abs=0.01)
    assert values["claim_max_params_station_nvfp4_B"] == pytest.approx(2_347e12 / (6 * 250_000) / 1e9, abs=0.01)
    # h47: the ablation forks the main run's mid-run checkpoint (¾ through), which is below its bigram table (the
    # from-scratch arms of round 3 ended above it, 2.77 vs 2.57), and its baseline arm ends below it too, over ≥ 6 seeds
    assert values["ablation_start_val_loss"] < values["bigram_ce_ablation"]
    assert ablation_claim["verdict"] == "holds"
    # review 47: the fork of a finished schedule barely moved (its gaps measured rounding): the mid-run fork trains —
    # a claim that can fail — and every arm's rounding alone (scored at step 0) is recorded beside its final gap
    assert claims["continuation_trains"]["verdict"] == "holds" and claims["continuation_trains"]["high"] < 0
    assert all(f"rounding_gap_{recipe}" in values for recipe in arms) and "rounding at the fork" in notebook
    # round-to-nearest, the full recipe and the recipe less each ingredient, every comparison a claim decided by its
    # seed-level interval on the master weights; the recipe's gap to the baseline within the issue's ±0.01 nats
    assert family <= set(claims)
    for name in family:  # review 47: one family of comparisons, each a paired t interval at the Bonferroni level
        assert claims[name]["test"] == "seed-t" and claims[name]["low"] <= claims[name]["high"]
        assert claims[name]["alpha"] == pytest.approx(0.05 / len(family)) and "at 99.29%" in claims[name]["sentence"]
        assert claims[name]["metric"].startswith(("master_val_loss_ablation_", "val_loss_baseline_ablation"))
    # review 47: "within the paper's gap" (0.036 nats) could not fail where round-to-nearest costs a tenth of it
    assert "recipe_within_papers_gap" not in claims and "could not fail on this run and is not claimed" in notebook
    low, high = (float(x) for x in re.search(r"CI ([-+0-9.]+)…([-+0-9.]+)", notes["val_loss_gap_nvfp4_recipe"]).groups())
    assert (high - low) / 2 <= 0.01
    p = results["params"]
    for recipe in arms:
        note = notes[f"val_loss_gap_{recipe}"]
        assert "continued from the checkpoint" in note and "tokens per run" in note
        assert "master weights unquantised" in notes[f"master_gap_{recipe}"]
        low, high = (float(x) for x in re.search(r"seed-level 95% CI ([-+0-9.]+)…([-+0-9.]+)", note).groups())
        assert low <= values[f"val_loss_gap_{recipe}"] <= high and int(re.search(r"(\d+) seeds", note).group(1)) >= 6
        # review 47 round 2: verdict words only from the family's claims, never from an uncorrected 95 % interval
        assert not any(w in note + notes[f"master_gap_{recipe}"] for w in ("above the baseline", "below the baseline"))
    work = playbook_runs("pretrain") / "work"
    metrics = json.loads((work / "main" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"  # torchrun, two ranks
    fork = results["params"]["steps"] - results["params"]["steps"] // 4  # the ablation's fork, ¾ through the run
    state = torch.load(work / "main" / "checkpoints" / f"step-{fork:06d}.pt", weights_only=False)
    assert state["step"] == fork and len(state["history"]) == fork  # written whole, resumable after the kernel is gone
    shares: dict[int, set] = {}  # kept blocks → the high-precision shares of the arms keeping them: one share each
    for run in (work / "ablation").glob("seed*/nvfp4_*"):
        kept = json.loads((run / "config.json").read_text())["keep_last"]
        shares.setdefault(kept, set()).add(json.loads((run / "metrics.json").read_text())["high_precision_share"])
    assert set(shares) == {0, p["ablation_keep_last"]} and all(len(v) == 1 for v in shares.values())
    assert 0 < min(shares[0]) < min(shares[p["ablation_keep_last"]]) < 0.5
    configs = list((work / "ablation").glob("seed*/*/config.json"))
    assert len(configs) == p["ablation_seeds"] * (len(arms) + 1)
    starts = {json.loads(c.read_text())["init_from"] for c in configs}  # one start, the main run's final weights
    assert len(starts) == 1 and Path(starts.pop()).parts[-2:] == ("main", "checkpoints")  # the mid-run fork
    notebook = (playbook_runs("pretrain") / "pretrain.ipynb").read_text()
    assert "torchrun --nnodes=2" in notebook and "seed-level interval" in notebook
    assert "DGX Spark (GB10): sm_121 — not in TE's NVFP4 training list" in notebook  # computed from TE's documented SMs
    assert any("simulated" in s for s in results["stand_ins"])
    # review 47 #5: the calibrated rows are printed as upper bounds (an 8 B model's MFU at ~1 B), nanochat quoted
    assert "upper bound: MFU measured on a 8.0 B model at sequence 4,096" in notebook
    assert "Cross-check: NVIDIA station-nanochat README" in notebook
    # review 47 #6: the simulated step's cost is measured (baseline ÷ NVFP4 tokens/s), not typed in the intro
    for recipe in arms:
        cost = values[f"nvfp4_sim_cost_{recipe}"]
        printed = re.search(rf"simulated {recipe} step: .*? — ([0-9.]+)× a float32 step on this machine", notebook)
        assert cost > 1 and float(printed.group(1)) == pytest.approx(cost, abs=0.051)
    # review 47 #2: the closing note says plainly whether the headline model beats the trigram table, from the claim
    said = {"holds": "the model beats it", "does not hold": "the model does NOT beat it", "not decided": "not decided"}
    assert f"a practitioner tries: {said[trigram['verdict']]} (" in notebook
    # round 3 #4: the samples stand beside the trigram table's too, and a lost trigram claim says why
    assert "trigram table · val" in notebook and (trigram["verdict"] == "holds" or "— why: the table counted" in notebook)


@pytest.mark.slow
def test_robot_rl_solves_its_task_on_every_seed_and_shows_it(playbook_runs):
    values, results = recorded(playbook_runs, "robot-rl")
    notes = {r["name"]: r["note"] for r in results["results"]}
    n = results["params"]["n_seeds"]
    assert n >= sb.evidence.MIN_SEEDS  # seed-level claims refuse fewer (review: 5 seeds slipped past as bare tuples)
    # "solved" from fresh episodes, per seed, with its interval — not the first evaluation that crossed (a selection)
    assert values["seeds_solved"] == f"{n} of {n}" and "not the first evaluation that crossed" in notes["seeds_solved"]
    assert "Wilson 95% interval" in notes["seeds_solved"] and values["seeds_crossed"] == f"{n} of {n}"
    assert values["meets_threshold"] is True and values["beats_random"] is True and values["success_rate"] == 1.0
    low, high = (float(x) for x in re.search(r"CI ([0-9.]+)–([0-9.]+)", notes["ppo_iqm"]).groups())
    assert 950 <= low <= values["ppo_iqm"] <= high and values["random_iqm"] < 100  # IQM over seeds, with its interval
    assert values["final_return"] >= 950 > 100 > values["random_return"] and values["p_improvement_vs_random"] == 1.0
    assert 0 <= values["p_improvement_vs_lqr"] <= 1 and "stratified bootstrap" in notes["p_improvement_vs_lqr"]
    claims = {c["name"]: c for c in results["claims"]}
    assert claims["ppo_vs_random"]["verdict"] == "holds" and claims["ppo_vs_random"]["metric"] == "ppo_iqm"
    low, high = (int(x.replace(",", "")) for x in re.search(r"range ([0-9,]+)–([0-9,]+)", notes["steps_to_threshold"]).groups())
    assert low <= values["steps_to_threshold"] <= high <= 60_000
    # both trainers timed the same way: training alone, evaluation kept apart
    assert "evaluation excluded" in notes["time_to_threshold_s"] and "evaluation excluded" in notes["batched_train_s"]
    assert values["sim_steps_per_s_max"] > values["train_steps_per_s_max"] > 0  # the updates cost something
    notebook = (playbook_runs("robot-rl") / "robot-rl.ipynb").read_text()
    assert notebook.count("data:image/gif;base64,") >= 3  # before, after (SB3) and the rsl_rl policy from its ONNX file
    assert "resumed from step" in notebook and "refused: InvertedPendulum-v5-seed0.zip was saved for observations (4,)" in notebook
    checkpoints = playbook_runs("robot-rl") / "work" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*.zip")) == [f"InvertedPendulum-v5-seed{s}.zip" for s in range(n)]
    # The batched path: one step from identical states on 8 worlds agrees with C; rsl_rl's policy passes in Gymnasium.
    assert 0 <= values["warp_vs_c_one_step_diff"] < 1e-5 and "on 8 worlds with different controls" in notes["warp_vs_c_one_step_diff"]
    assert values["warp_steps_per_s_max"] > 0
    assert values["batched_fresh_return"] >= 950 and 0 < values["batched_solved_steps"] <= 64 * 16 * 60
    device = sb.robot.batched.choose_device("auto")[0]  # Warp's CPU device where Warp sees no GPU
    assert f"MuJoCo Warp on {device!r}" in notebook and f"Warp copies on {device}" in notes["batched_solved_steps"]
    # Export: the ONNX file matches torch, is timed on one thread, and holds the pole on its own
    assert values["onnx_max_diff"] < 1e-5 and 0 < values["onnx_us_per_step"] and values["onnx_fresh_return"] >= 950
    # Robustness: every controller on the same randomised worlds, rates with intervals, the claim decided from them
    for key in ("randomised_success", "lqr_randomised_success", "rsl_randomised_success"):
        assert 0 <= values[key] <= 1 and "CI" in notes[key]
    assert claims["ppo_robust_vs_lqr"]["test"] == "paired-bootstrap"
    assert 0 <= values["dr_randomised_success"] <= 1 and claims["dr_vs_nominal"]["test"] == "paired-bootstrap"
    # review finding: the classical answer to randomisation (LQR detuned on other worlds) stands beside the DR policy,
    # and the verdict between them is computed, whichever way it falls
    assert 0 <= values["tuned_lqr_randomised_success"] <= 1 and "LQR detuned on" in notebook
    assert claims["dr_vs_tuned_lqr"]["verdict"] in ("holds", "does not hold", "not decided")
    assert "training only" in notes["dr_train_s"]
    # Step 10: Reachy Mini from its checksummed wheel; the live seed judged in C MuJoCo beside its untrained self and the
    # rest pose on the same targets, exported to ONNX and filmed from that file; the committed record shown when present
    assert "Reachy Mini from the PyPI wheel reachy-mini==1.13.0: 9 position actuators, 5 loop closures" in notebook
    for key in ("head_trained_error_deg", "head_untrained_error_deg", "head_rest_error_deg", "head_converged_ik_error_deg"):
        assert 0 <= values[key] < 90 and "targets in C MuJoCo (contacts on)" in notes[key]
    assert 5 < values["head_rest_error_deg"] < 25  # holding still, the error is the target's size (±14° per axis)
    assert claims["head_live_vs_untrained"]["test"] == "paired-bootstrap" and values["head_onnx_max_diff"] < 1e-5
    assert claims["head_live_vs_converged_ik"]["test"] == "paired-bootstrap"  # the classical controller tried first
    # every seed of the committed record trained the same steps (a time budget let the machine's load decide); its
    # verdicts against converged IK, on the model and mismatched, are claims computed from the record's intervals
    assert "steps of training per seed" in notebook and "a Stewart platform's IK is the easy direction" in notebook
    for key in ("head_record_vs_converged_ik", "head_record_vs_converged_ik_mismatched"):
        assert (key in claims) == sb.robot.head_task.RESULT.exists()
    # the box's corners are played and the sentence about them is computed; the one-seed DR limit is stated
    assert "one training seed of each" in claims["dr_vs_nominal"]["text"]
    held = re.search(r"the box's four corners \(used for neither tuning nor training\): (.*?)\\n", notebook).group(1)
    for name, key in (("LQR (R tuned)", "tuned_lqr_corners_held"), ("rsl_rl DR", "dr_corners_held")):
        assert (values[key] == 4) == (name in held.split("held by ")[-1].split(", "))  # the sentence is the table's
    if sb.robot.head_task.RESULT.exists():
        assert len(json.loads(sb.robot.head_task.RESULT.read_text())["seeds"]) >= sb.evidence.MIN_SEEDS
    assert notebook.count("data:image/gif;base64,") >= 4 and "final error" in notebook  # + Reachy Mini from its ONNX file
    assert ("head_record_ratio" in values) == sb.robot.head_task.RESULT.exists()


@pytest.mark.slow
def test_portfolio_cvar_claims_only_what_its_statistics_support(playbook_runs):
    values, results = recorded(playbook_runs, "portfolio-cvar")
    notes = {r["name"]: r["note"] for r in results["results"]}
    p = float(re.search(r"HAC p = ([0-9.]+)", notes["sharpe_diff_vs_equal_weight"]).group(1))
    assert ("not significant" in notes["sharpe_diff_vs_equal_weight"]) == (p >= 0.05)
    assert values["kde_kurtosis_kept"] < 1 < values["fhs_kurtosis_kept"] + 0.5  # the tail table is measured, not assumed
    assert 0 < values["var95_breach_rate"] < 0.5 and values["cvar_shortfall_ratio"] > 0
    assert values["nvidia_problem_s"] > 0 and "NVIDIA's exact formulation" in notes["nvidia_problem_s"]
    assert "16.47" in notes["nvidia_problem_s"] and "theirs" in notes["nvidia_problem_s"]
    # at most 10 assets: the search's outcome, whatever the machine's speed that minute — a proven gap (the bound never
    # above the portfolio found; the notebook asserts the portfolio feasible) and a stop that says why it stopped
    assert card_search_problems(values["nvidia_card_gap"], values["nvidia_card_s"], notes["nvidia_card_gap"],
                                results["params"], bounds=values["nvidia_card_bounds"]) == []
    assert values["nvidia_card_floor_weight"] >= 0.1 - 1e-9  # NVDA's floor is kept, as in NVIDIA's programme
    assert "implies ≈ 0.8%" in notes["nvidia_card_s"]  # their own LP bounds their 10-asset answer
    assert values["nvidia_card_s"] > 0 and "theirs: cuOpt 45.3 s" in notes["nvidia_card_s"]


def card_search_problems(gap: float, seconds: float, note: str, params: dict, bounds: int | None = None) -> list[str]:
    """What is wrong with a recorded cardinality search: its gap a proof, its status the reason it stopped, and its
    bound named for what it is (``bounds`` LPs solved below the root; none: the gap is to the LP relaxation)."""
    status = re.search(r"; (gap target met|optimal|support limit|time limit|unresolved LP)$", note)
    if status is None:
        return [f"no stop reason in {note!r}"]
    status, target, limit = status.group(1), params["card_gap"], params["card_time_limit"]
    problems = [] if gap >= 0 else [f"gap {gap} < 0: the bound is above the portfolio, no proof"]
    if status == "optimal" and gap > 1e-9:
        problems.append(f"'optimal' with gap {gap}")
    if status == "gap target met" and gap > target:
        problems.append(f"'gap target met' with gap {gap} above the target {target}")
    if status in ("support limit", "time limit") and gap < target:  # it would have stopped at the target
        problems.append(f"{status!r} with gap {gap} below the target {target}")
    if status == "time limit" and seconds < limit:
        problems.append(f"'time limit' after {seconds} s of its {limit} s")
    if bounds == 0 and "LP relaxation" not in note:
        problems.append(f"no branching, yet the gap is not called the gap to the LP relaxation: {note!r}")
    return problems


def test_card_search_check_catches_an_unproven_or_mislabelled_gap():
    params = {"card_gap": 0.01, "card_time_limit": 15.0}
    assert card_search_problems(0.008, 3.1, "certified: …; gap target met", params) == []
    assert card_search_problems(0.052, 15.2, "certified: …; time limit", params) == []  # slow machine: still a proof
    # a search that never branched proves only the gap to the LP relaxation, and must say so
    root_only = "proven: best 10-asset portfolio vs the least bound of the branch-and-bound's open nodes; support limit"
    assert card_search_problems(0.07, 40.0, root_only, {"card_gap": 0.01, "card_time_limit": 300.0}, bounds=0) != []
    named = "proven: best 10-asset portfolio vs the LP relaxation (the root bound: …); support limit"
    assert card_search_problems(0.07, 40.0, named, {"card_gap": 0.01, "card_time_limit": 300.0}, bounds=0) == []
    assert card_search_problems(0.021, 3.1, "certified: …; support limit", params) == []  # the count cap: any machine
    assert card_search_problems(0.021, 3.1, "certified: …; unresolved LP", params) == []
    assert card_search_problems(-0.001, 3.1, "certified: …; gap target met", params)  # bound above the portfolio
    assert card_search_problems(0.02, 3.1, "certified: …; gap target met", params)
    assert card_search_problems(0.02, 3.1, "certified: …; time limit", params)  # stopped early, called it the limit
    assert card_search_problems(0.005, 3.1, "certified: …; support limit", params)  # below the target: not the cap
    assert card_search_problems(0.02, 3.1, "certified: …; local optimum", params)  # no longer a status
    assert card_search_problems(0.001, 1.0, "certified: …; optimal", params)
    assert card_search_problems(0.01, 1.0, "certified: …", params)


@pytest.mark.slow
def test_single_cell_names_are_earned_and_integration_is_tested_where_centring_fails(playbook_runs):
    values, results = recorded(playbook_runs, "single-cell")
    notes = {r["name"]: r["note"] for r in results["results"]}
    clusters = {k: v for k, v in values.items() if k.startswith("cluster_")}
    assert values["earned_types"] >= 5 and all(not str(v).startswith(("ambiguous", "mixed")) for v in clusters.values())
    assert all("earned" in notes[k] for k in clusters)
    # every cluster the reference can judge agrees with its name (not a pooled share the big clusters carry)
    assert values["reference_clusters_agreeing"] == values["reference_clusters_judged"] >= 4
    assert values["hard_ari_harmony"] > values["hard_ari_centred"] + 0.1 and values["easy_ari_centred"] > 0.9
    assert values["hard_none_vs_centred_ari"] < 1.0  # two clusterings, not one scored twice
    # differential expression with a known answer: PyDESeq2 on donor sums near its nominal level — the 0.06 goal is a
    # claim and a printed verdict, not asserted here — and the per-cell Wilcoxon far above it
    assert "per seed" in notes["pseudobulk_fdr"] and values["pseudobulk_fdr"] <= 0.12 and values["pseudobulk_power"] >= 0.7
    assert values["wilcoxon_fdr"] > 2 * max(values["pseudobulk_fdr"], 0.05)
    verdicts = {c["name"]: c["verdict"] for c in results["claims"]}
    claims = {c["name"]: c for c in results["claims"]}
    assert verdicts["pseudobulk_fdr_below_wilcoxon"] == verdicts["wilcoxon_fdr_inflated"] == "holds"
    # review 43 (round 6): seeds are the unit of replication — every DE claim a seed-level t interval over ≥ 6 simulations
    de_claims = [n for n in claims if n.startswith(("pseudobulk_", "wilcoxon_"))]
    assert len(de_claims) == 8 and all(claims[n]["test"] == "seed-t" for n in de_claims if "mock" not in n), de_claims
    # … calibration apart from ranking: power at a matched empirical FDR, beside the field's moderated t and the trivial t
    for method in ("pseudobulk", "voom", "logcpm_t", "pseudobulk_t"):
        assert 0 < values[f"{method}_matched_power"] <= 1 and values[f"{method}_fdr"] < values["wilcoxon_fdr"]
    assert values["pseudobulk_matched_power"] <= values["pseudobulk_power"]  # at BH 0.05 its FDR is above 0.05
    # review 43 round 7: the power goal judged where the FDR is matched, not at PyDESeq2's liberal BH threshold
    assert claims["pseudobulk_power_reaches_goal"]["metric"] == "pseudobulk_matched_power"
    assert "matched" in notes["de_power_goal"] and "voom_fdr_within_goal" in verdicts  # one definition; voom judged too
    assert "useT" in notes["pseudobulk_t_fdr"] and "limma-voom" in notes["voom_fdr"]
    # … and a mock comparison with no true difference: every call false; cells as replicates call hundreds
    assert values["mock_calls_wilcoxon"] > 100 * max(values["mock_calls_voom"], 1)
    # … and judged: the share of mock comparisons with any call is a claim against the BH level
    assert claims["pseudobulk_mock_calibrated"]["metric"] == "mock_any_share_pseudobulk"
    assert "pseudobulk_fdr_near_nominal" not in verdicts
    # iterations counted (Leiden to convergence needs ≥ 2: the last finds no gain), lbfgs's count beside its cap
    assert values["official_leiden_iterations"] >= 2 and "of max 1,000" in notes["official_leiden_iterations"]
    # review 43: 16 related lymphoid subtypes in 3 batches (was 5 in 2); the sibling pair seen in one batch each can be
    # told apart without any batch effect (so a merge is the correction's doing, not the simulation's), stays apart
    # uncorrected, and Harmony's merge is a claim decided by its interval
    assert values["related_subtypes"] >= 16 and "3 batches" in notes["related_subtypes"]
    assert values["related_purity_ceiling"] > 0.85 and values["related_purity_none"] > 0.85
    assert verdicts["harmony_merges_related_subtypes"] == "holds"
    assert claims["harmony_merges_related_subtypes"]["baseline"] == "related_purity_ceiling"  # not the batch-aided none
    assert 0 < values["related_shared_purity_harmony"] <= 1  # the design that fixes it, measured
    assert values["regress_out_cells_misplaced"] > 0  # the reason regress-out is off, measured on this run
    assert values["compile_s"] > 0 and "warm" in notes["workflow_s"]
    # Step 10 names the fastest-growing step from its own table (it once typed steps the run contradicted)
    assert values["fastest_growing_step"] != "total" and notes["fastest_growing_step"].startswith("×")
    # NVIDIA's step list on 4 simulated batches: Harmony's clusters find the types and not the batches
    assert values["official_ari_groups"] > 0.5 and values["official_steps_s"] > 0
    assert abs(float(notes["official_ari_groups"].rsplit(" ", 1)[1])) < 0.05
