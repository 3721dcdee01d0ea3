"""The OpenAI-compatible client against a real llama-server running the stand-in model."""

import json
import os
import signal
import threading
import time

import pytest

import sparkbooks as sb
from sparkbooks import llm, services
from sparkbooks.exceptions import (
    ContextLengthError,
    ModelNotServedError,
    RequestTimeoutError,
    ServerDiedError,
    ServerUnreachableError,
)
from sparkbooks.llm import llamacpp

from .scripted_server import scripted

SYSTEM = {"role": "system", "content": "You are a concise, helpful assistant."}


@pytest.fixture(scope="module")
def server():
    with llm.stand_in(ctx_size=4096, parallel=2) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint(server):
    return llm.connect(server.base_url)


def test_connect_lists_the_served_model(endpoint):
    assert endpoint.served == (llamacpp.STAND_IN_ALIAS,) and endpoint.model == llamacpp.STAND_IN_ALIAS


def test_unreachable_url_fails_fast_with_the_url_and_the_fix():
    start = time.monotonic()
    with pytest.raises(ServerUnreachableError) as info:
        llm.connect(f"http://127.0.0.1:{services.free_port()}/v1")
    assert time.monotonic() - start < 10
    assert "127.0.0.1" in str(info.value) and "vllm serve" in str(info.value)


def test_unroutable_address_times_out_within_the_limit():
    start = time.monotonic()
    with pytest.raises(ServerUnreachableError):
        llm.connect("http://127.0.0.1:9/v1", timeout=2)  # discard port: refused or silent, never a hang
    assert time.monotonic() - start < 10


def test_unknown_model_lists_the_served_ones(server):
    with pytest.raises(ModelNotServedError, match=f"Served: {llamacpp.STAND_IN_ALIAS}"):
        llm.connect(server.base_url, model="nemotron-3-nano")


def test_streamed_chat_measures_ttft_and_decode_speed(endpoint):
    seen = []
    reply = llm.chat(endpoint, [SYSTEM, {"role": "user", "content": "What is the capital of France?"}],
                     max_tokens=32, on_text=seen.append)
    assert "".join(seen) == reply.text and reply.text.strip()
    assert 0 < reply.ttft_s < reply.total_s
    assert reply.completion_tokens >= 2 and reply.decode_tok_s > 1
    assert reply.server_decode_tok_s and reply.server_decode_tok_s > 1  # llama.cpp's own timing


def test_prompt_longer_than_the_context_says_the_limit(endpoint):
    with pytest.raises(ContextLengthError, match="2048 tokens per request slot"):
        llm.chat(endpoint, [{"role": "user", "content": "word " * 3000}], max_tokens=8)


def test_json_schema_output_is_validated(endpoint):
    schema = {"type": "object", "additionalProperties": False, "required": ["city", "country"],
              "properties": {"city": {"type": "string"}, "country": {"type": "string"}}}
    done = llm.extract_json(endpoint, "Maria moved to Lisbon, Portugal in 2019.", schema=schema,
                            instruction="Extract the city and the country as JSON.")
    assert done.valid and done.problem == "" and set(done.value) == {"city", "country"}
    assert json.loads(done.reply.text) == done.value


def test_extraction_scoring_accepts_listed_alternatives(endpoint):
    schema = {"type": "object", "required": ["country"], "additionalProperties": False,
              "properties": {"country": {"type": "string", "enum": ["United Kingdom"]}}}
    table = llm.run_extractions(endpoint, [{"text": "Turing was born in London.", "expected": {"country": ["England", "United Kingdom"]}}],
                                schema=schema, instruction="Which country? JSON.")
    assert table.loc[0, "valid"] and table.loc[0, "fields_correct"] == 1.0


def _converter(calls):
    return llm.Tool("convert", "Convert km to miles.", {"type": "object", "properties": {"km": {"type": "number"}},
                    "required": ["km"]}, lambda km: calls.append(km) or {"miles": round(km * 0.621371, 3)})


