"""A real llama-server: start, health, memory, and no orphan processes whatever happens."""

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkbooks import llm, services
from sparkbooks.llm import llamacpp
from sparkbooks.exceptions import ServiceStartError, SourceError


@pytest.fixture(scope="module", autouse=True)
def binary():
    path = llamacpp.find_server()
    if path is None:
        pytest.fail("no llama-server: run `make llama-server` (make test does) before these tests")
    return path


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_context_manager_starts_a_healthy_server_and_stops_it():
    with llm.stand_in(ctx_size=2048, parallel=1) as server:
        pid = server.pid
        assert server.running and server.base_url.startswith("http://127.0.0.1:")
        assert server in services.live_services()
        assert server.rss_bytes() > 50 * 2**20  # the 98 MB model is mapped in
    assert _gone(pid) and not server.running


def test_exception_inside_the_block_still_stops_it():
    with pytest.raises(RuntimeError):
        with llm.stand_in(ctx_size=2048, parallel=1) as server:
            pid = server.pid
            raise RuntimeError("boom")
    assert _gone(pid)


@contextlib.contextmanager
def _child(code: str) -> Iterator[subprocess.Popen]:
    """A Python child whose stdout we read; killed, reaped and its pipe closed on every exit (a failed test included)."""
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True) as child:
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()


def _pid(child: subprocess.Popen) -> int:
    for line in child.stdout:
        if line.startswith("PID "):
            return int(line.split()[1])
    raise AssertionError("the child printed no PID line")


@pytest.mark.parametrize("ending", ["pass", "raise SystemExit(3)", "raise ValueError('uncaught')"])
def test_no_orphan_when_the_python_process_ends(ending):
    with _child(f"""
        from sparkbooks.llm import stand_in
        server = stand_in(ctx_size=2048, parallel=1).start()
        print("PID", server.pid, flush=True)
        {ending}
    """) as child:
        pid = _pid(child)
        child.communicate(timeout=60)  # waits and closes the pipe
    assert _gone(pid), "llama-server outlived its Python process"


def test_no_orphan_when_the_parent_is_killed():
    with _child("""
        import time
        from sparkbooks.llm import stand_in
        server = stand_in(ctx_size=2048, parallel=1).start()
        print("PID", server.pid, flush=True)
        time.sleep(120)
    """) as child:
        pid = _pid(child)
        child.kill()  # SIGKILL: no atexit, no finally; only PR_SET_PDEATHSIG can help
        child.communicate()
    assert _gone(pid), "llama-server survived a killed parent"


def test_no_orphan_after_kernel_interrupt_and_shutdown():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        def run(code: str, timeout: float = 60) -> list[str]:
            msg_id = kc.execute(code)
            out = []
            while True:
                msg = kc.get_iopub_msg(timeout=timeout)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                if msg["msg_type"] == "error":
                    out.append(msg["content"]["ename"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return out

        # a server used across cells survives an interrupt of an unrelated cell …
        pid_kept = int("".join(run("from sparkbooks.llm import stand_in\n"
                                   "kept = stand_in(ctx_size=2048, parallel=1).start(); print(kept.pid)")).split()[-1])
        # … a server inside an interrupted `with` block is stopped at once
        msg_id = kc.execute("import time\nwith stand_in(ctx_size=2048, parallel=1) as s:\n"
                            "    print('PID', s.pid, flush=True)\n    time.sleep(120)")
        pid_block = None
        while pid_block is None:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and "PID" in msg["content"]["text"]:
                pid_block = int(msg["content"]["text"].split()[1])
        km.interrupt_kernel()
        assert _gone(pid_block), "the interrupted with-block left its server running"
        assert not _gone(pid_kept, timeout=1), "an unrelated interrupt killed a server still in use"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert _gone(pid_kept, timeout=30), "llama-server outlived its kernel"


def test_a_server_that_cannot_start_says_why(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    with pytest.raises(ServiceStartError, match="exited with code"):
        llamacpp.LlamaServer(broken, startup_timeout=30).start()
    assert services.live_services() == []


def test_missing_binary_names_the_build_command(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARKBOOKS_LLAMA_SERVER", str(tmp_path / "nowhere"))
    with pytest.raises(SourceError, match="sparkbooks setup llama-server"):
        llamacpp.require_server()


def test_user_binary_on_path_wins(monkeypatch, tmp_path):
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv("SPARKBOOKS_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert llamacpp.find_server() == fake


def test_build_flags_keep_native_off():
    assert "-DGGML_NATIVE=OFF" in llamacpp.CMAKE_FLAGS
    assert llamacpp.cached_server().name == "llama-server"
