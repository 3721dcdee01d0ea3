"""Load tests of a serving endpoint, measured the way ``vllm bench serve`` measures them.

* :func:`single_stream` — one request at a time, after a warm-up, repeated: median and range;
* :func:`sweep` — closed-loop concurrency levels (``--max-concurrency`` in ``vllm bench serve``):
  unique random prompts of a fixed token length (so no prompt-cache hits), a fixed output length
  (``ignore_eos``), a warm-up per level, p50/p99 of TTFT, TPOT and ITL, aggregate tokens/s;
* :func:`prompt_length_sweep` — one stream, growing prompts: prefill against decode;
* :func:`consistency` — the checks that flag a run sharing its machine with other work, at every level and
  every row of the prompt-length sweep (they live in :mod:`.serving_checks`).

**Every TTFT sample is audited** (:mod:`sparkbooks.llm.cache_audit`, whose names are importable from here too):
each timed prompt is unique from its first content token, each reply's cache hit is checked against the
server's own figures, and a sample that hit the cache beyond the chat template is counted, never published.

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

from ..exceptions import InputError
from .cache_audit import (AuditedReplies, CacheAudit, TemplatePrefix, _Reporting, _tag, audit_replies, cold_body,
                          random_prompts, template_prefix, unique_messages)
from .client import Endpoint, Reply, chat
from .server_metrics import counting
from .serving_checks import consistency

__all__ = ["AuditedReplies", "CacheAudit", "SingleStream", "Speculation", "Spread", "TemplatePrefix", "audit_replies",
           "consistency", "plot_sweep", "prompt_length_sweep", "random_prompts", "server_slots", "single_stream",
           "speculation", "sweep", "template_prefix", "unique_messages"]


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
    """Repeated single requests after a warm-up: TTFT (audited samples only) and decode speed as median and range."""

    replies: list[Reply]
    ttft_s: Spread
    decode_tok_s: Spread
    server_decode_tok_s: Spread
    asked_tokens: int
    audit: CacheAudit | None = None
    cached: Spread | None = None  # prompt tokens from the server's cache (a count vLLM omits read as 0 once it is known to report)
    not_measured: str = ""  # why ``ttft_s`` is empty though samples passed the audit (a warm run with no warm hit)

    @property
    def prompt_tokens(self) -> float:
        """Mean prompt length of the timed requests, in the server's tokens."""
        return statistics.fmean(r.prompt_tokens for r in self.replies) if self.replies else float("nan")

    def table(self):
        import pandas as pd  # noqa: PLC0415

        rows = {"TTFT (s)": self.ttft_s, "decode tok/s (client)": self.decode_tok_s,
                "decode tok/s (server's own timing)": self.server_decode_tok_s,
                "prompt tokens from the server's cache": self.cached or Spread.of([r.cached_tokens for r in self.replies])}
        return pd.DataFrame({name: {"median": s.median, "low": s.low, "high": s.high, "n": s.n} for name, s in rows.items()}).T


def single_stream(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, repeats: int = 5, warmup: int = 1,
                  max_tokens: int = 64, seed: int = 0, prompt_cache: bool = False) -> SingleStream:
    """``warmup`` discarded requests, then ``repeats`` timed ones of exactly ``max_tokens`` tokens each.

    Every request — warm-up included — carries its own tag (:func:`unique_messages`), so none can be
    answered from the cache of an earlier one; each timed TTFT is audited against the server's own
    cache figures and refused if more came from cache than the tokens before the tag (``audit``).

    * ``prompt_cache=False`` (default, **cold**): the tag opens the first message and llama.cpp is asked
      to recompute everything (``cache_prompt: false``), so its ``cache_n`` is 0 by construction and the
      audit there can only confirm it; vLLM gets a fresh ``cache_salt`` per request, so none of its cached blocks
      (not even the template's) can hit; the TTFT is a full prefill. (llama.cpp matches prompts token by
      token: two tags starting with the same digit would share one token more than the template.)
    * ``prompt_cache=True`` (**warm template**): the tag opens the *last* message, so the template and any
      system prompt before it may come from cache — what a user with a fixed system prompt sees — and the
      audit refuses any sample that reused more. vLLM ignores ``cache_prompt`` and caches whole blocks.
      **A warm run with no warm hit is not measured**: if no audited sample took a single token from cache
      (vLLM's blocks of a hybrid Mamba model span hundreds of tokens, more than a template; llama.cpp re-processes
      a hybrid/recurrent model's prompt without a context checkpoint), its TTFT is a cold one, so ``ttft_s`` is
      left empty and ``not_measured`` says why.
    """
    rng = random.Random(seed)
    at = -1 if prompt_cache else 0
    variants = [unique_messages(messages, _tag(i, rng), at=at) for i in range(warmup + repeats)]
    allowed, how = template_prefix(endpoint, messages, at=at)
    for m in variants[:warmup]:
        chat(endpoint, m, max_tokens=max_tokens, seed=seed, extra_body=cold_body(prompt_cache))
    replies = [chat(endpoint, m, max_tokens=max_tokens, seed=seed, extra_body=cold_body(prompt_cache)) for m in variants[warmup:]]
    reporting = _Reporting(endpoint)(replies)
    kept, audit = audit_replies(replies, allowed=allowed, how=how, reporting=reporting)
    zero = 0 if reporting is not None and reporting.reports else None  # vLLM omits a count of 0
    counts = [zero if r.cached_tokens is None else r.cached_tokens for r in replies]
    ttft, why = Spread.of([r.ttft_s for r in kept]), ""
    published = {id(r) for r in kept}
    hits = [c for r, c in zip(replies, counts) if id(r) in published and c is not None]
    if prompt_cache and hits and not any(hits):
        why = (f"no warm hit: not measured — 0 prompt tokens came from the server's cache in all {len(hits)} audited samples "
               f"(up to {allowed} could), so their TTFT is a cold prefill, not a warm-template one")
        ttft = Spread.of([])
    return SingleStream(replies, ttft, Spread.of([r.decode_tok_s for r in replies]),
                        Spread.of([r.server_decode_tok_s for r in replies]), max_tokens, audit, Spread.of(counts), why)


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
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:  # closed loop: a new request as soon as one ends
        replies = list(pool.map(lambda m: chat(endpoint, m, max_tokens=output_tokens, seed=seed,
                                               extra_body=cold_body(prompt_cache)), work))
    return replies, time.perf_counter() - start


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np  # noqa: PLC0415

    return float(np.percentile(values, q)) if len(values) else float("nan")


