"""Does the client see the speed the server reports, alone and under concurrency? Client 1/TPOT vs llama.cpp's own timings.

Same requests, one run: each streamed completion is timed by the client (1 / TPOT, tokens after
the first over the time after the first) and by the server (``timings.predicted_per_second``,
the same interval as the slot saw it). At one stream the two should agree within a few percent;
with several streams the client's Python threads share the machine with the server, and any
delay in reading the stream shows here as client < server and as a longer inter-token-latency
tail (p99 ITL, client) than the server's mean time per token. Fixed output lengths
(``ignore_eos``) and unique prompts, as in the playbook's sweep. Needs a llama.cpp server: the
stand-in is started locally unless ``--base-url`` names one.

    python benchmarks/llm_client_overhead.py [--levels 1 2 4 8] [--requests 16] [--max-tokens 64] [--base-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sparkbooks import llm
from sparkbooks.llm.loadtest import random_prompts


SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"levels": [1, 2], "requests": 2, "max_tokens": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    with contextlib.nullcontext() if args.base_url else llm.stand_in(ctx_size=8192, parallel=max(args.levels)) as server:
        endpoint = llm.connect(args.base_url or server.base_url)
        rows = []
        for i, level in enumerate(args.levels):
            prompts = random_prompts(args.requests + level, 30, seed=100 + i)

            def one(prompt: str) -> llm.Reply:
                return llm.chat(endpoint, [{"role": "user", "content": prompt}], max_tokens=args.max_tokens,
                                extra_body={"ignore_eos": True})

            with ThreadPoolExecutor(level) as pool:
                list(pool.map(one, prompts[:level]))  # warm-up, one per stream
                replies = list(pool.map(one, prompts[level:]))
            timed = [r for r in replies if r.decode_tok_s and r.server_decode_tok_s]
            if not timed:
                raise SystemExit("the server reported no timings (not llama.cpp?): nothing to compare")
            ratios = [r.decode_tok_s / r.server_decode_tok_s for r in timed]
            itl = [gap for r in timed for gap in r.itl_s]
            rows.append({"level": level, "requests": len(timed),
                         "client_tok_s": statistics.median(r.decode_tok_s for r in timed),
                         "server_tok_s": statistics.median(r.server_decode_tok_s for r in timed),
                         "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "itl_p50_ms": 1000 * float(np.percentile(itl, 50)), "itl_p99_ms": 1000 * float(np.percentile(itl, 99)),
                         "server_ms_per_token": 1000 / statistics.median(r.server_decode_tok_s for r in timed)})
    print(f"model: {endpoint.model} at {endpoint.base_url}; {args.max_tokens} tokens per request, {args.requests} per level")
    print(f"{'streams':>7} {'client tok/s':>13} {'server tok/s':>13} {'client/server':>14} {'worst':>6} "
          f"{'ITL p50 ms':>11} {'ITL p99 ms':>11} {'server ms/token':>16}")
    for r in rows:
        print(f"{r['level']:7d} {r['client_tok_s']:13.1f} {r['server_tok_s']:13.1f} {r['ratio_median']:14.3f} {r['ratio_min']:6.3f} "
              f"{r['itl_p50_ms']:11.1f} {r['itl_p99_ms']:11.1f} {r['server_ms_per_token']:16.1f}")
    print(json.dumps({f"overhead_{r['level']}": round(1 - r["ratio_median"], 4) for r in rows}
                     | {f"itl_p99_ms_{rows[-1]['level']}": round(rows[-1]["itl_p99_ms"], 1)}))


if __name__ == "__main__":
    main()
