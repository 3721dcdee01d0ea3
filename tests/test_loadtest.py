"""Load-test arithmetic and the consistency checks, on replies whose timings are known."""

import dataclasses

import pandas as pd
import pytest

from sparkbooks import llm
from sparkbooks.llm.client import Reply
from sparkbooks.llm.loadtest import _row, random_prompts


def _reply(ttft: float, gaps: list[float], prompt: int = 10) -> Reply:
    arrivals = [ttft]
    for gap in gaps:
        arrivals.append(arrivals[-1] + gap)
    return Reply(text="x", prompt_tokens=prompt, completion_tokens=len(arrivals), ttft_s=ttft, total_s=arrivals[-1],
                 server_decode_tok_s=1 / gaps[0], arrivals_s=arrivals)


def test_tpot_and_itl_follow_vllm_bench_serve_definitions():
    reply = _reply(0.5, [0.1, 0.1, 0.3])
    assert reply.tpot_s == pytest.approx(0.5 / 3) and reply.decode_tok_s == pytest.approx(6.0)
    assert reply.itl_s == pytest.approx([0.1, 0.1, 0.3])


def test_a_row_pools_itl_and_takes_per_stream_speed_from_tpot():
    row = _row([_reply(0.2, [0.1] * 9), _reply(0.4, [0.2] * 9)], wall=3.0, asked=10)
    assert row["out_tokens"] == 10 and row["aggregate_tok_s"] == pytest.approx(20 / 3)
    assert row["tpot_p50_ms"] == pytest.approx(150) and row["per_stream_tok_s"] == pytest.approx(1 / 0.15)
    assert row["itl_p50_ms"] == pytest.approx(150) and row["itl_p99_ms"] == pytest.approx(200)
    assert row["short_outputs"] == 0 and _row([_reply(0.2, [0.1] * 9)], wall=1.0, asked=12)["short_outputs"] == 1


def test_random_prompts_are_unique_and_reproducible():
    prompts = random_prompts(200, 20, seed=3)
    assert len(set(prompts)) == 200 and len({p[:9] for p in prompts}) == 200  # distinct openings: no prefix-cache hit
    assert prompts == random_prompts(200, 20, seed=3) and all(len(p.split()) == 21 for p in prompts)


def _single(rates: list[float], tokens: int = 16) -> llm.SingleStream:
    replies = [_reply(0.1, [1 / r] * (tokens - 1)) for r in rates]
    return llm.SingleStream(replies, llm.Spread.of([0.1] * len(rates)), llm.Spread.of(rates), llm.Spread.of(rates), tokens)


def _sweep(per_stream: float, short: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"per_stream_tok_s": [per_stream, per_stream / 2], "short_outputs": [short, 0]},
                        index=pd.Index([1, 4], name="concurrency"))


def test_consistent_runs_are_not_flagged():
    assert llm.consistency(_single([60, 62, 61, 59, 63]), _sweep(70)) == []


def test_cache_hits_the_servers_own_counter_saw_are_flagged():
    swept = _sweep(70).assign(requests=32, cache_allowed=3, metrics_cached=[0.0, float("nan")])
    assert llm.consistency(_single([60, 62, 61, 59, 63]), swept) == []  # no counter at 4 streams: nothing to say
    problems = llm.consistency(_single([60, 62, 61, 59, 63]), swept.assign(metrics_cached=[96.0, 2000.0]))
    assert len(problems) == 1 and "counted 2000 cached prompt tokens over 32 requests" in problems[0]


