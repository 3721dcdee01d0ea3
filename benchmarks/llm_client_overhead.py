"""Does the client see the speed the server reports? Client-measured decode tokens/s vs llama.cpp's own timings.

Same requests, one run: each streamed completion is timed by the client (tokens after the
first / time after the first) and by the server (``timings.predicted_per_second``). The
client path should stay within 5% of the server's rate. Needs a llama.cpp server: the
stand-in is started locally unless ``--base-url`` names one.

    python benchmarks/llm_client_overhead.py [--requests 12] [--max-tokens 128] [--base-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics

from sparkbooks import llm

PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how a bicycle stays upright.",
           "Describe the water cycle for a child.", "List the planets and one fact about each."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args()
    with contextlib.nullcontext() if args.base_url else llm.stand_in(ctx_size=4096, parallel=1) as server:
        endpoint = llm.connect(args.base_url or server.base_url)
        llm.chat(endpoint, [{"role": "user", "content": "warm up"}], max_tokens=8)
        rows = []
        for i in range(args.requests):
            reply = llm.chat(endpoint, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                             max_tokens=args.max_tokens, seed=i)
            if reply.decode_tok_s and reply.server_decode_tok_s:
                rows.append((i, reply.completion_tokens, reply.decode_tok_s, reply.server_decode_tok_s))
    if not rows:
        raise SystemExit("the server reported no timings (not llama.cpp?): nothing to compare")
    print(f"model: {endpoint.model} at {endpoint.base_url}")
    print(f"{'request':>7} {'tokens':>6} {'client tok/s':>13} {'server tok/s':>13} {'client/server':>14}")
    for i, n, client, srv in rows:
        print(f"{i:7d} {n:6d} {client:13.1f} {srv:13.1f} {client / srv:14.3f}")
    client = statistics.median(r[2] for r in rows)
    srv = statistics.median(r[3] for r in rows)
    print(json.dumps({"client_tok_s": round(client, 1), "server_tok_s": round(srv, 1), "overhead": round(1 - client / srv, 4)}))


if __name__ == "__main__":
    main()