def test_native_tool_loop_runs_the_tool_and_sends_its_result_back():
    # a server that calls the tool, then answers: the loop must run it and return the result as a `tool` message
    calls = []
    turns = [{"tool_calls": [{"name": "convert", "arguments": {"km": 42}}]}, {"content": "42 km is 26.1 miles."}]
    with scripted(turns) as (url, requests):
        run = llm.tool_round_trip(llm.connect(url), "How many miles is 42 km?", [_converter(calls)])
    assert calls == [42] and run.called == ["convert"] and run.answer == "42 km is 26.1 miles."
    sent_back = requests[1]["messages"]
    assert [m["role"] for m in sent_back] == ["user", "assistant", "tool"]
    assert sent_back[1]["tool_calls"][0]["function"]["name"] == "convert"
    assert json.loads(sent_back[2]["content"]) == {"miles": 26.098} and sent_back[2]["tool_call_id"] == "call_0"


def test_native_tool_loop_reports_bad_calls_to_the_model_and_stops_at_the_round_limit():
    calls = []
    turns = [{"tool_calls": [{"name": "teleport", "arguments": {}}]}] * 2
    with scripted(turns) as (url, requests):
        run = llm.tool_round_trip(llm.connect(url), "Go.", [_converter(calls)], max_rounds=2)
    assert calls == [] and run.called == [] and len(run.errors) == 2 and "teleport" in run.errors[0]
    assert run.answer == "(no final answer within the round limit)"
    assert json.loads(requests[1]["messages"][-1]["content"])["error"].startswith("unusable tool call teleport")


def test_tool_loops_with_the_stand_in_are_consistent(endpoint):
    calls = []
    native = llm.tool_round_trip(endpoint, "How many miles is 42 km?", [_converter(calls)])
    tool_messages = [m for m in native.messages if m["role"] == "tool"]
    # whichever the stand-in chooses, what is reported is what happened
    assert len(tool_messages) == len(native.called) == len(calls)
    assert native.answer == native.messages[-1]["content"] or native.answer.startswith("(no final answer")
    routed = llm.tool_call_via_schema(endpoint, "How many miles is 42 km?", [_converter(calls)])
    assert routed.called == ["convert"] and calls[-1] == json.loads(routed.messages[2]["content"])["arguments"]["km"]
    assert json.loads(routed.messages[2]["content"])["tool"] == "convert" and routed.answer


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
@pytest.mark.parametrize("stream", [True, False])
def test_reasoning_is_read_from_either_field(field, stream):
    # vLLM renamed reasoning_content to reasoning (and dropped the old name); llama.cpp still sends the old one
    with scripted([{field: "Let me think: 0.05.", "content": "The ball costs $0.05."}]) as (url, _):
        reply = llm.chat(llm.connect(url), [{"role": "user", "content": "Riddle?"}], stream=stream)
    assert reply.reasoning == "Let me think: 0.05." and reply.text == "The ball costs $0.05."


def test_sweep_sends_unique_prompts_of_the_asked_length_and_fixed_outputs(endpoint):
    table = llm.sweep(endpoint, levels=[1, 2, 3], requests_per_level=3, input_tokens=60, output_tokens=8)
    assert list(table.index) == [1, 2, 3] and list(table["requests"]) == [4, 8, 12]  # at least four per stream
    assert (table["out_tokens"] == 8).all()  # ignore_eos honoured: every request decodes exactly 8 tokens
    assert (abs(table["in_tokens"] - 60) <= 6).all()  # calibrated on the server's own tokenizer
    for low, high in (("ttft_p50_s", "ttft_p99_s"), ("tpot_p50_ms", "tpot_p99_ms"), ("itl_p50_ms", "itl_p99_ms")):
        assert (table[high] >= table[low]).all() and (table[low] > 0).all()
    assert list(table["queued"]) == [False, False, True]  # the fixture's server has 2 slots
    # every TTFT published was audited by the server's own cache figures: at most the template came from cache
    assert (table["ttft_audited"] == table["requests"]).all() and (table["ttft_unaudited"] == 0).all()
    # and the server's own /metrics counter agrees: the cache was off, nothing was served from it
    assert (table["metrics_cached"] == 0).all()