def test_a_ttft_tail_with_a_free_slot_for_every_stream_is_a_stall():
    """Review 44: the executed sweep's 2-stream level had TTFT p99 2.305 s against p50 0.263 s and passed."""
    swept = _sweep(70).assign(ttft_p50_s=[0.142, 0.263], ttft_p99_s=[0.200, 2.305], queued=[False, False], in_tokens=63.0)
    problems = llm.consistency(_single([60, 62, 61, 59, 63]), swept)
    assert len(problems) == 1 and "TTFT p99 2.305 s is 8.8× its p50" in problems[0]
    assert llm.consistency(_single([60, 62, 61, 59, 63]), swept.assign(queued=[False, True])) == []  # waiting for a slot
    # round 2: the Spark profile's first burst, 4 × 1,024 tokens, exceeds one 2,048-token prefill step: its tail queues
    assert llm.consistency(_single([60, 62, 61, 59, 63]), swept.assign(in_tokens=1024.0)) == []


def test_single_stream_and_sweep_disagreeing_is_flagged():
    # the run the review found: 6.2 tok/s in one step, 118.9 at one stream in the sweep
    problems = llm.consistency(_single([6.2, 6.1, 6.3, 6.2, 6.2]), _sweep(118.9))
    assert len(problems) == 1 and "19.2× apart" in problems[0]


def test_implausible_spread_between_repeats_is_flagged():
    problems = llm.consistency(_single([30, 60, 61, 62, 60]), _sweep(60))
    assert len(problems) == 1 and "ranged 30.0–62.0" in problems[0]


def test_outputs_shorter_than_asked_are_flagged():
    problems = llm.consistency(_single([60] * 5), _sweep(60, short=3))
    assert len(problems) == 1 and "3 outputs were shorter" in problems[0] and "ignore_eos" in problems[0]
    asked_more = dataclasses.replace(_single([60] * 5, tokens=16), asked_tokens=20)  # repeats stopped at 16 of 20
    assert "5 outputs were shorter" in llm.consistency(asked_more, _sweep(60))[0]


def test_contaminated_ttft_samples_are_refused_and_counted():
    clean, hit, silent = (dataclasses.replace(_reply(0.2, [0.1] * 3), cached_tokens=3),
                          dataclasses.replace(_reply(0.01, [0.1] * 3), cached_tokens=30), _reply(0.3, [0.1] * 3))
    kept, audit = llm.audit_replies([clean, hit, silent], allowed=3)
    assert kept == [clean, silent] and (audit.audited, audit.refused, audit.unaudited) == (1, 1, 1)
    row = _row([clean, hit, silent], wall=1.0, asked=4, published=kept)
    assert row["ttft_p50_s"] == pytest.approx(0.25) and row["requests"] == 3  # the cache hit's 0.01 s is not published


def test_unique_messages_change_the_first_token_only():
    from sparkbooks.llm.loadtest import _tag, unique_messages

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    tagged = unique_messages(messages, "123")
    assert tagged[0]["content"] == "123 Be brief." and tagged[1] == messages[1] and messages[0]["content"] == "Be brief."
    import random
    rng = random.Random(0)
    tags = [_tag(i, rng) for i in range(18)]
    assert all(a[0] != b[0] for a, b in zip(tags, tags[1:]))  # consecutive prompts differ from the first digit


def test_every_level_is_checked_not_only_one_stream():
    table = pd.DataFrame({"per_stream_tok_s": [60.0, 45.0, 90.0], "server_tok_s_p50": [61.0, 46.0, 30.0],
                          "short_outputs": [0, 0, 0], "ttft_audited": [32, 32, 0], "ttft_unaudited": [0, 0, 0]},
                         index=pd.Index([1, 4, 16], name="concurrency"))
    problems = llm.consistency(_single([60] * 5), table)
    assert any("at 16 streams the client saw 90.0" in p for p in problems)  # client vs server clock at a high level
    assert any("faster than" in p and "at 16 streams" in p for p in problems)  # more streams cannot be faster each
    assert any("no TTFT published" in p for p in problems) and not any("at 4 streams" in p for p in problems)


def test_single_stream_without_cache_evidence_is_flagged():
    single = dataclasses.replace(_single([60] * 5), audit=llm.CacheAudit(3, "", audited=0, refused=0, unaudited=5))
    assert any("carry no cache evidence" in p for p in llm.consistency(single, _sweep(60)))


