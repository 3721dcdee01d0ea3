"""Load tests of a serving endpoint: concurrency sweeps with TTFT, per-stream and aggregate tokens/s."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .client import Endpoint, chat

__all__ = ["plot_sweep", "sweep"]


def sweep(endpoint: Endpoint, prompts: Sequence[str], *, levels: Sequence[int], requests_per_level: int,
          max_tokens: int = 64, seed: int = 0):
    """Concurrency sweep: for each level, ``requests_per_level`` streamed requests with that many in flight.

    Returns a DataFrame: TTFT p50/p95, mean per-stream decode tokens/s, aggregate tokens/s.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for level in levels:
        work = [[{"role": "user", "content": prompts[i % len(prompts)]}] for i in range(requests_per_level)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=level) as pool:
            replies = list(pool.map(lambda m: chat(endpoint, m, max_tokens=max_tokens, seed=seed), work))
        wall = time.perf_counter() - start
        ttfts = sorted(r.ttft_s for r in replies if r.ttft_s is not None)
        decode = [r.decode_tok_s for r in replies if r.decode_tok_s]
        tokens = sum(r.completion_tokens for r in replies)
        rows.append({
            "concurrency": level, "requests": len(replies), "tokens": tokens, "wall_s": wall,
            "ttft_p50_s": statistics.median(ttfts), "ttft_p95_s": ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))],
            "per_stream_tok_s": statistics.fmean(decode) if decode else float("nan"),
            "aggregate_tok_s": tokens / wall,
        })
    return pd.DataFrame(rows).set_index("concurrency")



def plot_sweep(table):
    """Aggregate and per-stream tokens/s, and TTFT p50/p95, against concurrency."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    levels = table.index.to_list()
    left.plot(levels, table["aggregate_tok_s"], "o-", color="#76b900", label="aggregate")
    left.plot(levels, table["per_stream_tok_s"], "s--", color="#5b5b5b", label="per stream")
    left.set(xlabel="parallel streams", ylabel="tokens/s", title="Decode throughput", xscale="log", xticks=levels)
    left.set_xticklabels(levels)
    left.legend()
    right.plot(levels, table["ttft_p50_s"], "o-", color="#76b900", label="p50")
    right.plot(levels, table["ttft_p95_s"], "s--", color="#5b5b5b", label="p95")
    right.set(xlabel="parallel streams", ylabel="seconds", title="Time to first token", xscale="log", xticks=levels)
    right.set_xticklabels(levels)
    right.legend()
    for ax in (left, right):
        ax.minorticks_off()
    fig.tight_layout()
    return fig
