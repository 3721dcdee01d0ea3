"""Load tests of a serving endpoint, measured the way ``vllm bench serve`` measures them.

* :func:`single_stream` — one request at a time, after a warm-up, repeated: median and range;
* :func:`sweep` — closed-loop concurrency levels (``--max-concurrency`` in ``vllm bench serve``):
  unique random prompts of a fixed token length (so no prompt-cache hits), a fixed output length
  (``ignore_eos``), a warm-up per level, p50/p99 of TTFT, TPOT and ITL, aggregate tokens/s;
* :func:`prompt_length_sweep` — one stream, growing prompts: prefill against decode;
* :func:`consistency` — the checks that flag a run sharing its machine with other work, at every level.

**Every TTFT sample is audited.** Each timed prompt is unique from its first content token, and each
reply carries the server's own cache evidence (llama.cpp's ``timings.cache_n`` / ``prompt_n``, or the
OpenAI ``usage.prompt_tokens_details.cached_tokens`` vLLM sends with ``--enable-prompt-tokens-details``).
A sample whose cache hit reaches beyond the tokens every prompt shares by construction — the chat
template's own prefix, found by :func:`template_prefix` — is refused: it is counted, never published
(:class:`CacheAudit`). A sample without evidence is published but counted as unaudited, and
:func:`consistency` says so.

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
from typing import Any, NamedTuple

from ..exceptions import InputError
from .client import Endpoint, Reply, chat

__all__ = ["AuditedReplies", "CacheAudit", "SingleStream", "Speculation", "Spread", "TemplatePrefix", "audit_replies",
           "consistency", "plot_sweep", "prompt_length_sweep", "random_prompts", "server_slots", "single_stream",
           "speculation", "sweep", "template_prefix", "unique_messages"]

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
class CacheAudit:
    """What the server itself said about its prompt cache for a set of timed samples.

    ``allowed`` is how many prompt tokens every sample shares by construction (the chat template's
    own prefix); a sample served more than that from the cache is contaminated and ``refused``.
    """

    allowed: int
    how: str
    audited: int  # evidence present and within `allowed`: published
    refused: int  # evidence of a cache hit beyond `allowed`: dropped
    unaudited: int  # no evidence from the server: published, but flagged by `consistency`

    def __str__(self) -> str:
        return (f"{self.audited} TTFT samples audited clean (cache hit ≤ {self.allowed} template tokens), "
                f"{self.refused} refused as cache hits, {self.unaudited} without the server's cache evidence")


class AuditedReplies(NamedTuple):
    """The replies whose TTFT may be published, and the audit that decided it."""

    kept: list[Reply]
    audit: CacheAudit


def audit_replies(replies: Sequence[Reply], *, allowed: int, how: str = "") -> AuditedReplies:
    """The replies whose TTFT may be published, and the audit that decided it.

    A reply whose ``cached_tokens`` exceed ``allowed`` is refused; one without evidence is kept and
    counted as unaudited.

    Examples
    --------
    >>> from sparkbooks.llm.client import Reply
    >>> kept, audit = audit_replies([Reply("", cached_tokens=3), Reply("", cached_tokens=40)], allowed=3)
    >>> len(kept), audit.refused
    (1, 1)
    """
    kept = [r for r in replies if r.cached_tokens is None or r.cached_tokens <= allowed]
    audit = CacheAudit(allowed, how, audited=sum(r.cached_tokens is not None for r in kept),
                       refused=len(replies) - len(kept), unaudited=sum(r.cached_tokens is None for r in kept))
    return AuditedReplies(kept, audit)


def _tag(i: int, rng: random.Random) -> str:
    """A 9-digit opening whose first digit cycles 1–9: consecutive prompts differ from their first token on."""
    return f"{1 + i % 9}{rng.randrange(10**8):08d}"


def unique_messages(messages: Sequence[Mapping[str, Any]], tag: str) -> list[dict[str, Any]]:
    """``messages`` with ``tag`` opening the first message's content, so no earlier prompt shares more than the template."""
    out = [dict(m) for m in messages]
    if not out:
        raise InputError("messages is empty: pass at least one chat message.")
    content = out[0].get("content", "")
    out[0]["content"] = (f"{tag} {content}" if isinstance(content, str) else
                         [{"type": "text", "text": tag}, *content])
    return out


class TemplatePrefix(NamedTuple):
    """Prompt tokens the chat template adds before the first message's text, and how they were counted."""

    tokens: int
    how: str