def test_spread_of_nothing_is_empty_not_an_error():
    empty = llm.Spread.of([None, None])
    assert empty.n == 0 and str(empty).startswith("nan")


def test_an_unconstrained_answer_is_read_from_prose_or_a_code_fence():
    from sparkbooks.llm.extraction import _first_json_object

    assert _first_json_object('Sure! ```json\n{"a": {"b": 1}}\n``` done') == {"a": {"b": 1}}
    assert _first_json_object("{broken {\"x\": 2}") == {"x": 2}
    with pytest.raises(ValueError, match="no JSON object"):
        _first_json_object("no braces here")


def test_speculation_summarises_speed_acceptance_and_identity(monkeypatch):
    from sparkbooks.llm import loadtest

    plain, spec = (llm.Endpoint(url, "m", ("m",)) for url in ("http://plain/v1", "http://spec/v1"))
    answers = {"a": ("x y z", "x y z"), "b": ("p q", "p r")}  # the second prompt's greedy text changed

    def fake_chat(endpoint, messages, **kw):
        text = answers[messages[0]["content"]][endpoint is spec] if kw.get("temperature") == 0.0 else ""
        speculative = endpoint is spec
        return Reply(text=text, completion_tokens=20, server_decode_tok_s=90.0 if speculative else 60.0,
                     draft_tokens=16 if speculative else None, draft_accepted=12 if speculative else None)

    monkeypatch.setattr(loadtest, "chat", fake_chat)
    prompts = [("copy", [{"role": "user", "content": "a"}]), ("copy", [{"role": "user", "content": "b"}])]
    result = llm.speculation(plain, spec, prompts, n_boot=200)
    assert result.speedup == pytest.approx(1.5) and result.speedup_low != result.speedup_low  # one identical prompt: no interval
    assert result.acceptance == pytest.approx(24 / 32) and result.identical == 1
    assert "1.50×" in str(result) and "1 of 2 greedy outputs identical" in str(result) and "the 1 prompts whose" in str(result)
    # review of issue 44 (round 3), finding 4: a changed greedy output is reported, never silently averaged in
    assert result.problems == ["1 of 2 greedy outputs changed with speculation (1 copy): their speed-ups compare different "
                               "texts, so the speed-up leaves them out"]
    task = result.by_task().loc["copy"]
    assert (task["prompts"], task["identical"]) == (2, 1) and task["speedup_geomean"] == pytest.approx(result.speedup)


def test_speculation_per_task_speed_up_is_the_headlines_geometric_mean(monkeypatch):
    from sparkbooks.llm import loadtest

    plain, spec = (llm.Endpoint(url, "m", ("m",)) for url in ("http://plain/v1", "http://spec/v1"))
    rates = {"a": 30.0, "b": 120.0}  # speed-ups 2 and 0.5: geometric mean 1, arithmetic 1.25

    def fake_chat(endpoint, messages, **kw):
        content = messages[0]["content"]
        return Reply(text=content, completion_tokens=20, draft_tokens=8, draft_accepted=4,
                     server_decode_tok_s=60.0 if endpoint is spec else rates.get(content, 60.0))

    monkeypatch.setattr(loadtest, "chat", fake_chat)
    result = llm.speculation(plain, spec, [("t", [{"role": "user", "content": c}]) for c in "ab"], n_boot=100)
    assert result.speedup == pytest.approx(1.0) and result.problems == []
    assert result.by_task().loc["t", "speedup_geomean"] == pytest.approx(1.0)  # not the arithmetic 1.25


