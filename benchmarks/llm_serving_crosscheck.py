"""Does the playbook's load test measure what llama.cpp itself measures? The sweep through the server vs ``llama-batched-bench``.

Same model, same source build, same machine, one run: first ``llama-batched-bench`` (inside
the engine, no HTTP, no client) times prefill and decode at each number of parallel sequences;
then the stand-in server is started and ``sb.llm.sweep`` / ``prompt_length_sweep`` measure the
same prompt and output lengths through the OpenAI API. Compared:

* prefill tokens/s — the bench's ``S_PP`` at one sequence vs prompt tokens / TTFT at one stream;
* decode tokens/s at one stream — the bench's ``S_TG`` vs the sweep's 1 / TPOT;
* decode at B streams — the bench's ``S_TG`` (all B sequences decode in lock-step) vs the server doing the
  same work (``sb.llm.engine_check.lockstep``: B prompts in one request, not streamed, the server's own clock —
  the guide's check, goal ±10 %), and vs the streamed sweep's B / ITL p50 (the steady-state gap between streamed
  tokens, as the guide takes it; the client shares the machine, so it is expected to be lower: the table shows by how much).

    python benchmarks/llm_serving_crosscheck.py [--input-tokens 64] [--output-tokens 16] [--levels 1 2 4] [--requests 32]
"""

from __future__ import annotations

import argparse
import json

from sparkbooks import llm, sources
from sparkbooks.llm import llamacpp


SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"input_tokens": 16, "long_input_tokens": 32, "output_tokens": 4, "levels": [1], "requests": 2,
         "length_requests": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-tokens", type=int, default=64)
    parser.add_argument("--long-input-tokens", type=int, default=256)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--length-requests", type=int, default=8, help="requests per prompt length (one stream)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()

    model = sources.fetch(llamacpp.STAND_IN_SOURCE)
    args.threads = args.threads or llamacpp.default_threads()  # decided once: the engine and the server alike
    # the bench times each configuration once, the first one cold: a discarded run warms caches and page-ins first
    llamacpp.run_batched_bench(model, prompt_tokens=[args.input_tokens], output_tokens=args.output_tokens, parallel=[1],
                               threads=args.threads)
    bench = llamacpp.run_batched_bench(model, prompt_tokens=[args.input_tokens, args.long_input_tokens],
                                       output_tokens=args.output_tokens, parallel=args.levels, threads=args.threads)
    ctx = max(args.levels) * (args.long_input_tokens + args.output_tokens + 64)
    with llm.stand_in(ctx_size=max(ctx, 4096), parallel=max(args.levels), threads=args.threads) as server:
        endpoint = llm.connect(server.base_url)
        sweep = llm.sweep(endpoint, levels=args.levels, requests_per_level=args.requests, input_tokens=args.input_tokens,
                          output_tokens=args.output_tokens)
        lengths = llm.prompt_length_sweep(endpoint, input_tokens=[args.input_tokens, args.long_input_tokens],
                                          output_tokens=args.output_tokens, requests=args.length_requests)
        lockstep = llm.engine_check.lockstep(endpoint, levels=args.levels, input_tokens=args.input_tokens,
                                             output_tokens=args.output_tokens, rounds=1 if args.smoke else 3)

    rows = []
    for n in (args.input_tokens, args.long_input_tokens):
        engine = bench.query("parallel == 1 and in_tokens == @n").iloc[0]
        rows.append((f"prefill tok/s, {n}-token prompt, 1 stream", engine["prefill_tok_s"], lengths.loc[n, "prefill_tok_s"]))
    for level in args.levels:
        engine = bench.query("parallel == @level and in_tokens == @args.input_tokens").iloc[0]
        plural = "s" if level > 1 else ""
        rows.append((f"decode tok/s, {level} stream{plural}, lock-step", engine["aggregate_decode_tok_s"],
                     lockstep.loc[level, "server_tok_s"]))
        rows.append((f"decode tok/s, {level} stream{plural}, streamed sweep", engine["aggregate_decode_tok_s"],
                     level * 1000 / sweep.loc[level, "itl_p50_ms"]))  # B / ITL p50, as the guide takes it
    print(f"model: {model.name}; {args.input_tokens}-token prompts, {args.output_tokens} output tokens, "
          f"{args.requests} requests per level through the server")
    print(f"{'measure':<44} {'llama-batched-bench':>20} {'server':>13} {'server/bench':>13}")
    for name, engine, served in rows:
        print(f"{name:<44} {engine:20.1f} {served:13.1f} {served / engine:13.2f}")
    ratios = {name: round(served / engine, 3) for name, engine, served in rows}
    print(json.dumps({"prefill_ratio_1": ratios[rows[0][0]], "decode_ratio_1": ratios[rows[2][0]],
                      f"decode_ratio_{args.levels[-1]}": ratios[rows[-2][0]],
                      f"streamed_decode_ratio_{args.levels[-1]}": ratios[rows[-1][0]],
                      "bench_decode_tok_s_1": round(rows[2][1], 1), "server_decode_tok_s_1": round(rows[2][2], 1)}))


if __name__ == "__main__":
    main()