def test_the_servers_own_metrics_count_the_cached_prompt_tokens(endpoint):
    """Issue 44: cache evidence from the server's /metrics (vLLM's prompt_tokens_cached, llama.cpp's cached tokens)."""
    question = [{"role": "user", "content": "Name three rivers of Europe and the seas they flow into, briefly."}]
    with llm.server_metrics.counting(endpoint) as counted:
        replies = [llm.chat(endpoint, question, max_tokens=2, seed=0, stream=False) for _ in range(2)]
    assert replies[1].cached_tokens > 0 and counted.hits == sum(r.cached_tokens for r in replies)
    assert counted.resolution == 1  # a fresh server's counter is printed to the token


def test_vllms_per_request_cached_counter_is_read_before_its_scheduler_counter():
    """Review 44: vLLM's prefix_cache_hits is counted per scheduling attempt (a waiting request counts again);
    prompt_tokens_cached (vLLM 0.20) is per finished request, what usage.cached_tokens reports."""
    text = ('vllm:prefix_cache_hits_total{engine="0",model_name="m"} 0\n'
            'vllm:prompt_tokens_cached_total{engine="0",model_name="m"} 4096\n'
            'vllm:prompt_tokens_cached_total{engine="1",model_name="m"} 16\n')
    assert llm.server_metrics.cached_prompt_tokens(llm.server_metrics.parse_metrics(text)) == 4112
    # round 2: vLLM prints its counters in full, so they are exact to the token at any size; llama.cpp's are not
    assert llm.server_metrics.CacheCount(1e8, 1e8 + 5, rounded=False).resolution == 1
    assert llm.server_metrics.CacheCount(1e8, 1e8 + 5).resolution == 1000


def test_server_slots_reads_llama_cpp_props(endpoint):
    assert llm.server_slots(endpoint) == 2


def test_single_stream_repeats_after_a_warm_up_and_agrees_with_the_server(endpoint):
    single = llm.single_stream(endpoint, [{"role": "user", "content": "Count to ten."}], repeats=3, max_tokens=12)
    assert single.decode_tok_s.n == 3 and all(r.completion_tokens == 12 for r in single.replies)
    assert single.decode_tok_s.low <= single.decode_tok_s.median <= single.decode_tok_s.high
    assert 0.5 < single.decode_tok_s.median / single.server_decode_tok_s.median < 2
    assert list(single.table().index) == ["TTFT (s)", "decode tok/s (client)", "decode tok/s (server's own timing)",
                                          "prompt tokens from the server's cache"]


def test_single_stream_ttft_is_unique_prompts_audited_by_the_servers_cache_figures(endpoint):
    # issue 44: the warm-up and every repeat sent the same prompt, so TTFT timed a prompt-cache hit (0.016 s vs 0.178 s)
    messages = [SYSTEM, {"role": "user", "content": "Count to ten."}]
    single = llm.single_stream(endpoint, messages, repeats=2, max_tokens=4)
    assert single.audit is not None and single.audit.audited == 2 and single.audit.refused == single.audit.unaudited == 0
    assert single.audit.allowed < 8  # "<|im_start|>system\n": only the chat template's own opening is shared
    for reply in single.replies:  # the server's own figures: every prompt token beyond the template was computed
        assert reply.cached_tokens <= single.audit.allowed
        assert reply.computed_prompt_tokens >= reply.prompt_tokens - single.audit.allowed
    assert single.ttft_s.n == 2 and "audited clean" in str(single.audit)


def test_the_audit_refuses_a_repeated_prompt_the_old_way(endpoint):
    messages = [SYSTEM, {"role": "user", "content": "Name a colour."}]
    first, again = (llm.chat(endpoint, messages, max_tokens=2, seed=0) for _ in range(2))
    allowed, how = llm.template_prefix(endpoint, messages)
    assert "exact" in how and again.cached_tokens > allowed  # the server says: answered from cache
    kept, audit = llm.audit_replies([again], allowed=allowed)
    assert kept == [] and audit.refused == 1