def _fake_template_server(monkeypatch, *, tokenize_messages: bool):
    """A server whose template is ``<bos> <role> ROLE words… <end>`` (+ ``<assistant>``): 3 tokens before the first text.

    It has no ``/apply-template`` (vLLM has none); its ``/tokenize`` takes ``messages`` when ``tokenize_messages``.
    ``chat`` answers with the prompt's token count, as a server's ``usage`` does.
    """
    import httpx

    from sparkbooks.llm import cache_audit

    def render(messages, generation=True):
        out = ["<bos>"]
        for m in messages:
            out += ["<role>", m["role"], *m["content"].split(), "<end>"]
        return out + (["<assistant>"] if generation else [])

    def post(url, json=None, timeout=None):
        request = httpx.Request("POST", url)
        if url.endswith("/tokenize") and tokenize_messages and "messages" in json:
            return httpx.Response(200, json={"tokens": [hash(t) % 1000 for t in render(json["messages"])]}, request=request)
        return httpx.Response(404, json={"error": "not found"}, request=request)

    monkeypatch.setattr(httpx, "post", post)
    monkeypatch.setattr(cache_audit, "chat", lambda ep, messages, **kw: Reply("", prompt_tokens=len(render(messages))),
                        raising=False)
    return llm.Endpoint("http://fake/v1", "m", ("m",))


@pytest.mark.parametrize("tokenize_messages", [True, False])
def test_vllm_template_allowance_never_covers_message_text(monkeypatch, tokenize_messages):
    # review of issue 44, finding 1: without /apply-template the allowance emptied only the first message, so a
    # whole user question counted as "template" (14 of 27 tokens allowed on a fake server with a 5-token template)
    endpoint = _fake_template_server(monkeypatch, tokenize_messages=tokenize_messages)
    messages = [{"role": "system", "content": "Be brief and kind."},
                {"role": "user", "content": "Why is the sky blue on a clear day?"}]
    allowed, how = llm.template_prefix(endpoint, messages)
    assert allowed == (3 if tokenize_messages else 0), how  # vLLM's /tokenize with messages: exact; no way: strict
    assert ("exact" in how) == tokenize_messages
    # tagged at the last message (warm template): the system prompt is shared too, the question is not
    warm, _ = llm.template_prefix(endpoint, messages, at=-1)
    assert warm == (3 + 4 + 1 + 2 if tokenize_messages else 0)


def test_unique_messages_can_tag_the_last_message_keeping_the_system_prompt_shared():
    from sparkbooks.llm.cache_audit import unique_messages

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    tagged = unique_messages(messages, "123", at=-1)
    assert tagged[0] == messages[0] and tagged[1]["content"] == "123 Hi"


def test_sweep_and_length_sweep_disagreeing_on_ttft_is_flagged():
    # review of issue 44, finding 7: 2.64 s in the sweep vs 2.12 s in the length sweep at the same 63 tokens (1.25×)
    sweep = _sweep(60).assign(ttft_p50_s=[2.64, 9.0], in_tokens=[63.0, 63.0])
    lengths = pd.DataFrame({"in_tokens": [63.2, 250.0], "ttft_p50_s": [2.12, 8.0], "tpot_p50_ms": [16.7, 17.0]},
                           index=pd.Index([64, 256]))
    problems = llm.consistency(_single([60] * 5), sweep, lengths=lengths)
    assert len(problems) == 1 and "1.25× apart" in problems[0] and "63 tokens" in problems[0]
    agreeing = lengths.assign(ttft_p50_s=[2.50, 8.0])  # 1.06×, and the 250-token row is not the same length
    assert llm.consistency(_single([60] * 5), sweep, lengths=agreeing) == []