def _row(replies: Sequence[Reply], wall: float, asked: int, *, published: Sequence[Reply] | None = None) -> dict[str, float]:
    """One level's figures; TTFT only from ``published`` (the audited replies; default all)."""
    ttft = [r.ttft_s for r in (replies if published is None else published) if r.ttft_s is not None]
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
        "server_tok_s_p50": _percentile([r.server_decode_tok_s for r in replies if r.server_decode_tok_s], 50),
        "short_outputs": sum(r.completion_tokens < asked for r in replies),  # > 0: the server ignored ignore_eos
    }


def sweep(endpoint: Endpoint, *, levels: Sequence[int], requests_per_level: int = 32, input_tokens: int = 128,
          output_tokens: int = 64, seed: int = 0, warmup: bool = True, prompt_cache: bool = False):
    """Closed-loop concurrency sweep: at each level at least ``requests_per_level`` requests with ``level`` in flight.

    Each level sends ``max(requests_per_level, 4 × level)`` timed requests, so even the top level
    reaches a steady state rather than one burst. Prompts are unique and ``input_tokens`` long (calibrated on this
    server's tokenizer; the
    table shows the measured mean), outputs exactly ``output_tokens``. Each level first runs one
    discarded request per stream. ``queued`` marks levels above the server's slot count (known
    for llama.cpp), where TTFT includes waiting for a free slot. ``prompt_cache=False`` (the default)
    asks llama.cpp not to reuse a slot's cached prefix, the chat template's tokens included (why: :func:`single_stream`).
    TTFT percentiles come only from samples the cache audit passes (``ttft_audited``; ``ttft_refused``
    were cache hits beyond the template, ``ttft_unaudited`` had no evidence from the server). ``metrics_cached`` is
    the server's own ``/metrics`` count of cached prompt tokens over the level's timed requests (NaN: no counter), which
    :func:`consistency` holds to ``cache_allowed`` per request. ``client_cores``: the CPU this process (the client)
    used over the level, in cores — on a small machine the client competes with the server for them.

    Returns a DataFrame indexed by ``concurrency``.
    """
    import pandas as pd  # noqa: PLC0415

    per_word, overhead = _tokens_per_word(endpoint, seed=seed)
    words = max(1, round((input_tokens - overhead) / per_word))
    allowed, how = template_prefix(endpoint, [{"role": "user", "content": "x"}])
    slots, reporting = server_slots(endpoint), _Reporting(endpoint)  # vLLM omits a cached count of 0: probe once if so
    rows = []
    for i, level in enumerate(levels):
        n = max(requests_per_level, 4 * level)
        prompts = random_prompts(n + (level if warmup else 0), words, seed=seed * 7919 + i)
        if warmup:
            _run(endpoint, prompts[:level], concurrency=level, output_tokens=output_tokens, seed=seed, prompt_cache=prompt_cache)
            prompts = prompts[level:]
        cpu = time.process_time()  # this process's CPU time, all its threads: what the client itself costs
        with counting(endpoint) as counted:  # the server's own /metrics counter: a second witness of cache hits
            replies, wall = _run(endpoint, prompts, concurrency=level, output_tokens=output_tokens, seed=seed,
                                 prompt_cache=prompt_cache)
        client_cores = (time.process_time() - cpu) / wall
        kept, audit = audit_replies(replies, allowed=allowed, how=how, reporting=reporting(replies))
        rows.append({"concurrency": level, **_row(replies, wall, output_tokens, published=kept),
                     "ttft_audited": audit.audited, "ttft_refused": audit.refused, "ttft_unaudited": audit.unaudited,
                     "cache_allowed": allowed, "metrics_cached": float("nan") if counted.hits is None else counted.hits,
                     "metrics_resolution": counted.resolution,
                     "client_cores": client_cores, "queued": slots is not None and level > slots})
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
    return table[["requests", "in_tokens", "ttft_p50_s", "ttft_p99_s", "prefill_tok_s", "tpot_p50_ms", "per_stream_tok_s",
                  "ttft_audited", "ttft_refused", "ttft_unaudited"]]


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


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding against plain decoding on the same prompts, greedy.

    ``table``: one row per prompt (task, tokens, tokens/s without and with, speed-up, drafted and
    accepted tokens, whether the two outputs are identical); ``speedup`` the geometric mean of the
    per-prompt ratios **over the prompts whose greedy output is identical** (a changed output's ratio
    compares different texts), with a 95 % bootstrap interval over those prompts; ``acceptance`` accepted / drafted
    over the same prompts (one population for both figures), ``acceptance_all`` over every prompt.
    """

    table: Any
    speedup: float
    speedup_low: float
    speedup_high: float
    acceptance: float
    identical: int
    acceptance_all: float = float("nan")

    @property
    def problems(self) -> list[str]:
        """Greedy outputs that changed with speculation: their speed-ups compare different texts (empty: none)."""
        changed = self.table.loc[~self.table["identical"].astype(bool), "task"]
        if changed.empty:
            return []
        where = ", ".join(f"{n} {task}" for task, n in changed.value_counts(sort=False).items())
        return [f"{len(changed)} of {len(self.table)} greedy outputs changed with speculation ({where}): "
                "their speed-ups compare different texts, so the speed-up leaves them out"]

    def by_task(self):
        """Per task: prompts, identical outputs, the speed-up as the headline takes it (geometric mean over identical
        outputs; NaN where none is), acceptance."""
        import numpy as np  # noqa: PLC0415
        import pandas as pd  # noqa: PLC0415

        groups = self.table.groupby("task", sort=False)
        same = self.table[self.table["identical"].astype(bool)].groupby("task", sort=False)["speedup"]
        drafted = groups["drafted"].sum()
        return pd.DataFrame({"prompts": groups.size(), "identical": groups["identical"].sum().astype(int),
                             "speedup_geomean": same.apply(lambda x: float(np.exp(np.log(x).mean()))).reindex(groups.size().index),
                             "acceptance": groups["accepted"].sum() / drafted.where(drafted > 0)})

    def __str__(self) -> str:
        return (f"speed-up {self.speedup:.2f}× (95% CI {self.speedup_low:.2f}–{self.speedup_high:.2f}, the {self.identical} "
                f"prompts whose output is identical), "
                f"{self.acceptance:.0%} of drafted tokens accepted on them ({self.acceptance_all:.0%} over all), "
                f"{self.identical} of {len(self.table)} greedy outputs identical")


def speculation(plain: Endpoint, speculative: Endpoint, prompts: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *,
                max_tokens: int = 64, seed: int = 0, n_boot: int = 2000) -> Speculation:
    """Decode each ``(task, messages)`` greedily on ``plain`` and on ``speculative`` (the same model with a draft).

    The two servers take turns prompt by prompt, so a disturbance hits both alike; each first answers
    one discarded request. Decode speed is each server's own ``predicted_per_second`` (the draft's and
    the verification's time included); acceptance is llama.cpp's ``draft_n_accepted / draft_n``.
    """
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from ..intervals import bootstrap_interval  # noqa: PLC0415

    if not prompts:
        raise InputError("prompts is empty: pass (task, messages) pairs.")
    for endpoint in (plain, speculative):
        chat(endpoint, prompts[0][1], max_tokens=8, seed=seed)
    rows = []
    for task, messages in prompts:
        a = chat(plain, messages, max_tokens=max_tokens, seed=seed, temperature=0.0)
        b = chat(speculative, messages, max_tokens=max_tokens, seed=seed, temperature=0.0)
        rows.append({"task": task, "tokens": a.completion_tokens, "plain_tok_s": a.server_decode_tok_s or a.decode_tok_s,
                     "speculative_tok_s": b.server_decode_tok_s or b.decode_tok_s, "drafted": b.draft_tokens or 0,
                     "accepted": b.draft_accepted or 0, "identical": a.text == b.text})
    table = pd.DataFrame(rows)
    table["speedup"] = table["speculative_tok_s"] / table["plain_tok_s"]
    logs = np.log(table.loc[table["identical"], "speedup"].to_numpy(dtype=float))  # like for like: same text
    gmean = lambda x: float(np.exp(np.mean(x)))  # noqa: E731
    low, high = bootstrap_interval(logs, lambda x: gmean(x), n_boot=n_boot, seed=seed) if len(logs) > 1 else (float("nan"),) * 2
    rate = lambda rows: int(rows["accepted"].sum()) / int(rows["drafted"].sum()) if rows["drafted"].sum() else float("nan")  # noqa: E731
    return Speculation(table, gmean(logs) if len(logs) else float("nan"), low, high, rate(table[table["identical"]]),
                       int(table["identical"].sum()), rate(table))