def test_warm_template_ttft_reuses_the_system_prompt_and_nothing_more(endpoint):
    # review of issue 44, finding 2: with `cache_prompt: false` llama.cpp's cache_n is 0 by construction; the warm
    # figure keeps the cache on, tags the user message, and the audit allows the template and system prompt only
    messages = [SYSTEM, {"role": "user", "content": "Count to ten."}]
    cold = llm.template_prefix(endpoint, messages).tokens
    warm = llm.single_stream(endpoint, messages, repeats=3, max_tokens=4, prompt_cache=True)
    assert warm.audit.allowed >= cold + 8 and "exact" in warm.audit.how  # "You are a concise, helpful assistant."
    assert (warm.audit.audited, warm.audit.refused) == (3, 0)
    assert all(cold + 8 <= r.cached_tokens <= warm.audit.allowed for r in warm.replies)  # the system prompt was reused


def test_a_repeated_prompt_with_the_cache_on_is_refused_and_with_it_off_is_recomputed(endpoint, monkeypatch):
    from sparkbooks.llm import loadtest

    real = loadtest.random_prompts
    monkeypatch.setattr(loadtest, "random_prompts",  # every timed request the same prompt: the old single_stream
                        lambda n, words, seed=0: real(n, words, seed=seed) if n == 1 else real(1, words, seed=seed) * n)
    hot = llm.sweep(endpoint, levels=[1], requests_per_level=3, input_tokens=40, output_tokens=2, prompt_cache=True)
    assert hot.loc[1, "ttft_refused"] > 0  # the audit can fail: the server said the prompt came from its cache
    cold = llm.sweep(endpoint, levels=[1], requests_per_level=3, input_tokens=40, output_tokens=2, prompt_cache=False)
    assert cold.loc[1, "ttft_refused"] == 0 and cold.loc[1, "ttft_audited"] == 4


def test_ngram_speculation_drafts_from_the_prompt_and_keeps_greedy_text(endpoint):
    text = "Repeat exactly: red green blue red green blue red green blue red green blue red green blue."
    with llm.stand_in(ctx_size=1024, parallel=1, extra_args=llamacpp.NGRAM_SPECULATION) as spec_server:
        result = llm.speculation(endpoint, llm.connect(spec_server.base_url), [("copy", [{"role": "user", "content": text}])],
                                 max_tokens=24, n_boot=50)
    row = result.table.iloc[0]
    assert row["drafted"] > 0 and 0 < row["accepted"] <= row["drafted"]  # the server's own draft counters
    assert result.identical == 1 and row["plain_tok_s"] > 0 and row["speculative_tok_s"] > 0


def test_prompt_length_sweep_prefills_longer_prompts_for_longer(endpoint):
    table = llm.prompt_length_sweep(endpoint, input_tokens=[32, 240], output_tokens=4, requests=2)
    assert table.loc[240, "in_tokens"] > 4 * table.loc[32, "in_tokens"]
    assert table.loc[240, "ttft_p50_s"] > table.loc[32, "ttft_p50_s"] and (table["prefill_tok_s"] > 0).all()


def test_batched_bench_from_the_same_source_measures_prefill_and_decode(server, monkeypatch):
    import subprocess

    ran, real = [], subprocess.run
    monkeypatch.setattr(llamacpp, "default_threads", lambda: 1)  # the server's rule, e.g. on a busy machine
    monkeypatch.setattr(llamacpp.subprocess, "run", lambda cmd, **kw: (ran.append(cmd), real(cmd, **kw))[1])
    table = llamacpp.run_batched_bench(server.model, prompt_tokens=[32], output_tokens=8, parallel=[1, 2])
    assert list(table["parallel"]) == [1, 2] and (table["aggregate_decode_tok_s"] > 0).all() and (table["prefill_tok_s"] > 0).all()
    # threads and polling as the server runs them
    cmd = ran[0]
    assert cmd[cmd.index("-t") + 1] == "1" and cmd[cmd.index("--poll") + 1] == "0"