def template_prefix(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]]) -> TemplatePrefix:
    """Prompt tokens that every :func:`unique_messages` variant of ``messages`` shares: the chat template's prefix.

    On llama.cpp this is exact: two variants whose first content tokens differ are rendered by the
    server's own template (``/apply-template``) and tokenized (``/tokenize``), and the common prefix
    counted. Elsewhere it is an upper bound: the prompt tokens of the messages with the first
    content emptied (template prefix and suffix together). Returns a :class:`TemplatePrefix` (tokens, how they were counted).
    """
    import httpx  # noqa: PLC0415

    root = endpoint.base_url.removesuffix("/v1")
    try:
        token_lists = []
        for tag in ("1", "2"):
            rendered = httpx.post(f"{root}/apply-template", json={"messages": unique_messages(messages, tag)}, timeout=10)
            rendered.raise_for_status()
            tokens = httpx.post(f"{root}/tokenize", json={"content": rendered.json()["prompt"], "add_special": True},
                                timeout=10)
            tokens.raise_for_status()
            token_lists.append(tokens.json()["tokens"])
        a, b = token_lists
        shared = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return TemplatePrefix(shared, "llama.cpp's own template and tokenizer (exact)")
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        empty = unique_messages(messages, "")
        empty[0]["content"] = "" if isinstance(empty[0]["content"], str) else []
        reply = chat(endpoint, empty, max_tokens=1, stream=False)
        return TemplatePrefix(reply.prompt_tokens, "prompt tokens of an empty first message (an upper bound)")


@dataclass(frozen=True)
class SingleStream:
    """Repeated single requests after a warm-up: TTFT (audited samples only) and decode speed as median and range."""

    replies: list[Reply]
    ttft_s: Spread
    decode_tok_s: Spread
    server_decode_tok_s: Spread
    asked_tokens: int
    audit: CacheAudit | None = None

    @property
    def prompt_tokens(self) -> float:
        """Mean prompt length of the timed requests, in the server's tokens."""
        return statistics.fmean(r.prompt_tokens for r in self.replies) if self.replies else float("nan")

    def table(self):
        import pandas as pd  # noqa: PLC0415

        rows = {"TTFT (s)": self.ttft_s, "decode tok/s (client)": self.decode_tok_s,
                "decode tok/s (server's own timing)": self.server_decode_tok_s,
                "prompt tokens from the server's cache": Spread.of([r.cached_tokens for r in self.replies])}
        return pd.DataFrame({name: {"median": s.median, "low": s.low, "high": s.high, "n": s.n} for name, s in rows.items()}).T


def single_stream(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, repeats: int = 5, warmup: int = 1,
                  max_tokens: int = 64, seed: int = 0, prompt_cache: bool = False) -> SingleStream:
    """``warmup`` discarded requests, then ``repeats`` timed ones of exactly ``max_tokens`` tokens each.

    Every request — warm-up included — is ``messages`` opened by its own tag (:func:`unique_messages`),
    so none can be answered from the cache of an earlier one; each timed TTFT is then audited against
    the server's own cache figures and refused if it hit the cache beyond the chat template
    (``audit``). Decode speed does not depend on the cache and keeps every repeat.

    ``prompt_cache=False`` (the default) also asks llama.cpp to recompute the template: it matches
    prompts token by token, so two unique prompts whose first content tokens happen to agree (a tag's
    first digit) would share one more token than the template — seen here for half the requests with
    3 streams on 2 slots, as llama.cpp routes a prompt to the slot with the longest common prefix.
    vLLM ignores the field and caches whole 16-token blocks, so only the template's blocks can hit.
    """
    rng = random.Random(seed)
    variants = [unique_messages(messages, _tag(i, rng)) for i in range(warmup + repeats)]
    allowed, how = template_prefix(endpoint, messages)
    extra = _FIXED_LENGTH if prompt_cache else {**_FIXED_LENGTH, **_NO_PROMPT_CACHE}
    for m in variants[:warmup]:
        chat(endpoint, m, max_tokens=max_tokens, seed=seed, extra_body=extra)
    replies = [chat(endpoint, m, max_tokens=max_tokens, seed=seed, extra_body=extra) for m in variants[warmup:]]
    kept, audit = audit_replies(replies, allowed=allowed, how=how)
    return SingleStream(replies, Spread.of([r.ttft_s for r in kept]), Spread.of([r.decode_tok_s for r in replies]),
                        Spread.of([r.server_decode_tok_s for r in replies]), max_tokens, audit)


