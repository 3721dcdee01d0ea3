"""Does the server decode as fast as its own engine? The sweep beside ``llama-batched-bench`` at the same levels.

``llama-batched-bench`` (built from the same source as ``llama-server``) decodes B sequences in lock-step
inside the engine: no HTTP, no client, no prefill of newcomers between steps. Two server figures meet it:

* :func:`lockstep` — B prompts in one request, **not streamed**, timed by the server's own clock
  (llama.cpp's ``timings.predicted_per_second``): the same work as the bench, through the server. This is
  the figure the goal (within 10 % at 1, 2 and 4 streams) is judged on;
* the streamed sweep's steady-state decode, B / ITL p50 (the median gap between tokens, which a
  newcomer's prefill does not move): what a streaming client gets, judged too. Beside it the server's own clock
  during the streamed requests says whether a shortfall happens inside the server; the client's CPU is printed.

:func:`against_engine` lays the three side by side and says, in a sentence computed from them, whether the goal holds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..exceptions import InputError
from .cache_audit import random_prompts
from .client import Endpoint

__all__ = ["ENGINE_TOLERANCE", "EngineComparison", "LOCKSTEP_SPREAD", "against_engine", "lockstep"]

#: The goal: the server's decode within this share of the engine's, at every level.
ENGINE_TOLERANCE = 0.10
#: Prompts of one round decoding in lock-step run at the same rate; a wider spread means they did not.
LOCKSTEP_SPREAD = 1.05


def lockstep(endpoint: Endpoint, *, levels: Sequence[int], input_tokens: int, output_tokens: int, rounds: int = 3,
             seed: int = 0, timeout: float = 300.0):
    """At each level, ``rounds`` rounds of ``level`` unique prompts of exactly ``input_tokens`` tokens in **one**
    request to llama.cpp's native ``/completion`` (a list of token lists), not streamed, prompt cache off.

    One request puts every prompt on the server's queue at once, so all are prefilled in one step and then decode
    in lock-step — ``llama-batched-bench``'s work. (Separate concurrent requests arrive a few milliseconds apart:
    a late prompt's prefill then lands inside the others' decoding and is charged to them — 0.87 of the engine at
    two streams, measured.) Every output is exactly ``output_tokens`` long (``ignore_eos``); one round is discarded
    first. Prompts are random words tokenized by the server, cut to length. The aggregate decode is ``level`` ×
    the median of the server's own per-prompt rate (``timings.predicted_per_second``); a server without that clock
    (vLLM) is refused.

    Levels above the server's slots are refused (their prompts would queue, yet count as decoding beside the others).
    ``rate_spread`` is the worst round's fastest over slowest per-prompt rate: 1.00 when the prompts really decoded
    in lock-step; above :data:`LOCKSTEP_SPREAD` the level is not judged.

    Returns a DataFrame indexed by ``streams`` (``requests``, ``in_tokens``, ``server_tok_s``, ``rate_spread``).
    """
    import httpx  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    root = endpoint.base_url.removesuffix("/v1")

    def post(path: str, body: dict):
        try:
            response = httpx.post(f"{root}{path}", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise InputError(f"{root}{path} did not answer ({exc}): the lock-step check needs llama.cpp's native API.") from exc
        if response.status_code != 200:
            raise InputError(f"{root}{path} answered {response.status_code}: the lock-step check needs llama-server "
                             f"(vLLM: compare with `vllm bench serve` instead). {response.text[:200]}")
        return response.json()

    from .loadtest import server_slots  # noqa: PLC0415 - loadtest imports this package's checks

    slots = server_slots(endpoint)
    if slots is not None and max(levels) > slots:  # queued prompts would be counted as decoding beside the others
        raise InputError(f"The server has {slots} slots: lock-step levels above it ({max(levels)}) would queue prompts. "
                         f"Start it with --parallel {max(levels)} or lower the levels.")
    rows = []
    for i, level in enumerate(levels):
        texts = random_prompts(level * (rounds + 1), input_tokens, seed=seed * 7919 + 1000 + i)  # ≥ 1 token a word
        prompts = [_tokens(post("/tokenize", {"content": text}), root)[:input_tokens] for text in texts]
        rates, spreads = [], []
        for r in range(rounds + 1):  # round 0 warms the slots and is discarded
            body = {"prompt": prompts[r * level:(r + 1) * level], "n_predict": output_tokens, "ignore_eos": True,
                    "cache_prompt": False, "temperature": 0.0, "seed": seed}
            done = post("/completion", body)
            done = done if isinstance(done, list) else [done]
            if r:
                got = [(d.get("timings") or {}).get("predicted_per_second") for d in done]
                rates += got
                if all(got):  # in lock-step every prompt of a round decodes at the same rate
                    spreads.append(max(got) / min(got))
        if not rates or any(not rate for rate in rates):
            raise InputError(f"{endpoint.base_url} sends no decode timing of its own (llama.cpp's `timings`): the "
                             "lock-step comparison with the engine needs it.")
        rows.append({"streams": level, "requests": len(rates), "in_tokens": statistics.fmean(len(p) for p in prompts),
                     "server_tok_s": level * statistics.median(rates), "rate_spread": max(spreads)})
    return pd.DataFrame(rows).set_index("streams")


def _tokens(answer, root: str) -> list[int]:
    """The token ids of a llama.cpp ``/tokenize`` answer; any other answer means another kind of server."""
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise InputError(f"{root}/tokenize did not return token ids: the lock-step check needs llama-server's native "
                         "API (vLLM: compare with `vllm bench serve` instead).")
    return tokens


@dataclass(frozen=True)
class EngineComparison:
    """The server's decode beside the engine's at each level, and the verdicts on the goal for both server paths."""

    table: object  # DataFrame indexed by streams
    tolerance: float

    @property
    def within(self) -> bool:
        """Every level's lock-step server decode within the tolerance of the engine's, the prompts in lock-step."""
        return bool(self.table["within"].all())

    @property
    def streamed_within(self) -> bool | None:
        """The same for the streamed sweep (B / ITL p50) — what a streaming client gets; None without a sweep."""
        ratios = self.table["streamed/engine"]
        return None if ratios.isna().all() else bool(((ratios - 1).abs() <= self.tolerance).all())

    def worst(self, column: str = "server/engine") -> float:
        """The ratio in ``column`` furthest from 1."""
        ratios = self.table[column]
        return float(ratios.iloc[(ratios - 1).abs().argmax()])

    def server_sentence(self) -> str:
        """The lock-step verdict in words, from the table."""
        levels = ", ".join(str(n) for n in self.table.index)
        ratios = ", ".join(f"{r:.2f}" for r in self.table["server/engine"])
        loose = [str(n) for n, spread in self.table["rate_spread"].items() if spread > LOCKSTEP_SPREAD]
        verdict = (f"not judged: the prompts did not decode in lock-step at {', '.join(loose)} streams" if loose else
                   f"{'within' if self.within else 'not within'} ±{self.tolerance:.0%} at every level; prompts in "
                   f"lock-step (rate spread ≤ {LOCKSTEP_SPREAD})")
        return (f"server (one request of B prompts, not streamed, its own clock) over engine at {levels} streams: {ratios} — "
                f"{verdict}")

    def streamed_sentence(self, client_cores: float | None = None) -> str:
        """The streamed verdict in words, with the server's own clock while it streamed (and the client's CPU, if given)."""
        if self.streamed_within is None:
            return "no streamed sweep compared"
        streamed = ", ".join(f"{r:.2f}" for r in self.table["streamed/engine"])
        own = ", ".join(f"{r:.2f}" for r in self.table["streamed_server/engine"])
        text = (f"streamed to this client (B / ITL p50) over engine: {streamed} — "
                f"{'within' if self.streamed_within else 'not within'} ±{self.tolerance:.0%} at every level; the server's "
                f"own clock while streaming: {own}")
        text += (f"; the client used {client_cores:.2f} cores on average while it streamed" if client_cores is not None else "")
        estimate = ", ".join(f"{r:.2f}" for r in self.table["aggregate/estimate"])
        return text + f"; the sweep's aggregate over a closed-loop estimate from the engine's own rates: {estimate}"

    def sentence(self, client_cores: float | None = None) -> str:
        """Both verdicts."""
        return f"{self.server_sentence()}; {self.streamed_sentence(client_cores)}"


def against_engine(bench, lockstep_table, sweep=None, *, tolerance: float = ENGINE_TOLERANCE) -> EngineComparison:
    """Join ``llama-batched-bench``'s decode (:func:`~sparkbooks.llm.llamacpp.run_batched_bench`, one prompt length;
    a level run more than once counts by its median) with :func:`lockstep`'s and, when given, the streamed
    ``sweep``'s: B / ITL p50 (the steady-state rate a streaming client sees) and B × the server's own per-request clock
    while it streamed (``streamed_server/engine``: whether the slowdown happens inside the server). And the sweep's
    aggregate against ``closed_loop_estimate_tok_s`` = out / (in / P + (out − 1) / S_TG(B)), P the bench's one-sequence
    prefill rate: a closed loop's newcomers each bring a prefill the other streams wait through, so its aggregate stays
    below S_TG — an estimate, not a bound (prompts arriving together prefill faster; a GPU folds decode into prefill).

    >>> import pandas as pd
    >>> bench = pd.DataFrame({"in_tokens": 64, "parallel": [1, 2, 2, 2], "aggregate_decode_tok_s": [150.0, 150, 90, 151]})
    >>> served = pd.DataFrame({"server_tok_s": [148.0, 120.0], "rate_spread": [1.0, 1.0]}, index=pd.Index([1, 2], name="streams"))
    >>> c = against_engine(bench, served)
    >>> c.within, round(c.worst(), 2), c.streamed_within, c.streamed_sentence()
    (False, 0.8, None, 'no streamed sweep compared')
    """
    if bench["in_tokens"].nunique() > 1:
        raise InputError("The bench table holds more than one prompt length: pass the rows of one length.")
    engine = bench.groupby("parallel")["aggregate_decode_tok_s"].median()  # a level run several times: its median
    missing = [n for n in lockstep_table.index if n not in engine.index]
    if missing:
        raise InputError(f"llama-batched-bench did not run at {missing} parallel sequences: run it at the same levels.")
    table = lockstep_table[["server_tok_s", "rate_spread"]].copy()
    table.insert(0, "engine_tok_s", engine.reindex(table.index).to_numpy())
    table.insert(2, "server/engine", table["server_tok_s"] / table["engine_tok_s"])
    table["within"] = ((table["server/engine"] - 1).abs() <= tolerance) & (table["rate_spread"] <= LOCKSTEP_SPREAD)
    nan = float("nan")
    streams = table.index.to_series()
    if sweep is not None:
        # what a closed loop of B streams would deliver at the engine's own rates, if each newcomer's prefill were a
        # step every stream waits for (its first token comes from that step) and the rest B-wide decode steps: an
        # estimate — prompts arriving together prefill faster, and a GPU folds decode tokens into a prefill batch
        one = bench[bench["parallel"] == 1]["prefill_tok_s"] if "prefill_tok_s" in bench else []
        prefill = float(one.median()) if len(one) else nan
        rows = sweep.reindex(table.index)
        table["closed_loop_estimate_tok_s"] = (rows["out_tokens"] / (
            rows["in_tokens"] / prefill + (rows["out_tokens"] - 1) / table["engine_tok_s"])).to_numpy()
        table["aggregate/estimate"] = rows["aggregate_tok_s"].to_numpy() / table["closed_loop_estimate_tok_s"]
        table["streamed_tok_s"] = (streams * 1000 / sweep["itl_p50_ms"].reindex(table.index)).to_numpy()
        table["streamed/engine"] = table["streamed_tok_s"] / table["engine_tok_s"]
        own = sweep["server_tok_s_p50"].reindex(table.index) if "server_tok_s_p50" in sweep else nan
        table["streamed_server/engine"] = (streams * own).to_numpy() / table["engine_tok_s"]
    else:
        table["streamed_tok_s"] = table["streamed/engine"] = table["streamed_server/engine"] = nan
        table["closed_loop_estimate_tok_s"] = table["aggregate/estimate"] = nan
    return EngineComparison(table, tolerance)
