import json
import subprocess
import sys

import pytest

from sparkbooks import runner
from sparkbooks.exceptions import NotebookExecutionError, ParameterError

from .conftest import cli_env


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sparkbooks.cli", *args], capture_output=True, text=True,
                          env=env or cli_env(), timeout=300)


@pytest.mark.parametrize("args", [
    ["-p", "no_such_param", "1"],
    ["-p", "n_rows", "lots"],
    ["-p", "n_rows", "5"],  # below the declared interval
    ["--profile", "laptop"],
])
def test_bad_parameters_exit_2_before_anything_is_written(tmp_path, args):
    out = tmp_path / "runs"
    done = _cli("run", "start-here", "--out", str(out), *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ParameterError: ")
    assert not out.exists()


def test_unknown_parameter_message_lists_valid_ones(tmp_path):
    done = _cli("run", "start-here", "--out", str(tmp_path), "-p", "no_such_param", "1")
    assert "Valid parameters: profile, n_rows, n_samples, repeats, seed" in done.stderr


def test_unknown_playbook_exits_2(tmp_path):
    done = _cli("run", "nope", "--out", str(tmp_path))
    assert done.returncode == 2 and "PlaybookNotFoundError" in done.stderr


def test_plan_merges_profile_then_overrides():
    plan = runner.plan("start-here", profile="spark", params={"n_rows": 5000})
    assert plan.params == {"n_rows": 5000, "n_samples": 1_000_000, "profile": "spark"}
    with pytest.raises(ParameterError):
        runner.plan("start-here", params={"profile": "tpu"})


def test_good_run_then_failed_run_keeps_the_good_outputs(fixture_home, tmp_path):
    out = tmp_path / "runs"
    good = runner.run("fixture-failures", profile="cpu", params={"size": 4}, out=out, progress=False)
    assert good.ok and good.notebook.exists()
    results = json.loads((out / "fixture-failures" / "results.json").read_text())
    assert {r["name"]: r["value"] for r in results["results"]} == {"size_squared": 16, "finished": True}
    before = good.notebook.read_bytes()

    with pytest.raises(NotebookExecutionError) as info:
        runner.run("fixture-failures", profile="cpu", params={"mode": "raise"}, out=out, progress=False)
    assert info.value.ename == "RuntimeError" and "fixture asked to fail" in info.value.evalue
    failed = out / "fixture-failures" / "failed"
    assert (failed / "fixture-failures.ipynb").exists()
    assert "RuntimeError: fixture asked to fail" in (failed / "error.txt").read_text()
    partial = json.loads((failed / "results.json").read_text())
    assert [r["name"] for r in partial["results"]] == ["size_squared"]  # recorded before the failure
    assert good.notebook.read_bytes() == before  # the good run survived
    assert runner.last_run("fixture-failures", out=out)["status"] == "failed"
    assert not list(out.glob(".*staging*"))


def test_sys_exit_in_a_cell_is_a_failed_run(fixture_home, tmp_path):
    with pytest.raises(NotebookExecutionError, match="SystemExit"):
        runner.run("fixture-failures", profile="cpu", params={"mode": "exit"}, out=tmp_path, progress=False)


def test_cli_failed_run_exits_1_and_success_clears_the_failure(fixture_home, tmp_path):
    env = cli_env(SPARKBOOKS_HOME=str(fixture_home))
    failed = _cli("run", "fixture-failures", "--out", str(tmp_path), "--no-progress", "-p", "mode", "raise", env=env)
    assert failed.returncode == 1 and "NotebookExecutionError" in failed.stderr
    ok = _cli("run", "fixture-failures", "--out", str(tmp_path), "--no-progress", env=env)
    assert ok.returncode == 0, ok.stderr
    assert not (tmp_path / "fixture-failures" / "failed").exists()


def test_spark_profile_values_reach_the_kernel(fixture_home, tmp_path):
    runner.run("fixture-failures", profile="spark", out=tmp_path, progress=False)
    results = json.loads((tmp_path / "fixture-failures" / "results.json").read_text())
    assert results["profile"] == "spark" and results["params"]["size"] == 30
    assert results["stand_ins"] == []  # stand-ins are a cpu-profile matter


HOLD_LOCK = """
import os, signal, sys, time
from pathlib import Path
from sparkbooks import runner
with runner.run_lock("fixture-failures", Path(sys.argv[1]) / "fixture-failures"):
    print("locked", flush=True)
    if sys.argv[2] == "crash":
        raise RuntimeError("the run crashed")
    time.sleep(60)
"""


def _holder(out, how):
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out), how], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cli_env())
    assert child.stdout.readline().strip() == "locked"
    return child


@pytest.mark.parametrize("how", ["crash", "kill", "interrupt"])
def test_a_second_run_is_refused_at_once_and_the_lock_dies_with_its_holder(fixture_home, tmp_path, how):
    import signal
    import time

    from sparkbooks.exceptions import RunLockedError

    out = tmp_path / "runs"
    child = _holder(out, how)
    if how != "crash":
        start = time.perf_counter()
        with pytest.raises(RunLockedError, match=rf"pid {child.pid}.*--out DIR"):
            runner.run("fixture-failures", profile="cpu", params={"size": 2}, out=out, progress=False)
        assert time.perf_counter() - start < 5  # refused at once, not after waiting
        child.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    child.communicate(timeout=30)  # reaps it and closes its pipes
    assert runner.run("fixture-failures", profile="cpu", params={"size": 2}, out=out, progress=False).ok
    assert runner.run("fixture-failures", profile="cpu", params={"size": 3}, out=tmp_path / "elsewhere", progress=False).ok


def test_cli_run_prints_no_kernel_transport_warning(fixture_home, tmp_path):
    done = _cli("run", "fixture-failures", "--profile", "cpu", "-p", "size", "2", "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    assert "without encryption" not in done.stderr + done.stdout and "WARNING" not in done.stderr
    assert "KeyboardInterrupt" not in done.stderr + done.stdout


def test_shutting_down_a_finished_kernel_sends_it_no_sigint(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    sent = []

    async def interrupt(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = runner._kernel_manager_class()()
    manager.shutting_down = True  # jupyter_client interrupts first thing in every shutdown
    asyncio.run(manager._async_interrupt_kernel())
    manager.shutting_down = False  # a user's interrupt still goes through
    asyncio.run(manager._async_interrupt_kernel())
    assert sent == [False]


def test_publishing_replaces_a_previous_runs_folders(tmp_path):
    staging, dest = tmp_path / "staging", tmp_path / "dest"
    (staging / "work").mkdir(parents=True)
    (staging / "work" / "new.txt").write_text("new")
    (staging / "run.json").write_text("{}")
    (dest / "work").mkdir(parents=True)
    (dest / "work" / "old.txt").write_text("old")
    runner._publish(staging, dest)
    assert sorted(p.name for p in (dest / "work").iterdir()) == ["new.txt"] and not staging.exists()
