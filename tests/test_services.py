"""The one service lifecycle, with real processes: an HTTP server, a job, a process group."""

import sys
import time
from pathlib import Path

import pytest

import sparkbooks as sb
from sparkbooks import services
from sparkbooks.exceptions import ServiceExitError, ServiceStartError


class HttpServer(services.Service):
    """Python's own http.server: a real server with a real port and a health URL."""

    def __init__(self, **kwargs):
        super().__init__("http.server", **kwargs)
        self.port = None

    def prepare(self):
        self.port = services.free_port()

    def command(self):
        return [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"]

    def healthy(self):
        return services.http_ok(f"http://127.0.0.1:{self.port}/")


class Job(services.Service):
    def __init__(self, code: str, **kwargs):
        super().__init__("job", **kwargs)
        self.code = code

    def command(self):
        return [sys.executable, "-c", self.code]


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_server_is_healthy_inside_the_block_and_gone_after():
    with HttpServer() as server:
        assert server.running and services.http_ok(f"http://127.0.0.1:{server.port}/")
        assert server in services.live_services() and server.startup_s is not None
        pid = server.pid
    assert _gone(pid) and server not in services.live_services()


def test_a_process_that_exits_while_starting_says_so_with_its_log():
    with pytest.raises(ServiceStartError, match=r"exited with code 3 while starting:\n.*no such model"):
        bad = Job("import sys, time; print('no such model', flush=True); sys.exit(3)")
        bad.healthy = lambda: False  # type: ignore[method-assign]
        bad.start()


def test_a_service_never_healthy_is_stopped_after_the_timeout():
    slow = HttpServer(startup_timeout=1.0)
    slow.healthy = lambda: False  # type: ignore[method-assign]
    start = time.monotonic()
    with pytest.raises(ServiceStartError, match="did not become ready within 1 s"):
        slow.start()
    assert time.monotonic() - start < 5 and not slow.running


def test_a_job_reports_its_exit_and_failure():
    assert Job("print('done')").start().wait(timeout=30) == 0
    failing = Job("import sys; print('rank 1 lost', flush=True); sys.exit(2)").start()
    with pytest.raises(ServiceExitError, match="exited with code 2:\nrank 1 lost"):
        failing.wait(timeout=30)


def test_stop_takes_the_whole_process_group():
    # a parent that starts a child, like torchrun starting its workers
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('CHILD', child.pid, flush=True)\ntime.sleep(60)")
    job = Job(code).start()
    deadline = time.monotonic() + 10
    while "CHILD" not in job.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(job.log_path.read_text().split("CHILD")[1].split()[0])
    job.stop()
    assert _gone(job.pid) and _gone(child), "a worker outlived its job"


def test_a_job_past_its_time_limit_is_stopped():
    job = Job("import time; time.sleep(60)").start()
    with pytest.raises(ServiceExitError, match="still running after 1 s"):
        job.wait(timeout=1)
    assert _gone(job.pid)


def test_session_use_keeps_a_service_until_the_notebook_runs_again(fixture_home, monkeypatch):
    monkeypatch.chdir(fixture_home / "playbooks" / "fixture-failures")
    for var in ("SPARKBOOKS_PLAYBOOK", "SPARKBOOKS_RESULTS", "SPARKBOOKS_PARAMS_RESOLVED"):
        monkeypatch.delenv(var, raising=False)
    namespace = {"profile": "auto", "mode": "ok", "size": 3, "seed": 0}
    first = sb.begin(dict(namespace))
    server = first.use(HttpServer())
    assert server.running and sb.active() is first
    second = sb.begin(dict(namespace))  # "Run all" again: the first session's server must not linger
    assert not server.running and sb.active() is second
    again = second.use(HttpServer())
    second.close()
    assert not again.running


def test_the_child_calls_no_library_lookup_between_fork_and_exec(monkeypatch):
    import ctypes

    Job("pass").start().wait(timeout=30)  # whatever a start looks up, it looks up in this process

    def no_loading(*args, **kwargs):
        raise AssertionError("ctypes.CDLL called: between fork and exec that is unsafe with threads")

    monkeypatch.setattr(ctypes, "CDLL", no_loading)  # the forked child inherits the patch
    assert Job("print('started')").start().wait(timeout=30) == 0


PARENT = """
import sys, time
sys.path[:0] = [sys.argv[1]]
from test_services import Job
job = Job("import time; time.sleep(600)").start()
print("PID", job.pid, flush=True)
time.sleep(600)
"""


def test_a_service_dies_with_its_parent_even_when_the_parent_is_killed():
    import contextlib
    import os
    import queue
    import signal
    import subprocess
    import threading

    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(Path(__file__).parent)], stdout=subprocess.PIPE,
                              text=True)
    pid = None
    with parent:  # closes the pipe and reaps it on the way out
        try:
            # A reader thread, not select(): readline() buffers the log lines and "PID" together, so select() on the
            # pipe would then wait for bytes that already sit in Python's buffer.
            lines: queue.Queue[str] = queue.Queue()
            def read() -> None:
                with contextlib.suppress(ValueError, OSError):  # the pipe closed under us: the test is over
                    for ln in parent.stdout:
                        lines.put(ln)

            threading.Thread(target=read, daemon=True).start()
            line = ""
            while not line.startswith("PID "):  # after the start's own log lines
                try:
                    line = lines.get(timeout=120)
                except queue.Empty:
                    pytest.fail("the parent never started its service (no PID line in 120 s)")
            pid = int(line.split()[1])
            assert not _gone(pid, timeout=0.5)
            parent.send_signal(signal.SIGKILL)  # no atexit, no __exit__: only PR_SET_PDEATHSIG can stop it
            assert _gone(pid), "the service outlived its killed parent"
        finally:
            parent.kill()
            if pid is not None and not _gone(pid, timeout=0.2):
                os.kill(pid, signal.SIGKILL)  # the test failed: do not leave the orphan sleeping


def test_a_dropped_service_is_still_stopped_at_exit_not_left_to_the_garbage_collector():
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        pid = Job("import time; time.sleep(60)").start().pid  # the caller keeps no reference
        gc.collect()
    left = [s for s in services.live_services() if s.pid == pid]
    assert left, "a running service was forgotten: at exit nobody would stop it"
    services._stop_all()  # what atexit runs
    assert _gone(pid) and services.live_services() == []