def _fake_vllm(monkeypatch, *, details: bool, block: int = 16) -> llm.Endpoint:
    """vLLM's prefix cache in 16-token blocks; with ``--enable-prompt-tokens-details`` it sends
    ``prompt_tokens_details.cached_tokens`` only when the count is non-zero (``if … and num_cached_tokens:``)."""
    from sparkbooks.llm import cache_audit, loadtest
    from sparkbooks.llm.cache_audit import TemplatePrefix, _shared

    seen: list[list[str]] = []

    def fake_chat(endpoint, messages, *, max_tokens=16, **kw):
        tokens = ["<bos>", *(t for m in messages for t in ["<role>", m["role"], *str(m["content"]).split(), "<end>"]),
                  "<assistant>"]
        hit = min(max((_shared(tokens, old) for old in seen), default=0), len(tokens) - 1) // block * block
        seen.append(tokens)
        return Reply("x", finish_reason="length", prompt_tokens=len(tokens), completion_tokens=max_tokens, ttft_s=0.05,
                     total_s=0.05 + 0.01 * (max_tokens - 1), cached_tokens=hit if details and hit else None)

    for module in (loadtest, cache_audit):
        monkeypatch.setattr(module, "chat", fake_chat)
    monkeypatch.setattr(loadtest, "template_prefix", lambda *a, **k: TemplatePrefix(3, "the server's /tokenize (exact)"))
    monkeypatch.setattr(loadtest, "server_slots", lambda endpoint: None)
    return llm.Endpoint("http://vllm/v1", "m", ("m",))


def test_vllm_omitting_a_zero_cached_count_is_audited_clean_when_it_reports_hits(monkeypatch):
    # review of issue 44 (round 3), finding 1: vLLM sends no prompt_tokens_details when 0 tokens were cached, so every
    # clean sample counted as "unaudited" and `consistency` flagged every Spark run
    endpoint = _fake_vllm(monkeypatch, details=True)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]
    single = llm.single_stream(endpoint, messages, repeats=5, max_tokens=16)
    table = llm.sweep(endpoint, levels=[1, 2], requests_per_level=8, input_tokens=64, output_tokens=16)
    assert (single.audit.audited, single.audit.unaudited, single.audit.refused) == (5, 0, 0), single.audit
    assert "omits a 0" in single.audit.how
    assert table["ttft_unaudited"].sum() == 0 and table["ttft_audited"].tolist() == [8, 8]
    assert llm.consistency(single, table) == []


def test_a_server_that_never_reports_cache_hits_is_not_audited_and_names_the_flag(monkeypatch):
    endpoint = _fake_vllm(monkeypatch, details=False)
    single = llm.single_stream(endpoint, [{"role": "user", "content": "Why is the sky blue?"}], repeats=3, max_tokens=16)
    assert single.audit.unaudited == 3 and "--enable-prompt-tokens-details" in str(single.audit)
    problems = llm.consistency(single, llm.sweep(endpoint, levels=[1], requests_per_level=4, output_tokens=16))
    assert problems and all("--enable-prompt-tokens-details --enable-prefix-caching" in p for p in problems), problems


def test_a_known_reporter_still_refuses_a_counted_cache_hit():
    from sparkbooks.llm.cache_audit import CacheReporting

    replies = [Reply("", cached_tokens=None), Reply("", cached_tokens=40)]
    kept, audit = llm.audit_replies(replies, allowed=3, reporting=CacheReporting(True, "probe"))
    assert (audit.audited, audit.refused, audit.unaudited) == (1, 1, 0) and kept == replies[:1]
    _, unknown = llm.audit_replies(replies, allowed=3)
    assert unknown.unaudited == 1


def test_a_disturbed_row_of_the_prompt_length_sweep_is_flagged():
    # review of issue 44 (round 3), finding 2: the executed run's 256-token row (TTFT 3.21 s, TPOT 76.7 ms on a loaded
    # machine, against 304 tok/s prefill and 10.4 ms at 63 tokens) passed as consistent
    run = pd.DataFrame({"in_tokens": [47.0, 63.0, 256.0], "ttft_p50_s": [0.174, 0.207, 3.207],
                        "tpot_p50_ms": [11.169, 10.394, 76.706]}, index=pd.Index([48, 64, 256]))
    sweep = _sweep(84).assign(ttft_p50_s=[0.204, 0.8], in_tokens=[63.0, 63.0])
    problems = llm.consistency(_single([84] * 5), sweep, lengths=run)
    assert any("256 tokens ran at 80 tok/s, at 63 tokens 304 tok/s" in p and "256-token row was disturbed" in p for p in problems), problems
    assert any("TPOT p50 at 256 prompt tokens 76.7 ms" in p for p in problems), problems
    assert len(problems) == 2, problems  # one finding per check, naming the disturbed row only
    # a quiet sweep: prefill faster per token at 256 tokens, decode as in Step 3
    quiet = run.assign(ttft_p50_s=[0.174, 0.207, 0.62], tpot_p50_ms=[11.2, 10.4, 12.5])
    assert llm.consistency(_single([84] * 5), sweep, lengths=quiet) == []
    # a disturbed short row: 48 tokens slower than 256
    slow_short = quiet.assign(ttft_p50_s=[1.2, 0.207, 0.62])
    assert any("the 47-token row was disturbed" in p for p in llm.consistency(_single([84] * 5), sweep, lengths=slow_short))


