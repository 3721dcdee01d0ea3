"""The checks that say whether a serving run's speed figures can be trusted (:func:`consistency`).

A run that shares its machine with other work still produces numbers; these checks compare figures
that the same server must reproduce — decode at one stream measured three ways, the same prefill timed
twice, prefill time against prompt length — and say, in words, which ones disagree. :func:`checks_made`
lists, in words, only the checks a run's figures allowed (a server without its own clock, such as vLLM,
is never said to agree with the client's), and :func:`clocks` is Step 3's client-against-server check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .cache_audit import REPORTING_FLAGS

if TYPE_CHECKING:
    from .loadtest import SingleStream

__all__ = ["ClockCheck", "checks_made", "clocks", "consistency", "length_sweep_problems"]


class ClockCheck(NamedTuple):
    """Single-stream decode by the client's clock against the server's own; ``checked`` is False without a server clock."""

    checked: bool
    agree: bool
    text: str

    def __str__(self) -> str:
        return self.text


def clocks(single: SingleStream, *, max_ratio: float = 2.0) -> ClockCheck:
    """Whether the client's decode rate (median of the repeats) and the server's own agree within ``max_ratio``×.

    Only llama.cpp times itself per request (``timings.predicted_per_second``); vLLM sends no ``timings``,
    so there the check is not made — it passes and says "no server clock" rather than comparing with NaN.
    """
    client, server = single.decode_tok_s.median, single.server_decode_tok_s.median
    if single.server_decode_tok_s.n == 0 or not server > 0:
        return ClockCheck(False, True, f"no server clock: the server sends no per-request timing (vLLM sends no "
                                       f"`timings`), so decode is the client's {client:.1f} tok/s alone, not cross-checked")
    ratio = max(client, server) / min(client, server) if min(client, server) > 0 else float("inf")
    return ClockCheck(True, ratio <= max_ratio, f"client {client:.1f} tok/s, server's own clock {server:.1f} tok/s: "
                                                f"{ratio:.2f}× apart (limit {max_ratio}×)")


def _same_length(lengths, tokens: float):
    """The row of ``lengths`` whose mean prompt is within 5 % of ``tokens``, or None."""
    for _, row in lengths.iterrows():
        if tokens > 0 and abs(row["in_tokens"] / tokens - 1) <= 0.05:
            return row
    return None


def checks_made(single: SingleStream, table, *, lengths=None, max_ratio: float = 2.0, max_spread: float = 1.5,
                max_scaling: float = 1.15, max_ttft_ratio: float = 1.15) -> list[str]:
    """In words, the checks :func:`consistency` could make on these figures — what a clean run may claim it passed.

    >>> import pandas as pd
    >>> from sparkbooks.llm.loadtest import SingleStream, Spread
    >>> no_clock = SingleStream([], Spread.of([0.1]), Spread.of([60.0]), Spread.of([None]), 16)
    >>> any("clocks within" in c for c in checks_made(no_clock, pd.DataFrame({"per_stream_tok_s": [61.0]}, index=[1])))
    False
    """
    made = []
    if 1 in table.index:
        made.append(f"single-stream decode within {max_ratio}× of the sweep's one stream")
    made.append(f"repeats within {max_spread}×")
    server_rates = table["server_tok_s_p50"] if "server_tok_s_p50" in table else []
    if clocks(single).checked and any(x == x for x in server_rates):
        made.append(f"client and server clocks within {max_ratio}× at every level")
    else:
        made.append("client and server clocks not compared (no server clock)")
    if len(table) > 1:
        made.append(f"no level decodes more than {max_scaling}× faster per stream than the lowest")
    if "ttft_p99_s" in table:
        judged = [level for level, row in table.iterrows() if _tail_checked(level, row, 2048)]
        made.append(f"no TTFT tail beyond 3× its median at {', '.join(map(str, judged))} streams (every prompt fits one step)"
                    if judged else "TTFT tails not judged (each level's first burst exceeds one prefill step)")
    if lengths is not None:
        if 1 in table.index and "in_tokens" in table and _same_length(lengths, float(table.loc[1, "in_tokens"])) is not None:
            made.append(f"the sweep's one-stream TTFT within {max_ttft_ratio}× of the length sweep's")
        if single.ttft_s.n and _same_length(lengths, single.prompt_tokens) is not None:
            made.append(f"Step 3's TTFT within {max_ttft_ratio}× of the length sweep's row of its length")
        made.append(f"prefill in order of prompt length, its TPOT within {max_spread}× of Step 3's")
    made.append("every TTFT sample audited")
    return made


def length_sweep_problems(lengths, *, decode_tok_s: float | None = None, max_spread: float = 1.5) -> list[str]:
    """Rows of a :func:`~sparkbooks.llm.loadtest.prompt_length_sweep` table that a quiet machine cannot produce.

    * **Prefill out of order**: a longer prompt cannot prefill in less time than a shorter one, and it
      cannot take more time *per prompt token* — prefill is compute-bound, its rate rises with length up
      to the batch size (the fixed per-request overhead only makes short prompts look slower per token).
      Either, by more than ``max_spread``× (the limit the single-stream repeats are held to), means one of
      the two rows was disturbed.
    * **Decode off**: each row's TPOT p50 against one stream's decode rate ``decode_tok_s`` (default: the
      median over the rows) — at the short contexts swept here, decode speed barely depends on prompt
      length, so a row more than ``max_spread``× apart ran on a busy machine.

    Examples
    --------
    >>> import pandas as pd
    >>> quiet = pd.DataFrame({"in_tokens": [63, 256], "ttft_p50_s": [0.21, 0.60], "tpot_p50_ms": [10.4, 11.0]})
    >>> length_sweep_problems(quiet, decode_tok_s=84)
    []
    >>> busy = quiet.assign(ttft_p50_s=[0.21, 3.2], tpot_p50_ms=[10.4, 76.7])
    >>> len(length_sweep_problems(busy, decode_tok_s=84))
    2
    """
    import numpy as np  # noqa: PLC0415

    problems = []
    rows = lengths.sort_values("in_tokens")
    tokens, ttft = rows["in_tokens"].to_numpy(dtype=float), rows["ttft_p50_s"].to_numpy(dtype=float)
    per_token = ttft / tokens
    ok = ttft > 0
    for k in range(len(rows)):  # each row against the best of the rows it must not beat or lose to
        longer, shorter = ok & (tokens > tokens[k]), ok & (tokens < tokens[k])
        if ok[k] and longer.any() and ttft[k] > max_spread * ttft[longer].min():
            j = int(np.flatnonzero(longer)[np.argmin(ttft[longer])])
            problems.append(f"prefill of {tokens[k]:.0f} tokens took {ttft[k]:.3f} s, of {tokens[j]:.0f} tokens "
                            f"{ttft[j]:.3f} s: the shorter prompt {ttft[k] / ttft[j]:.1f}× slower (limit {max_spread}×), "
                            f"so the {tokens[k]:.0f}-token row was disturbed")
        if ok[k] and shorter.any() and per_token[k] > max_spread * per_token[shorter].min():
            i = int(np.flatnonzero(shorter)[np.argmin(per_token[shorter])])
            problems.append(f"prefill at {tokens[k]:.0f} tokens ran at {1 / per_token[k]:.0f} tok/s, at {tokens[i]:.0f} "
                            f"tokens {1 / per_token[i]:.0f} tok/s: {per_token[k] / per_token[i]:.1f}× slower per token "
                            f"for a longer prompt (limit {max_spread}×), so the {tokens[k]:.0f}-token row was disturbed")
    tpot = rows["tpot_p50_ms"].to_numpy(dtype=float)
    reference = 1000 / decode_tok_s if decode_tok_s and decode_tok_s > 0 else float(np.nanmedian(tpot))
    for n, t in zip(tokens, tpot):
        apart = max(t, reference) / min(t, reference) if t > 0 and reference > 0 else 1.0
        if apart > max_spread:
            problems.append(f"TPOT p50 at {n:.0f} prompt tokens {t:.1f} ms against {reference:.1f} ms for one stream "
                            f"({apart:.1f}× apart; limit {max_spread}×): that row was disturbed")
    return problems


def _tail_checked(level, row, step_tokens: int) -> bool:
    """Whether a level's TTFT tail can be judged: every stream has a slot and the level's first burst (all its prompts
    arriving at once) fits one prefill step — else the first requests queue for the step budget and a long tail is
    expected (the Spark profile's 64 × 1,024 tokens against 2,048 per step)."""
    return not row.get("queued", False) and level * row.get("in_tokens", 0) <= step_tokens


def consistency(single: SingleStream, table, *, lengths=None, max_ratio: float = 2.0, max_spread: float = 1.5,
                max_scaling: float = 1.15, max_ttft_ratio: float = 1.15, max_ttft_tail: float = 3.0,
                step_tokens: int = 2048) -> list[str]:
    """What makes a run's speed figures untrustworthy; empty when none. Every level of the sweep is checked.

    * single-stream decode (median of the repeats) and the sweep's one-stream decode differ by
      more than ``max_ratio``× — the same server measured twice cannot disagree that much;
    * the single-stream repeats range over more than ``max_spread``× — on an idle server they agree;
    * at any level, the client's per-stream decode (1 / TPOT p50) and the server's own timing differ
      by more than ``max_ratio``× — one of the two clocks is measuring something else;
    * at any level, each stream decodes faster than at the lowest level by more than ``max_scaling``× —
      more streams cannot make each one faster, so the lowest level was disturbed;
    * TTFT samples without the server's cache evidence, or a level left with no audited TTFT;
    * at a level with a slot for every stream (not ``queued``) whose prompts all fit one prefill step of
      ``step_tokens`` (llama.cpp's default ``--batch-size``, vLLM's default ``max_num_batched_tokens``), TTFT p99 more
      than ``max_ttft_tail``× its p50 — no request waits there, so a tail that long is a stall of the machine;
    * at any level, more cached prompt tokens in the server's own ``/metrics`` counter than the template allows;
    * outputs shorter than asked (in the repeats or the sweep) — the server ignored ``ignore_eos``,
      so the figures compare unlike amounts of work;
    * the sweep's one-stream TTFT p50 and ``lengths``' (:func:`prompt_length_sweep`) at the same prompt
      length (within 5 %) differ by more than ``max_ttft_ratio``× — the same prefill timed twice; so do
      Step 3's single-stream (cache-off) TTFT and the ``lengths`` row of its prompt length;
    * any row of ``lengths`` that :func:`length_sweep_problems` flags (prefill out of order, decode off).
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
            problems.append(f"at {level} streams {int(row['ttft_unaudited'])} TTFT samples carry no cache evidence from the "
                            f"server (not audited: start vLLM with {REPORTING_FLAGS})")
        counted, allowed = row.get("metrics_cached", float("nan")), row.get("cache_allowed", 0) * row.get("requests", 0)
        if counted == counted and counted > allowed + 2 * row.get("metrics_resolution", 1):  # NaN: no counter
            problems.append(f"at {level} streams the server's own /metrics counted {counted:.0f} cached prompt tokens over "
                            f"{row.get('requests', 0):.0f} requests, more than the template's {allowed:.0f}: prompts were "
                            "answered from cache")
        p50, p99 = row.get("ttft_p50_s", float("nan")), row.get("ttft_p99_s", float("nan"))
        if _tail_checked(level, row, step_tokens) and p50 > 0 and p99 > max_ttft_tail * p50:
            problems.append(f"at {level} streams TTFT p99 {p99:.3f} s is {p99 / p50:.1f}× its p50 {p50:.3f} s with a slot "
                            f"free for every stream and every prompt fitting one {step_tokens}-token step (limit "
                            f"{max_ttft_tail}×): a stall, not queueing")
        if "ttft_audited" in row and row["ttft_audited"] + row.get("ttft_unaudited", 0) == 0:
            problems.append(f"at {level} streams every TTFT sample was a cache hit: no TTFT published")
    if single.audit is not None and single.audit.unaudited:
        problems.append(f"{single.audit.unaudited} single-stream TTFT samples carry no cache evidence from the server "
                        f"(not audited: start vLLM with {REPORTING_FLAGS})")
    if single.audit is not None and single.ttft_s.n == 0:
        problems.append("every single-stream TTFT sample was a cache hit: no TTFT published")
    if lengths is not None and lowest == 1:
        at_one = table.loc[1]
        for _, row in lengths.iterrows():
            a, b = float(at_one["ttft_p50_s"]), float(row["ttft_p50_s"])
            if abs(row["in_tokens"] / at_one["in_tokens"] - 1) <= 0.05 and min(a, b) > 0 and max(a, b) / min(a, b) > max_ttft_ratio:
                problems.append(f"TTFT p50 at {at_one['in_tokens']:.0f} tokens: {a:.3f} s in the sweep, {b:.3f} s in the "
                                f"prompt-length sweep ({max(a, b) / min(a, b):.2f}× apart; limit {max_ttft_ratio}×)")
    row = _same_length(lengths, single.prompt_tokens) if lengths is not None and single.ttft_s.n else None
    if row is not None:  # Step 3's cold TTFT and the length sweep's at its length: both cache-off, the same prefill
        a, b = single.ttft_s.median, float(row["ttft_p50_s"])
        if min(a, b) > 0 and max(a, b) / min(a, b) > max_ttft_ratio:
            problems.append(f"TTFT at {single.prompt_tokens:.0f} tokens: {a:.3f} s in Step 3's single stream, {b:.3f} s in "
                            f"the prompt-length sweep at {row['in_tokens']:.0f} tokens ({max(a, b) / min(a, b):.2f}× apart; "
                            f"limit {max_ttft_ratio}×)")
    if lengths is not None:
        problems += length_sweep_problems(lengths, decode_tok_s=single_rate, max_spread=max_spread)
    short = int(table["short_outputs"].sum()) + sum(r.completion_tokens < single.asked_tokens for r in single.replies)
    if short:
        problems.append(f"{short} outputs were shorter than asked: the server ignores `ignore_eos`, so requests did unequal work")
    return problems
