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


def test_spread_of_nothing_is_empty_not_an_error():
    empty = llm.Spread.of([None, None])
    assert empty.n == 0 and str(empty).startswith("nan")


def test_an_unconstrained_answer_is_read_from_prose_or_a_code_fence():
    from sparkbooks.llm.extraction import _first_json_object

    assert _first_json_object('Sure! ```json\n{"a": {"b": 1}}\n``` done') == {"a": {"b": 1}}
    assert _first_json_object("{broken {\"x\": 2}") == {"x": 2}
    with pytest.raises(ValueError, match="no JSON object"):
        _first_json_object("no braces here")
