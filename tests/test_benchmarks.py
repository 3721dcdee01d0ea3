"""Every benchmark still runs: its `--smoke` mode (tiny sizes, ≤ 30 s), checked for its table and its JSON line.

The full runs stay in `make bench`; these only keep a benchmark from rotting between the runs that fill a guide's
tables. ``gpu_check.py`` is not a benchmark (it runs GPU paths on a GPU machine: `make gpu-check`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
NOT_BENCHMARKS = {"gpu_check.py"}

#: each benchmark's table, by a header its smoke output must print, and extra arguments for a private scratch folder
TABLES = {
    "fine_tune_scaling.py": ("run", "tokens/s", "per-step range", "final loss"),
    "llm_client_overhead.py": ("streams", "client tok/s", "server tok/s"),
    "llm_serving_crosscheck.py": ("measure", "llama-batched-bench", "server/bench", "lock-step", "streamed sweep"),
    "portfolio_cvar.py": ("problem", "solver", "wall s", "objective", "violation"),
    "quant_kld_crosscheck.py": ("type", "llama-perplexity", "ours/llama", "ours − llama", "mean KLD", "format (ours, same tokens)"),
    "pretrain_throughput.py": ("| size |",),
    "rag_retrieval.py": ("| engine (HNSW", "| vectors |", "recall@10 vs exact"),
    "robot_reachy_head.py": ("| controller | median error (°) |",),
    "robot_rl_throughput.py": ("| n_envs | simulation steps/s |", "| n_envs | Warp steps/s |"),
    "runner_overhead.py": ("runner", "try", "seconds"),
    "single_cell_scaling.py": ("step", "NVIDIA GPU*", "ARI groups"),
    "start_here_acceleration.py": ("== pandas-etl", "== sklearn"),
    "topic_million.py": ("labelling", "AMI vs full fits", "scaling"),
    "topic_clustering.py": ("Health tweets:", "row", "AMI shuffled"),
    "txt2kg_graph.py": ("| edges | nodes | LadybugDB load s",),
    "vlm_documents.py": ("backend", "OCR + LLM, page-span enums", "first-candidate rule (no LLM)"),
}
#: figures a benchmark's JSON line must carry (the ones its guide and closing notes quote)
KEYS = {"portfolio_cvar.py": ("official_seeds", "official_median_s", "official_range_s", "blas_threads", "card_gap",
                              "card_lps", "card_s"),
        # nvfp4-fit's KL pipeline against llama-perplexity's (issue 44): both sides and the goals
        "quant_kld_crosscheck.py": ("llama", "ours", "ratio", "recipes", "scored"),
        # the 1M goal taken apart (review 48): the sample's own documents, the labelled rest, both clustered
        "topic_million.py": ("seed_floor_ami", "seed_floor_clustered_ami", "sample_seeds", "sample_centroid_ami", "sample_floor_sampled",
                             "sample_centroid_ami_sampled", "sample_predict_ami_labelled", "sample_predict_ami_clustered")}
SMOKE_LIMIT_S = 30  # on an idle 2-core machine


def _patience() -> float:
    """Seconds before a smoke run counts as stuck: 10× its budget, scaled up on a loaded machine (as CI's can be)."""
    return 10 * SMOKE_LIMIT_S * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def _scratch_args(name: str, tmp_path: Path) -> list[str]:
    if name == "rag_retrieval.py":
        return ["--dir", str(tmp_path / "rag-bench")]
    return []


def test_every_benchmark_has_a_smoke_test():
    found = {p.name for p in BENCHMARKS.glob("*.py")} - NOT_BENCHMARKS
    assert found == set(TABLES), f"benchmarks without a smoke check: {sorted(found - set(TABLES))}"
    for name in found:
        assert '"--smoke"' in (BENCHMARKS / name).read_text(), f"{name} has no --smoke mode"


def smoke_problems(name: str, stdout: str) -> list[str]:
    """What is wrong with a benchmark's smoke output: its table's headers, and a JSON object on its last line."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return ["printed nothing"]
    problems = [f"no table header {head!r}" for head in TABLES[name] if head not in "\n".join(lines[:-1])]
    try:
        last = json.loads(lines[-1])
    except ValueError:
        return [*problems, f"the last line is not JSON: {lines[-1][:200]!r}"]
    if not isinstance(last, dict) or not last:
        return [*problems, f"the last line is not a JSON object with figures: {lines[-1][:200]!r}"]
    return problems + [f"no {key!r} in the JSON line" for key in KEYS.get(name, ()) if key not in last]


def test_the_smoke_check_catches_a_missing_table_or_json_line():
    good = "runner           try  seconds\npapermill          0     3.10\n{\"papermill_s\": 3.1}\n"
    assert smoke_problems("runner_overhead.py", good) == []
    assert smoke_problems("runner_overhead.py", good.replace("runner ", "who    ")) == ["no table header 'runner'"]
    assert "not JSON" in smoke_problems("runner_overhead.py", good + "done\n")[0]
    assert smoke_problems("runner_overhead.py", good.replace('{"papermill_s": 3.1}', "[]"))
    assert smoke_problems("runner_overhead.py", "") == ["printed nothing"]
    table = "problem solver wall s objective violation\n"
    assert smoke_problems("portfolio_cvar.py", table + '{"card_gap": 0.1}') != []  # the LP's median over seeds missing


@pytest.mark.parametrize("name", sorted(TABLES))
def test_benchmark_smoke_mode_runs_and_prints_its_table_and_json(name, tmp_path):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), "--smoke", *_scratch_args(name, tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=_patience())
    seconds = time.perf_counter() - start
    assert done.returncode == 0, f"{name} --smoke exited {done.returncode}:\n{done.stderr[-4000:]}"
    assert smoke_problems(name, done.stdout) == [], done.stdout[-3000:]
    print(f"{name} --smoke: {seconds:.1f} s")


def _smoke_config(name: str) -> dict:
    """A benchmark's ``SMOKE`` dict, read from its source (importing it would load torch, scanpy, …)."""
    import ast  # noqa: PLC0415

    tree = ast.parse((BENCHMARKS / name).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SMOKE" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} has no SMOKE dict")


def test_the_slowest_smokes_stay_tiny_by_their_sizes():
    """Sizes, not wall-clock (a loaded CI machine would make a timing test flaky): what made these smokes 33–62 s
    on a fresh 2-core clone is kept out of them, and what stays is small."""
    cells = _smoke_config("single_cell_scaling.py")
    # the stand-in reference: no CSV read and no clustering of the sample in the simulation child (≈ 20 s)
    assert cells["reference"] == "stand-in" and cells["no_warm_up"] and cells["fast_only"]
    assert max(int(s) for s in cells["sizes"].split(",")) <= 1000
    tune = _smoke_config("fine_tune_scaling.py")
    assert tune["steps"] <= 2 and tune["n_train"] <= 64 and tune["n_held_out"] <= 4
    assert tune["max_new_tokens"] <= 16  # greedy answers in torch: the untuned and the tuned model, one thread
    robot = _smoke_config("robot_rl_throughput.py")
    assert len(robot["seeds"]) == 1 and robot["max_steps"] <= 1024 and max(robot["warp_envs"]) <= 8
    assert robot["batched_iterations"] <= 2 and robot["sim_steps"] <= 50 and robot["update_samples"] <= 256