def test_a_server_without_its_own_clock_passes_step_3_saying_so(monkeypatch):
    # review of issue 44 (round 4), finding 1: vLLM sends no `timings`, so the server's decode rate was NaN and Step 3's
    # `0.5 < client / server < 2` raised; the closing line still said "client and server clocks within 2×"
    from sparkbooks.llm.serving_checks import checks_made, clocks

    endpoint = _fake_vllm(monkeypatch, details=True)
    single = llm.single_stream(endpoint, [{"role": "user", "content": "Why is the sky blue?"}], repeats=3, max_tokens=16)
    table = llm.sweep(endpoint, levels=[1, 2], requests_per_level=4, input_tokens=32, output_tokens=16)
    old_cell = 0.5 < single.decode_tok_s.median / (single.server_decode_tok_s.median or float("nan")) < 2
    assert not old_cell  # what Step 3 asserted: NaN compares False, so the guide stopped there on vLLM
    check = clocks(single)
    assert (check.checked, check.agree) == (False, True) and "no server clock" in str(check)
    assert llm.consistency(single, table) == []
    made = checks_made(single, table)
    assert not any("clocks within" in c for c in made) and any("not compared (no server clock)" in c for c in made), made
    # llama.cpp times itself: there the check is made, and fails when the clocks disagree
    timed = _single([60, 62, 61])
    assert clocks(timed).checked and clocks(timed).agree
    assert not clocks(dataclasses.replace(timed, server_decode_tok_s=llm.Spread.of([20, 21, 22]))).agree
    swept = _sweep(61).assign(server_tok_s_p50=[60.0, 30.0])
    assert any("clocks within 2.0× at every level" in c for c in checks_made(timed, swept))


def test_a_warm_run_with_no_cache_hit_is_not_measured(monkeypatch):
    # review of issue 44 (round 4), finding 2: on a hybrid model vLLM's cache blocks span thousands of tokens, so the
    # shared template never hits; the "warm" TTFT was a cold one with a clean audit, and its note read "nan … from cache"
    endpoint = _fake_vllm(monkeypatch, details=True, block=2048)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]
    warm = llm.single_stream(endpoint, messages, repeats=3, max_tokens=8, prompt_cache=True)
    assert warm.ttft_s.n == 0 and warm.not_measured.startswith("no warm hit: not measured"), warm
    assert (warm.audit.audited, warm.audit.refused) == (3, 0) and warm.cached.median == 0  # not NaN: vLLM omits a 0
    # a cache that does hit the template: measured
    hit = Reply("x", prompt_tokens=20, completion_tokens=8, ttft_s=0.02, total_s=0.1, cached_tokens=3)
    from sparkbooks.llm import loadtest
    monkeypatch.setattr(loadtest, "chat", lambda *a, **k: hit)
    assert llm.single_stream(endpoint, messages, repeats=3, max_tokens=8, prompt_cache=True).ttft_s.n == 3