def test_an_unstreamed_reply_carries_the_servers_own_decode_clock(endpoint):
    reply = llm.chat(endpoint, [{"role": "user", "content": "Count to ten."}], max_tokens=8, seed=0, stream=False,
                     extra_body={"ignore_eos": True})
    assert reply.completion_tokens == 8 and reply.server_decode_tok_s and reply.server_decode_tok_s > 0


def test_lockstep_sends_each_level_as_one_batch_of_exact_length_prompts(endpoint, server):
    table = llm.engine_check.lockstep(endpoint, levels=[1, 2], input_tokens=24, output_tokens=6, rounds=2)
    assert list(table.index) == [1, 2] and list(table["requests"]) == [2, 4]
    assert (table["in_tokens"] == 24).all() and (table["server_tok_s"] > 0).all()
    bench = llamacpp.run_batched_bench(server.model, prompt_tokens=[24], output_tokens=6, parallel=[1, 2])
    assert (table["rate_spread"] >= 1).all()
    compared = llm.engine_check.against_engine(bench, table)
    assert list(compared.table.columns[:3]) == ["engine_tok_s", "server_tok_s", "server/engine"]
    verdict = "— within ±10% at every level" if compared.within else "— not within ±10% at every level"
    assert verdict in compared.server_sentence() and compared.streamed_within is None
    # review 44: a level above the server's 2 slots would count queued prompts as decoding beside the others
    with pytest.raises(sb.exceptions.InputError, match="2 slots"):
        llm.engine_check.lockstep(endpoint, levels=[3], input_tokens=24, output_tokens=6, rounds=1)


def test_every_cold_request_carries_its_own_cache_salt():
    """Review 44: vLLM's prefix cache answered the chat template's blocks of every 'cold' prompt; a fresh cache_salt
    per request (vLLM keys its cache by it) makes the cold TTFT a full prefill there too."""
    with scripted([{"content": "ok"}] * 12) as (url, requests):
        llm.single_stream(llm.Endpoint(url, "m", ("m",)), [{"role": "user", "content": "hi"}], repeats=3, max_tokens=4)
    timed = [r for r in requests if "ignore_eos" in r]
    salts = [r.get("cache_salt") for r in timed]
    assert len(timed) == 4 and None not in salts and len(set(salts)) == 4 and all(r["cache_prompt"] is False for r in timed)


def test_structured_requests_switch_a_thinking_models_reasoning_off():
    """Review 44: Nemotron 3 thinks by default and vLLM applies the grammar only after the trace, so a 48-token
    constrained answer came back empty and Step 5's assert stopped the run on a Spark. Extraction and the schema-routed
    tool choice now send enable_thinking: false (templates without the switch ignore it)."""
    answer = {"content": json.dumps({"person": "A B", "city": "C", "country": "D", "year": 1990})}
    with scripted([answer]) as (url, requests):
        llm.run_extractions(llm.Endpoint(url, "m", ("m",)), [{"text": "x", "expected": {"person": "A B"}}],
                            schema=sb.documents.BIRTH_SCHEMA, instruction="Extract.")
    assert requests[0]["chat_template_kwargs"] == {"enable_thinking": False}
    choice = {"content": json.dumps({"tool": "convert", "arguments": {"value": 1, "from_unit": "km", "to_unit": "mi"}})}
    tool = llm.Tool("convert", "Convert.", {"type": "object", "properties": {"value": {"type": "number"},
                    "from_unit": {"type": "string"}, "to_unit": {"type": "string"}}}, lambda **kw: {"value": 0.62})
    with scripted([choice, {"content": "0.62 mi"}]) as (url, requests):
        llm.tool_call_via_schema(llm.Endpoint(url, "m", ("m",)), "1 km in miles?", [tool])
    assert all(r["chat_template_kwargs"] == {"enable_thinking": False} for r in requests)


