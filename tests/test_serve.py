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


# ---- The serve and benchmark commands the guides print: will they run on a Spark? (issue 44) ----

import re  # noqa: E402

import sparkbooks as sb  # noqa: E402
from sparkbooks.documents.vlm import qwen_visual_tokens  # noqa: E402

from .test_guides import PLAYBOOKS, bench_commands, serve_commands  # noqa: E402

_TEXT_ALLOWANCE = 128  # chat template, question and a tag around a prompt or an image


def _flag(argv: list[str], *names: str, default: str | None = None) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name:
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return default


def _guide(slug: str):
    return next(p for p in PLAYBOOKS if p.slug == slug)


def _longest_request(pb) -> tuple[int, int]:
    """(tokens of the longest single request the spark profile sends, tokens of the sweep's requests in flight at once)."""
    spark = {**{k: v.default for k, v in pb.parameters.items()}, **pb.profiles["spark"]}
    if pb.slug == "nemotron-nano":
        longest = max([*spark["prompt_lengths"], spark["input_tokens"]]) + max(spark["max_tokens"], spark["output_tokens"])
        return longest, max(spark["concurrency"]) * (spark["input_tokens"] + spark["output_tokens"])
    if pb.slug == "vlm":
        image = max(qwen_visual_tokens(s, s).tokens for s in [*spark["sides"], spark["max_side"]])
        longest = image + _TEXT_ALLOWANCE + 200  # 200: the extraction's answer, the longest asked
        return longest, max(spark["concurrency"]) * longest
    raise AssertionError(f"no request sizes known for {pb.slug}")


def _llama_servers(slug: str) -> list[list[str]]:
    return [argv for argv in serve_commands(_guide(slug)) if argv[0] == "llama-server"]


def slot_context(argv: list[str]) -> tuple[int, int]:
    """(context one request may use, context all slots share) of a ``llama-server`` command line.

    Without ``--kv-unified`` llama.cpp splits ``--ctx-size`` evenly across ``--parallel`` slots.
    """
    ctx = int(_flag(argv, "-c", "--ctx-size", default="0"))
    parallel = int(_flag(argv, "-np", "--parallel", default="1"))
    unified = "--kv-unified" in argv or "-kvu" in argv
    return (ctx if unified else ctx // parallel), ctx


@pytest.mark.parametrize("slug", ["nemotron-nano", "vlm"])
def test_every_llama_server_command_gives_each_slot_the_longest_request(slug):
    longest, in_flight = _longest_request(_guide(slug))
    commands = _llama_servers(slug)
    assert commands, f"{slug}: no llama-server command found"
    for argv in commands:
        per_slot, total = slot_context(argv)
        assert per_slot >= longest, (f"{slug}: each slot gets {per_slot} tokens, the longest request needs {longest}: "
                                     "raise --ctx-size or add --kv-unified", argv)
        assert total >= in_flight, (f"{slug}: the sweep keeps {in_flight} tokens in flight, the pool holds {total}", argv)


@pytest.mark.parametrize("slug", ["nemotron-nano", "vlm"])
def test_every_vllm_command_holds_the_longest_request(slug):
    longest, _ = _longest_request(_guide(slug))
    for argv in serve_commands(_guide(slug)):
        if argv[0] != "llama-server":
            assert int(_flag(argv, "--max-model-len")) >= longest, argv


@pytest.mark.parametrize("slug", ["nemotron-nano", "vlm"])
def test_every_vllm_command_reports_its_prefix_cache_hits(slug):
    # review of issue 44 (round 3), finding 1: without --enable-prompt-tokens-details vLLM sends no cached-token count,
    # so no TTFT sample can be audited; without a prefix cache the warm-template TTFT has nothing to hit
    from sparkbooks.llm.cache_audit import REPORTING_FLAGS

    commands = [argv for argv in serve_commands(_guide(slug)) if argv[0] != "llama-server"]
    assert commands, f"{slug}: no vLLM command found"
    for argv in commands:
        assert set(REPORTING_FLAGS.split()) <= set(argv), (f"{slug}: add {REPORTING_FLAGS}", argv)


def test_slot_context_reads_the_failing_form():
    argv = "llama-server -hf a/b-GGUF --ctx-size 131072 --parallel 64".split()
    assert slot_context(argv) == (2048, 131072)  # issue 44: 8,192-token prompts raised ContextLengthError
    assert slot_context([*argv, "--kv-unified"]) == (131072, 131072)


@pytest.mark.parametrize("slug", ["nemotron-nano", "vlm"])
def test_every_llama_server_command_names_where_its_model_comes_from(slug):
    for argv in _llama_servers(slug):
        repo = _flag(argv, "-hf", "--hf-repo")
        assert repo and re.fullmatch(r"[\w.-]+/[\w.-]+-GGUF(:\w+)?", repo), (f"{slug}: give the GGUF's Hugging Face "
                                                                            "repo with -hf, not a local file", argv)
    if slug == "nemotron-nano":  # the conversion NVIDIA's own material names
        assert {_flag(a, "-hf").split(":")[0] for a in _llama_servers(slug)} == {"unsloth/Nemotron-3-Nano-30B-A3B-GGUF"}


def test_vllm_bench_serve_loads_the_tokenizer_from_the_hf_id_and_warms_up():
    pb = _guide("nemotron-nano")
    (bench,) = bench_commands(pb)
    (served,) = [argv for argv in serve_commands(pb) if argv[0] != "llama-server"]
    image = next(i for i, a in enumerate(served) if a.startswith("vllm/vllm-openai"))
    hf_id = served[image + 1]
    assert "/" in hf_id and _flag(bench, "--model") == hf_id, "--model loads the tokenizer: it must be the HF id"
    assert _flag(bench, "--served-model-name") == pb.profiles["spark"]["model"] == _flag(served, "--served-model-name")
    concurrency = int(_flag(bench, "--max-concurrency"))
    assert int(_flag(bench, "--num-warmups", default="0")) >= concurrency, "--num-warmups defaults to 0"
    assert int(_flag(bench, "--num-prompts")) >= 4 * concurrency, "at least four requests per stream"
    assert concurrency == max(pb.profiles["spark"]["concurrency"])


@pytest.mark.parametrize("slug", ["nemotron-nano", "vlm"])
def test_spark_sweeps_send_at_least_four_requests_per_stream(slug):
    spark = _guide(slug).profiles["spark"]
    assert spark["requests_per_level"] >= 4 * max(spark["concurrency"]), spark


def test_an_oversubscribed_machine_gives_llama_server_one_thread(monkeypatch):
    monkeypatch.setattr(llamacpp, "performance_cores", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.3, 0.3))
    assert llamacpp.default_threads() == 2  # an idle machine: every performance core
    monkeypatch.setattr(os, "getloadavg", lambda: (24.7, 20.0, 15.0))
    assert llamacpp.default_threads() == 1  # 0.4 → 12.5 tok/s measured when the run queue is 12× the cores
    server = llamacpp.LlamaServer(Path("m.gguf"), binary=Path("llama-server"), port=1)
    assert server.command()[server.command().index("--threads") + 1] == "1"