def test_step_3s_ttft_is_checked_against_the_length_sweep_row_of_its_length():
    # review of issue 44 (round 4), finding 5: Step 3 gave 0.162 s at 48 tokens, the length sweep 0.140 s at 47 tokens
    # (1.16×), yet `consistency` compared only the sweep's one stream and passed the run
    replies = [_reply(0.16, [0.009] * 15, prompt=48) for _ in range(5)]
    single = llm.SingleStream(replies, llm.Spread.of([0.162, 0.153, 0.163, 0.162, 0.160]), llm.Spread.of([111.3] * 5),
                              llm.Spread.of([111.0] * 5), 16)
    sweep = _sweep(110).assign(ttft_p50_s=[0.202, 0.5], in_tokens=[63.0, 63.0])
    lengths = pd.DataFrame({"in_tokens": [47.0, 63.0, 256.0], "ttft_p50_s": [0.140, 0.196, 0.688],
                            "tpot_p50_ms": [9.0, 9.0, 9.2]}, index=pd.Index([48, 64, 256]))
    problems = llm.consistency(single, sweep, lengths=lengths)
    assert len(problems) == 1 and "Step 3's single stream" in problems[0] and "1.16× apart" in problems[0], problems
    assert llm.consistency(single, sweep, lengths=lengths.assign(ttft_p50_s=[0.150, 0.196, 0.688])) == []


def test_the_speculation_speed_up_leaves_out_outputs_that_changed(monkeypatch):
    # review of issue 44 (round 4), finding 6: the headline 0.95× included the 2 of 8 prompts whose greedy text changed
    from sparkbooks.llm import loadtest

    plain, spec = (llm.Endpoint(url, "m", ("m",)) for url in ("http://plain/v1", "http://spec/v1"))

    def fake_chat(endpoint, messages, **kw):
        content, speculative = messages[0]["content"], endpoint is spec
        changed = content == "c" and speculative
        return Reply(text="other" if changed else content, completion_tokens=20, draft_tokens=8, draft_accepted=4,
                     server_decode_tok_s=(180.0 if changed else 90.0) if speculative else 60.0)

    monkeypatch.setattr(loadtest, "chat", fake_chat)
    result = llm.speculation(plain, spec, [("t", [{"role": "user", "content": c}]) for c in "abc"], n_boot=100)
    assert result.identical == 2 and result.speedup == pytest.approx(1.5)  # not the 1.89 the changed 3.0× would give
    assert result.by_task().loc["t", "speedup_geomean"] == pytest.approx(1.5) and "leaves them out" in result.problems[0]


def test_the_sweeps_aggregate_is_read_against_a_closed_loop_estimate_from_the_engines_own_rates():
    """Review 44: the headline 102.5 tok/s at 4 streams sat beside the engine's S_TG of 218 unexplained. A closed loop's
    requests each bring a prefill every stream waits through, and the first token comes from it (round 2):
    estimate = out / (in / P + (out − 1) / S_TG(B))."""
    from sparkbooks.llm.engine_check import against_engine

    bench = pd.DataFrame({"in_tokens": 64, "parallel": [1, 4], "aggregate_decode_tok_s": [155.0, 218.0],
                          "prefill_tok_s": [450.0, 900.0]})
    served = pd.DataFrame({"server_tok_s": [150.0, 210.0], "rate_spread": [1.0, 1.0]}, index=pd.Index([1, 4], name="streams"))
    swept = pd.DataFrame({"in_tokens": [64.0, 64.0], "out_tokens": [32.0, 32.0], "aggregate_tok_s": [88.0, 103.0],
                          "itl_p50_ms": [6.6, 20.0], "server_tok_s_p50": [150.0, 50.0]}, index=pd.Index([1, 4], name="concurrency"))
    table = against_engine(bench, served, swept).table
    assert table.loc[4, "closed_loop_estimate_tok_s"] == pytest.approx(32 / (64 / 450 + 31 / 218))  # 112.4
    assert table.loc[4, "aggregate/estimate"] == pytest.approx(103 / (32 / (64 / 450 + 31 / 218)))
    assert table.loc[4, "streamed/engine"] == pytest.approx(4 / 0.020 / 218) and table.loc[4, "streamed_server/engine"] == pytest.approx(200 / 218)
