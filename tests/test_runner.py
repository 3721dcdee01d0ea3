import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from sparkbooks import run_isolation, runner
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
    assert results["stand_ins"] == ["nothing stands in"]  # said on every profile (Session.stand_ins)


def _patience(seconds: float) -> float:
    """A bound that only a failure reaches, scaled up on a loaded machine (2 busy cores slow every start-up)."""
    return seconds * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


@contextmanager
def _child(args: list[str], *, env: dict[str, str], sigint: bool = True) -> Iterator[subprocess.Popen]:
    """A process with piped output that is killed (if still running), reaped and closed whatever the test does.

    With ``sigint``, the child takes SIGINT as KeyboardInterrupt even when this process ignores it, as a
    background job in a non-interactive shell does (``make test &``): an ignored disposition is inherited, a
    handled one is reset to the default across exec.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if sigint else None
    try:
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    with child:  # closes the pipes and waits on the way out
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()


def _read_line(child: subprocess.Popen, *, timeout: float) -> str:
    """The child's next stdout line; fails (with its stderr) if it exits or stays silent for ``timeout`` seconds."""
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"no output from pid {child.pid} within {timeout:.0f} s")
    line = child.stdout.readline()
    if not line:
        child.wait(timeout=timeout)
        pytest.fail(f"pid {child.pid} exited with code {child.returncode} before printing: {child.stderr.read()}")
    return line.strip()


def _wait_until(done: Callable[[], bool], child: subprocess.Popen, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if child.poll() is not None:
            pytest.fail(f"the child exited with code {child.returncode} before {what}: {child.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


def _gone(pid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


HOLD_LOCK = """
import sys, time
from pathlib import Path
from sparkbooks import run_isolation, runner
with runner.run_lock("fixture-failures", Path(sys.argv[1]) / "fixture-failures"):
    print("locked", flush=True)
    if sys.argv[2] == "crash":
        raise RuntimeError("the run crashed")
    time.sleep(600)  # until the test stops it
"""
STOP = {"kill": signal.SIGKILL, "interrupt": signal.SIGINT, "terminate": signal.SIGTERM}


@pytest.mark.parametrize("how", ["crash", "kill", "interrupt", "terminate"])
def test_a_second_run_is_refused_at_once_and_the_lock_dies_with_its_holder(fixture_home, tmp_path, how):
    from sparkbooks.exceptions import RunLockedError

    out = tmp_path / "runs"
    # SIGINT ignored here, as under `make test &`: the holder must still be interruptible (it once slept on, and
    # the test timed out and leaked it)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _child([sys.executable, "-c", HOLD_LOCK, str(out), how], env=cli_env()) as child:
            assert _read_line(child, timeout=_patience(120)) == "locked"  # its readiness, however slow the import
            if how != "crash":
                start = time.perf_counter()
                with pytest.raises(RunLockedError, match=rf"pid {child.pid}.*--out DIR"):
                    runner.run("fixture-failures", profile="cpu", params={"size": 2}, out=out, progress=False)
                assert child.poll() is None  # refused while the holder still holds it: no waiting for it
                assert time.perf_counter() - start < _patience(30)
                child.send_signal(STOP[how])
            child.communicate(timeout=_patience(30))
        assert child.returncode == {"crash": 1, "kill": -9, "interrupt": -2, "terminate": -15}[how]
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert runner.run("fixture-failures", profile="cpu", params={"size": 2}, out=out, progress=False).ok
    assert runner.run("fixture-failures", profile="cpu", params={"size": 3}, out=tmp_path / "elsewhere", progress=False).ok


#: A cell that waits (only when the test sets FIXTURE_STARTED), after writing its kernel's pid there: "mid-run".
WAITING_CELL = ("import os, pathlib, time\n"
                "if os.environ.get('FIXTURE_STARTED'):\n"
                "    pathlib.Path(os.environ['FIXTURE_STARTED']).write_text(str(os.getpid()))\n"
                "    time.sleep(600)")


def _with_waiting_cell(home: Path) -> Path:
    """The fixture home's copy of the fixture playbook, with :data:`WAITING_CELL` after its first record."""
    path = home / "playbooks" / "fixture-failures" / "fixture-failures.ipynb"
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "sb.record(" in c.source) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(WAITING_CELL))
    nbformat.write(nb, path)
    return path.parent


def _listing(folder: Path) -> list[tuple[str, int]]:
    """Every entry of ``folder`` (sockets included, which git does not show) with its size."""
    return sorted((name, os.lstat(folder / name).st_size) for name in os.listdir(folder))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_says_so_keeps_the_last_good_run_and_leaves_nothing_behind(fixture_home, tmp_path, sig):
    folder = _with_waiting_cell(fixture_home)
    out, started = tmp_path / "runs", tmp_path / "started"
    env = cli_env(SPARKBOOKS_HOME=str(fixture_home))
    good = _cli("run", "fixture-failures", "--profile", "cpu", "--out", str(out), "--no-progress", env=env)
    assert good.returncode == 0, good.stderr
    kept = {name: (out / "fixture-failures" / name).read_bytes() for name in ("fixture-failures.ipynb", "run.json")}
    before = _listing(folder)
    runtime = runner.kernel_runtime_dir("fixture-failures", out / "fixture-failures")

    args = [sys.executable, "-m", "sparkbooks.cli", "run", "fixture-failures", "--profile", "cpu", "--out", str(out),
            "--no-progress"]
    with _child(args, env=cli_env(SPARKBOOKS_HOME=str(fixture_home), FIXTURE_STARTED=str(started))) as child:
        _wait_until(lambda: started.exists() and started.read_text(), child, timeout=_patience(180),
                    what="the run reaching its waiting cell")
        kernel = int(started.read_text())
        assert any(p.name.startswith("kernel-ipc-") for p in runtime.iterdir())  # the sockets: here, not in the folder
        assert _listing(folder) == before
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=_patience(60))

    assert child.returncode == 128 + sig, stderr  # 143 for SIGTERM, 130 for SIGINT, as documented in cli.py
    assert f"stopped by {sig.name}" in stderr
    assert "fixture-failures was stopped before it finished" in stderr and "The last good run is kept" in stderr
    assert _listing(folder) == before  # no new file, no socket
    assert not runtime.exists() and _gone(kernel, timeout=_patience(30))
    assert {name: (out / "fixture-failures" / name).read_bytes() for name in kept} == kept
    assert sorted(os.listdir(out)) == [".fixture-failures.lock", "fixture-failures"]  # no staging folder left
    assert not (out / "fixture-failures" / "failed").exists()