def test_lockstep_refuses_a_server_without_llama_cpps_native_api():
    with scripted([]) as (url, _):  # answers every POST with a chat completion: no llama.cpp /tokenize
        with pytest.raises(sb.exceptions.InputError, match="llama-server"):
            llm.engine_check.lockstep(llm.Endpoint(url, "m", ("m",)), levels=[1], input_tokens=8, output_tokens=2, timeout=5)


def test_constrained_and_unconstrained_extraction_are_scored_per_field(endpoint):
    from sparkbooks import documents

    items = documents.birth_sentences(4, seed=1)
    for constrained in (True, False):
        table = llm.run_extractions(endpoint, items, schema=documents.BIRTH_SCHEMA, constrained=constrained, concurrency=2,
                                    instruction="Extract the person born, the city, country and year, as JSON.")
        assert list(table["text"]) == [i["text"] for i in items]  # order kept under concurrency
        assert {"person_ok", "city_ok", "country_ok", "year_ok", "all_ok", "answer"} <= set(table.columns)
        if constrained:
            assert table["valid"].all()
        accuracy = llm.field_accuracy(table)
        assert list(accuracy.index) == ["valid", "person", "city", "country", "year", "all fields"]
        assert ((accuracy["low"] <= accuracy["rate"]) & (accuracy["rate"] <= accuracy["high"])).all()


def test_chat_widget_streams_and_keeps_history(endpoint):
    box = llm.chat_widget.ChatBox(endpoint, system_prompt="Be brief.", max_tokens=24)
    answer = box.send("Name a colour.")
    assert answer and box.history[-1] == {"role": "assistant", "content": answer}
    assert "tokens" in box.status.value and "Name a colour." in box.log.value


