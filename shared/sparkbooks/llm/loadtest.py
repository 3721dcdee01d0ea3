"""Load tests of a serving endpoint, measured the way ``vllm bench serve`` measures them.

* :func:`single_stream` — one request at a time, after a warm-up, repeated: median and range;
* :func:`sweep` — closed-loop concurrency levels (``--max-concurrency`` in ``vllm bench serve``):
  unique random prompts of a fixed token length (so no prompt-cache hits), a fixed output length
  (``ignore_eos``), a warm-up per level, p50/p99 of TTFT, TPOT and ITL, aggregate tokens/s;
* :func:`prompt_length_sweep` — one stream, growing prompts: prefill against decode;
* :func:`consistency` — the checks that flag a run sharing its machine with other work.

TPOT is (total − TTFT) / (output tokens − 1) per request; ITL the gaps between streamed tokens,
pooled over requests; per-stream tokens/s is 1 / TPOT; aggregate is all output tokens / wall time.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .client import Endpoint, Reply, chat

__all__ = ["SingleStream", "Spread", "consistency", "plot_sweep", "prompt_length_sweep", "random_prompts", "server_slots",
           "single_stream", "sweep"]

# Common English words: random prompts of them tokenize at a stable, measurable rate on any tokenizer.
_WORDS = tuple("""the of and to in is was for on that with as by at from his her an which it be are this had not but
they have one were all their there been has when who will more no if out so said what up its about into than them can
only other new some could time these two may then do first any my now such like our over man me even most made after
also did many before must through back years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here between both life being under never day
same another know while last might us great old year off come since against go came right used take three""".split())

_FIXED_LENGTH = {"ignore_eos": True}  # vLLM and llama.cpp both honour it: every request decodes exactly max_tokens
# llama.cpp reuses a slot's cached prompt prefix (the chat template's own tokens, a default system prompt); for a
# prefill rate every prompt token must be computed. vLLM ignores the field (its prefix cache works on whole blocks).
_NO_PROMPT_CACHE = {"cache_prompt": False}


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = [v for v in values if v is not None]
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    @property
    def ratio(self) -> float:
        """Highest over lowest: 1.0 means every repeat agreed."""
        return self.high / self.low if self.low > 0 else float("inf")

    def __str__(self) -> str:
        return f"{self.median:.3g} (range {self.low:.3g}–{self.high:.3g}, n={self.n})"


@dataclass(frozen=True)
class SingleStream:
    """Repeated single requests after a warm-up: TTFT and decode speed as median and range."""

    replies: list[Reply]
    ttft_s: Spread
    decode_tok_s: Spread
    server_decode_tok_s: Spread
    asked_tokens: int

    def table(self):
        import pandas as pd  # noqa: PLC0415

        rows = {"TTFT (s)": self.ttft_s, "decode tok/s (client)": self.decode_tok_s,
                "decode tok/s (server's own timing)": self.server_decode_tok_s}
        return pd.DataFrame({name: {"median": s.median, "low": s.low, "high": s.high, "n": s.n} for name, s in rows.items()}).T


def single_stream(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, repeats: int = 5, warmup: int = 1,
                  max_tokens: int = 64, seed: int = 0) -> SingleStream:
    """``warmup`` discarded requests, then ``repeats`` timed ones of exactly ``max_tokens`` tokens each."""
    for _ in range(warmup):
        chat(endpoint, messages, max_tokens=max_tokens, seed=seed, extra_body=_FIXED_LENGTH)
    replies = [chat(endpoint, messages, max_tokens=max_tokens, seed=seed, extra_body=_FIXED_LENGTH) for _ in range(repeats)]
    return SingleStream(replies, Spread.of([r.ttft_s for r in replies]), Spread.of([r.decode_tok_s for r in replies]),
                        Spread.of([r.server_decode_tok_s for r in replies]), max_tokens)


def random_prompts(n: int, words: int, *, seed: int = 0) -> list[str]:
    """``n`` different prompts of ``words`` random words each, every one opening with its own number.

    Distinct openings stop a server answering from a cached copy of an earlier prompt (llama.cpp's
    slot cache, vLLM's prefix cache); only the chat template's own prefix stays shared, as it is
    for real users (``sweep(prompt_cache=False)`` makes llama.cpp recompute that too).
    """
    rng = random.Random(seed)
    return [f"{rng.randrange(10**9):09d} " + " ".join(rng.choices(_WORDS, k=words)) for _ in range(n)]


def _tokens_per_word(endpoint: Endpoint, *, seed: int = 0) -> tuple[float, int]:
    """How many prompt tokens one random word costs on this server, and the chat template's own tokens."""
    def prompt_tokens(text: str) -> int:
        return chat(endpoint, [{"role": "user", "content": text}], max_tokens=1, seed=seed, stream=False).prompt_tokens

    base = prompt_tokens(random_prompts(1, 0, seed=seed)[0])
    sample = prompt_tokens(random_prompts(1, 400, seed=seed)[0])
    return (sample - base) / 400, base


def server_slots(endpoint: Endpoint) -> int | None:
    """llama.cpp's number of request slots (``/props``); ``None`` for servers that do not say (vLLM: ``--max-num-seqs``)."""
    import httpx  # noqa: PLC0415

    root = endpoint.base_url.removesuffix("/v1")
    try:
        response = httpx.get(f"{root}/props", timeout=5)
        return int(response.json()["total_slots"]) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _run(endpoint: Endpoint, prompts: Sequence[str], *, concurrency: int, output_tokens: int, seed: int,
         prompt_cache: bool = True) -> tuple[list[Reply], float]:
    work = [[{"role": "user", "content": p}] for p in prompts]
    extra = _FIXED_LENGTH if prompt_cache else {**_FIXED_LENGTH, **_NO_PROMPT_CACHE}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:  # closed loop: a new request as soon as one ends
        replies = list(pool.map(lambda m: chat(endpoint, m, max_tokens=output_tokens, seed=seed, extra_body=extra), work))
    return replies, time.perf_counter() - start


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np  # noqa: PLC0415

    return float(np.percentile(values, q)) if len(values) else float("nan")


def _row(replies: Sequence[Reply], wall: float, asked: int) -> dict[str, float]:
    ttft = [r.ttft_s for r in replies if r.ttft_s is not None]
    tpot = [r.tpot_s for r in replies if r.tpot_s is not None]
    itl = [gap for r in replies for gap in r.itl_s]
    tokens = sum(r.completion_tokens for r in replies)
    return {
        "requests": len(replies), "in_tokens": statistics.fmean(r.prompt_tokens for r in replies),
        "out_tokens": tokens / len(replies), "wall_s": wall,
        "ttft_p50_s": _percentile(ttft, 50), "ttft_p99_s": _percentile(ttft, 99),
        "tpot_p50_ms": 1000 * _percentile(tpot, 50), "tpot_p99_ms": 1000 * _percentile(tpot, 99),
        "itl_p50_ms": 1000 * _percentile(itl, 50), "itl_p99_ms": 1000 * _percentile(itl, 99),
        "per_stream_tok_s": 1 / _percentile(tpot, 50) if tpot else float("nan"),
        "aggregate_tok_s": tokens / wall,
        "short_outputs": sum(r.completion_tokens < asked for r in replies),  # > 0: the server ignored ignore_eos
    }


def sweep(endpoint: Endpoint, *, levels: Sequence[int], requests_per_level: int = 32, input_tokens: int = 128,
          output_tokens: int = 64, seed: int = 0, warmup: bool = True, prompt_cache: bool = True):
    """Closed-loop concurrency sweep: at each level ``requests_per_level`` requests with ``level`` in flight.

    Prompts are unique and ``input_tokens`` long (calibrated on this server's tokenizer; the
    table shows the measured mean), outputs exactly ``output_tokens``. Each level first runs one
    discarded request per stream. ``queued`` marks levels above the server's slot count (known
    for llama.cpp), where TTFT includes waiting for a free slot. ``prompt_cache=False`` asks llama.cpp
    not to reuse a slot's cached prefix (the chat template's tokens), as a prefill measurement needs.

    Returns a DataFrame indexed by ``concurrency``.
    """
    import pandas as pd  # noqa: PLC0415

    per_word, overhead = _tokens_per_word(endpoint, seed=seed)
    words = max(1, round((input_tokens - overhead) / per_word))
    slots = server_slots(endpoint)
    rows = []
    for i, level in enumerate(levels):
        prompts = random_prompts(requests_per_level + (level if warmup else 0), words, seed=seed * 7919 + i)
        if warmup:
            _run(endpoint, prompts[:level], concurrency=level, output_tokens=output_tokens, seed=seed, prompt_cache=prompt_cache)
            prompts = prompts[level:]
        replies, wall = _run(endpoint, prompts, concurrency=level, output_tokens=output_tokens, seed=seed,
                             prompt_cache=prompt_cache)
        rows.append({"concurrency": level, **_row(replies, wall, output_tokens), "queued": slots is not None and level > slots})
    return pd.DataFrame(rows).set_index("concurrency")


def prompt_length_sweep(endpoint: Endpoint, *, input_tokens: Sequence[int], output_tokens: int = 32, requests: int = 5,
                        seed: int = 0):
    """One stream, prompts of growing length: TTFT, prefill tokens/s (prompt tokens / TTFT) and decode tokens/s.

    The prompt cache is off, so every prompt token is computed (see :func:`sweep`).
    """
    import pandas as pd  # noqa: PLC0415

    tables = [sweep(endpoint, levels=[1], requests_per_level=requests, input_tokens=n, output_tokens=output_tokens,
                    seed=seed + n, prompt_cache=False).assign(target_in_tokens=n) for n in input_tokens]
    table = pd.concat(tables).reset_index(drop=True).set_index("target_in_tokens")
    table["prefill_tok_s"] = table["in_tokens"] / table["ttft_p50_s"]
    return table[["requests", "in_tokens", "ttft_p50_s", "ttft_p99_s", "prefill_tok_s", "tpot_p50_ms", "per_stream_tok_s"]]


def consistency(single: SingleStream, table, *, max_ratio: float = 2.0, max_spread: float = 1.5) -> list[str]:
    """What makes a run's speed figures untrustworthy; empty when none.

    * single-stream decode (median of the repeats) and the sweep's one-stream decode differ by
      more than ``max_ratio``× — the same server measured twice cannot disagree that much;
    * the single-stream repeats range over more than ``max_spread``× — on an idle server they agree;
    * outputs shorter than asked (in the repeats or the sweep) — the server ignored ``ignore_eos``,
      so the figures compare unlike amounts of work.
    """
    problems = []
    single_rate = single.decode_tok_s.median
    if 1 in table.index:
        swept = float(table.loc[1, "per_stream_tok_s"])
        ratio = max(single_rate, swept) / min(single_rate, swept) if min(single_rate, swept) > 0 else float("inf")
        if ratio > max_ratio:
            problems.append(f"single-stream decode {single_rate:.1f} tok/s vs {swept:.1f} tok/s at one stream in the sweep: "
                            f"{ratio:.1f}× apart (limit {max_ratio}×)")
    if single.decode_tok_s.ratio > max_spread:
        problems.append(f"single-stream decode ranged {single.decode_tok_s.low:.1f}–{single.decode_tok_s.high:.1f} tok/s "
                        f"over {single.decode_tok_s.n} repeats ({single.decode_tok_s.ratio:.2f}×; limit {max_spread}×)")
    short = int(table["short_outputs"].sum()) + sum(r.completion_tokens < single.asked_tokens for r in single.replies)
    if short:
        problems.append(f"{short} outputs were shorter than asked: the server ignores `ignore_eos`, so requests did unequal work")
    return problems


def plot_sweep(table):
    """Aggregate and per-stream tokens/s, TTFT and TPOT (p50 and p99) against concurrency."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    levels = table.index.to_list()
    panels = [("Decode throughput", "tokens/s", [("aggregate_tok_s", "aggregate"), ("per_stream_tok_s", "per stream")]),
              ("Time to first token", "seconds", [("ttft_p50_s", "p50"), ("ttft_p99_s", "p99")]),
              ("Time per output token", "milliseconds", [("tpot_p50_ms", "p50"), ("tpot_p99_ms", "p99")])]
    for ax, (title, unit, series) in zip(axes, panels):
        for (column, label), style, color in zip(series, ("o-", "s--"), ("#76b900", "#5b5b5b")):
            ax.plot(levels, table[column], style, color=color, label=label)
        ax.set(xlabel="parallel streams", ylabel=unit, title=title, xscale="log", xticks=levels)
        ax.set_xticklabels(levels)
        ax.minorticks_off()
        ax.legend()
    fig.tight_layout()
    return fig