def test_the_next_run_removes_what_a_killed_run_left(fixture_home, tmp_path):
    folder = _with_waiting_cell(fixture_home)
    out, started = tmp_path / "runs", tmp_path / "started"
    runtime = runner.kernel_runtime_dir("fixture-failures", out / "fixture-failures")
    args = [sys.executable, "-m", "sparkbooks.cli", "run", "fixture-failures", "--profile", "cpu", "--out", str(out),
            "--no-progress"]
    kernel = None
    try:
        with _child(args, env=cli_env(SPARKBOOKS_HOME=str(fixture_home), FIXTURE_STARTED=str(started))) as child:
            _wait_until(lambda: started.exists() and started.read_text(), child, timeout=_patience(180),
                        what="the run reaching its waiting cell")
            kernel = int(started.read_text())
            child.kill()  # SIGKILL: nothing of the run's own clean-up happens
            child.wait()
        assert list(out.glob(".fixture-failures.staging-*")) and list(runtime.glob("kernel-ipc-*"))
        # a socket where runs before this version put them; bound by a relative name from inside the folder, since a
        # test's tmp path (longer under pytest-xdist's per-worker folders) can exceed AF_UNIX's 107 bytes
        subprocess.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_UNIX).bind('kernel-ipc-7')"],
                       cwd=folder, check=True, timeout=_patience(60))
        (folder / "kernel-ipc-notes").write_text("a user's file with a similar name stays")
        # a killed run of another playbook into another folder, and a live one
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                              timeout=_patience(60))
        other, live = runtime.parent / f"other-{tmp_path.name}", runtime.parent / f"live-{tmp_path.name}"
        for where, owner in ((other, dead.stdout.strip()), (live, "1")):
            where.mkdir()
            (where / "owner.pid").write_text(owner)

        assert runner.run("fixture-failures", profile="cpu", out=out, progress=False).ok
        assert sorted(os.listdir(out)) == [".fixture-failures.lock", "fixture-failures"]
        assert not runtime.exists() and not other.exists() and live.exists()
        assert sorted(os.listdir(folder)) == ["fixture-failures.ipynb", "kernel-ipc-notes"]
        shutil.rmtree(live)
    finally:
        if kernel is not None and not _gone(kernel, timeout=_patience(10)):  # its parent poller normally ends it
            os.kill(kernel, signal.SIGKILL)


def test_kernel_sockets_are_private_and_short(tmp_path):
    runtime = runner.kernel_runtime_dir("a-rather-long-playbook-slug-for-a-guide", tmp_path / ("x" * 100) / "runs" / "slug")
    manager = run_isolation.kernel_manager_class(runtime)()
    assert manager.ip == str(runtime / "kernel-ipc") and manager.connection_file == str(runtime / "kernel.json")
    assert len(f"{manager.ip}-5".encode()) <= 107  # AF_UNIX's limit on Linux, whatever the runs folder


def test_cli_run_prints_no_kernel_transport_warning(fixture_home, tmp_path):
    done = _cli("run", "fixture-failures", "--profile", "cpu", "-p", "size", "2", "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    assert "without encryption" not in done.stderr + done.stdout and "WARNING" not in done.stderr
    assert "KeyboardInterrupt" not in done.stderr + done.stdout


def test_a_line_a_cell_sends_to_the_terminal_reaches_sparkbooks_run_while_the_cell_runs(fixture_home, tmp_path):
    # node 0 waiting for node 1 prints the command to type there: inside a cell, print() shows only when the
    # cell ends (`sparkbooks run` draws papermill's bar); log.terminal also writes to the kernel's own stderr
    env = cli_env(SPARKBOOKS_HOME=str(fixture_home))
    done = _cli("run", "fixture-failures", "--no-progress", "-p", "size", "4", "--out", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    assert "[fixture-failures] fixture: size is 4" in done.stderr


def test_shutting_down_a_finished_kernel_sends_it_no_sigint(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    sent = []

    async def interrupt(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = run_isolation.kernel_manager_class(Path("/nowhere"))()
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