def test_server_dying_mid_stream_is_reported():
    with llm.stand_in(ctx_size=2048, parallel=1) as doomed:
        ep = llm.connect(doomed.base_url)
        first = threading.Event()
        killer = threading.Thread(target=lambda: first.wait(30) and os.kill(doomed.pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(ServerDiedError, match="died"):
            llm.chat(ep, [{"role": "user", "content": "Write a very long story about the sea."}], max_tokens=2000,
                     on_text=lambda _: first.set())
        killer.join()
    assert first.is_set()


def test_stream_that_stalls_mid_answer_raises_a_timeout():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Stalling(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(3)  # then nothing: a server stuck mid-answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        stalled = llm.Endpoint(f"http://127.0.0.1:{httpd.server_address[1]}/v1", "m", ("m",))
        start = time.perf_counter()
        with pytest.raises(RequestTimeoutError, match="stopped sending for 0.5 s"):
            llm.chat(stalled, [{"role": "user", "content": "hi"}], timeout=0.5)
        assert time.perf_counter() - start < 2.5
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_free_text_answers_from_any_model_are_scored_like_a_servers():
    items = [{"text": "a", "expected": {"person": "Ana Ruiz", "year": 1931}},
             {"text": "b", "expected": {"person": "Tom Berg", "year": 1960}},
             {"text": "c", "expected": {"person": "Li Wei", "year": 1999}}]
    schema = {"type": "object", "required": ["person", "year"],
              "properties": {"person": {"type": "string"}, "year": {"type": "integer"}}}
    answers = ['Sure! {"person": "ana  ruiz", "year": 1931} hope that helps', '{"person": "Tom Berg", "year": 1961}',
               '{"person": "Li Wei"']
    table = sb.llm.score_answers(items, answers, schema=schema)
    assert table["valid"].tolist() == [True, True, False]
    assert table["all_ok"].tolist() == [True, False, False] and table["year_ok"].tolist() == [True, False, False]
    assert "year: 1961 (answer 1960)" in table.loc[1, "wrong"] and table.loc[2, "wrong"] == "not schema-valid"
    assert sb.llm.parse_answer("no json here", schema).problem.startswith("JSONDecodeError")
    with pytest.raises(sb.InputError):
        sb.llm.score_answers(items, answers[:2], schema=schema)


# ---- llama.cpp on a GPU: the device policy decides the build and the offload (issue 52 item 5) ----------------------

def _fake_gb10(tmp_path, monkeypatch, *, nvcc: bool):
    """A DGX Spark as sparkbooks sees it: the device probe (GB10, sm 12.1), 10 X925 + 10 A725 cores, nvcc or not."""
    from sparkbooks import devices, hardware, settings

    monkeypatch.delenv("SPARKBOOKS_ACCELERATOR", raising=False)
    monkeypatch.delenv("CUDACXX", raising=False)
    settings.reset()
    devices.refresh(devices.Devices(policy="auto", torch_cuda=1, cuda_name="NVIDIA GB10", compute_capability="12.1",
                                    unified_memory=True, nccl=True, installed=("torch",)))
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(f"processor\t: {i}\nCPU part\t: {'0xd85' if i < 10 else '0xd87'}\n\n" for i in range(20)))
    monkeypatch.setattr(hardware, "_CPUINFO", cpuinfo)
    monkeypatch.setattr(hardware, "_SYS_CPU", tmp_path / "no-sysfs")
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(20)), raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if nvcc:
        (bin_dir / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0'\n")
        (bin_dir / "nvcc").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(llamacpp, "_nvcc", lambda: str(bin_dir / "nvcc") if nvcc else None)
    monkeypatch.setattr(llamacpp.os, "getloadavg", lambda: (0.5, 0.5, 0.5))  # an idle Spark, whatever this VM's load


@pytest.fixture
def _reset_devices():
    from sparkbooks import devices, settings

    yield
    settings.reset()
    devices.refresh()


def test_llama_cpp_builds_for_cuda_and_offloads_on_a_spark(tmp_path, monkeypatch, _reset_devices):
    from sparkbooks import settings

    _fake_gb10(tmp_path, monkeypatch, nvcc=True)
    flags = llamacpp.build_flags()
    assert "-DGGML_CUDA=ON" in flags and "-DCMAKE_CUDA_ARCHITECTURES=121" in flags and "-DGGML_NATIVE=OFF" in flags
    server = llamacpp.LlamaServer(tmp_path / "m.gguf", binary=tmp_path / "llama-server", port=8080)
    command = server.command()
    assert command[command.index("--n-gpu-layers") + 1] == str(llamacpp.ALL_LAYERS)
    assert command[command.index("--threads") + 1] == "10"  # the X925 cores, not the A725s
    settings.accelerator = "cpu"
    command = server.command()
    assert command[command.index("--n-gpu-layers") + 1] == "0" and "-DGGML_CUDA=ON" not in llamacpp.build_flags()


def test_llama_cpp_without_nvcc_builds_for_the_cpu_and_keeps_its_cache_key(tmp_path, monkeypatch, _reset_devices):
    cpu_binary = llamacpp.cached_tool("llama-server")  # this machine: no GPU, the CPU build
    _fake_gb10(tmp_path, monkeypatch, nvcc=False)
    assert llamacpp.build_flags() == list(llamacpp.CMAKE_FLAGS)
    assert llamacpp.cached_tool("llama-server") == cpu_binary
    _fake_gb10(tmp_path, monkeypatch, nvcc=True)
    assert llamacpp.cached_tool("llama-server") != cpu_binary  # the CUDA build is cached apart


@pytest.mark.parametrize("n", [30, 200, 2000])  # the cpu and spark profiles' sizes, and many more
def test_the_worked_example_answers_occur_in_no_test_sentence(n):
    # review of issue 44, finding 4: the example's year 1931 was in the test set, and the model copied it
    from sparkbooks import documents

    text, answer = documents.BIRTH_EXAMPLE
    sentences = documents.birth_sentences(n, seed=0)
    assert all(str(v) in text for v in answer.values())
    assert not [v for v in answer.values() for s in sentences if str(v) in s["text"]]