def random_prompts(n: int, words: int, *, seed: int = 0) -> list[str]:
    """``n`` different prompts of ``words`` random words each, every one opening with its own number.

    Distinct openings stop a server answering from a cached copy of an earlier prompt (llama.cpp's
    slot cache, vLLM's prefix cache); only the chat template's own prefix stays shared, as it is
    for real users (``prompt_cache=False``, the default of :func:`sweep`, makes llama.cpp recompute that too). The first
    digit cycles 1–9, so consecutive prompts differ from their very first token.
    """
    rng = random.Random(seed)
    return [f"{_tag(i, rng)} " + " ".join(rng.choices(_WORDS, k=words)) for i in range(n)]


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
    were cache hits beyond the template, ``ttft_unaudited`` had no evidence from the server).

    Returns a DataFrame indexed by ``concurrency``.
    """
    import pandas as pd  # noqa: PLC0415

    per_word, overhead = _tokens_per_word(endpoint, seed=seed)
    words = max(1, round((input_tokens - overhead) / per_word))
    allowed, how = template_prefix(endpoint, [{"role": "user", "content": "x"}])
    slots = server_slots(endpoint)
    rows = []
    for i, level in enumerate(levels):
        n = max(requests_per_level, 4 * level)
        prompts = random_prompts(n + (level if warmup else 0), words, seed=seed * 7919 + i)
        if warmup:
            _run(endpoint, prompts[:level], concurrency=level, output_tokens=output_tokens, seed=seed, prompt_cache=prompt_cache)
            prompts = prompts[level:]
        replies, wall = _run(endpoint, prompts, concurrency=level, output_tokens=output_tokens, seed=seed,
                             prompt_cache=prompt_cache)
        kept, audit = audit_replies(replies, allowed=allowed, how=how)
        rows.append({"concurrency": level, **_row(replies, wall, output_tokens, published=kept),
                     "ttft_audited": audit.audited, "ttft_refused": audit.refused, "ttft_unaudited": audit.unaudited,
                     "cache_allowed": allowed, "queued": slots is not None and level > slots})
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


def consistency(single: SingleStream, table, *, max_ratio: float = 2.0, max_spread: float = 1.5,
                max_scaling: float = 1.15) -> list[str]:
    """What makes a run's speed figures untrustworthy; empty when none. Every level of the sweep is checked.

    * single-stream decode (median of the repeats) and the sweep's one-stream decode differ by
      more than ``max_ratio``× — the same server measured twice cannot disagree that much;
    * the single-stream repeats range over more than ``max_spread``× — on an idle server they agree;
    * at any level, the client's per-stream decode (1 / TPOT p50) and the server's own timing differ
      by more than ``max_ratio``× — one of the two clocks is measuring something else;
    * at any level, each stream decodes faster than at the lowest level by more than ``max_scaling``× —
      more streams cannot make each one faster, so the lowest level was disturbed;
    * TTFT samples without the server's cache evidence, or a level left with no audited TTFT;
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
    lowest = table.index.min()
    for level, row in table.iterrows():
        client, server = row.get("per_stream_tok_s", float("nan")), row.get("server_tok_s_p50", float("nan"))
        if client == client and server == server and min(client, server) > 0 and max(client, server) / min(client, server) > max_ratio:
            problems.append(f"at {level} streams the client saw {client:.1f} tok/s per stream, the server timed {server:.1f} "
                            f"(limit {max_ratio}×)")
        base = float(table.loc[lowest, "per_stream_tok_s"])
        if level != lowest and base > 0 and row["per_stream_tok_s"] > max_scaling * base:
            problems.append(f"at {level} streams each stream decoded {row['per_stream_tok_s']:.1f} tok/s, faster than "
                            f"{base:.1f} at {lowest} (limit {max_scaling}×): the lower level was disturbed")
        if row.get("ttft_unaudited", 0):
            problems.append(f"at {level} streams {int(row['ttft_unaudited'])} TTFT samples carry no cache evidence from the server")
        if "ttft_audited" in row and row["ttft_audited"] + row.get("ttft_unaudited", 0) == 0:
            problems.append(f"at {level} streams every TTFT sample was a cache hit: no TTFT published")
    if single.audit is not None and single.audit.unaudited:
        problems.append(f"{single.audit.unaudited} single-stream TTFT samples carry no cache evidence from the server")
    if single.audit is not None and single.ttft_s.n == 0:
        problems.append("every single-stream TTFT sample was a cache hit: no TTFT published")
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


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding against plain decoding on the same prompts, greedy.

    ``table``: one row per prompt (task, tokens, tokens/s without and with, speed-up, drafted and
    accepted tokens, whether the two outputs are identical); ``speedup`` the geometric mean of the
    per-prompt ratios with a 95 % bootstrap interval over prompts; ``acceptance`` accepted / drafted.
    """

    table: Any
    speedup: float
    speedup_low: float
    speedup_high: float
    acceptance: float
    identical: int

    def __str__(self) -> str:
        return (f"speed-up {self.speedup:.2f}× (95% CI {self.speedup_low:.2f}–{self.speedup_high:.2f}, {len(self.table)} prompts), "
                f"{self.acceptance:.0%} of drafted tokens accepted, {self.identical} of {len(self.table)} greedy outputs identical")


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
    logs = np.log(table["speedup"].to_numpy(dtype=float))
    gmean = lambda x: float(np.exp(np.mean(x)))  # noqa: E731
    low, high = bootstrap_interval(logs, lambda x: gmean(x), n_boot=n_boot, seed=seed) if len(logs) > 1 else (float("nan"),) * 2
    drafted = int(table["drafted"].sum())
    return Speculation(table, gmean(logs), low, high, int(table["accepted"].sum()) / drafted if drafted else float("nan"),
                       int(table["identical"].sum()))
