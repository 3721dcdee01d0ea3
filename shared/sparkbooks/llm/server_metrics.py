"""The server's own Prometheus counters (``/metrics``): a second witness of prompt-cache hits, beside each reply's.

Each reply's cache figure (:mod:`.cache_audit`) can be missing — vLLM omits ``prompt_tokens_details`` unless started
with ``--enable-prompt-tokens-details``, and on hybrid Mamba models its prefix cache may never hit, so the one-off
probe cannot show that it reports. The server's counters do not depend on either: vLLM exports
``vllm:prompt_tokens_cached_total`` (cached prompt tokens per finished request; ``vllm/v1/metrics/loggers.py``, labelled
by ``model_name`` and ``engine``: summed here) and llama.cpp, started with ``--metrics``,
``llamacpp:prompt_tokens_cached_total`` — printed with six significant digits, so past a million tokens a difference
is only good to :attr:`CacheCount.resolution`.
:func:`counting` reads the counter before and after a block of requests; the difference is the cached prompt tokens the
server itself counted for them (on a server nobody else uses).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .client import Endpoint

__all__ = ["CACHE_HIT_COUNTERS", "CacheCount", "cached_prompt_tokens", "counting", "parse_metrics", "read_metrics"]

#: Prompt tokens a server says it took from its cache (counters: they only grow), first found wins. vLLM ≥ 0.20:
#: ``vllm:prompt_tokens_cached`` counts each finished request's cached tokens (local and external, what
#: ``usage.prompt_tokens_details.cached_tokens`` reports); older vLLM only has ``vllm:prefix_cache_hits``, counted per
#: scheduling attempt (a request that waits is counted again), so it can only overstate.
CACHE_HIT_COUNTERS = ("vllm:prompt_tokens_cached_total", "vllm:prefix_cache_hits_total", "llamacpp:prompt_tokens_cached_total")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition → ``{name: value}``, summed over label sets (vLLM labels each engine).

    >>> parse_metrics('# HELP x y\\nvllm:prefix_cache_hits_total{engine="0",model_name="m"} 12.0\\n'
    ...               'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 3\\nllamacpp:n_decode_total 8')
    {'vllm:prefix_cache_hits_total': 15.0, 'llamacpp:n_decode_total': 8.0}
    """
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:  # name{label="value",…} value [timestamp]
            name, fields = line[:line.index("{")], line[line.rindex("}") + 1:].split()
        else:  # name value [timestamp]
            name, *fields = line.split()
        try:
            value = float(fields[0])
        except (IndexError, ValueError):
            continue
        if math.isfinite(value):
            values[name] = values.get(name, 0.0) + value
    return values


def read_metrics(endpoint: Endpoint, *, timeout: float = 5.0) -> dict[str, float] | None:
    """The server's ``/metrics``, parsed; None when it has none (llama.cpp without ``--metrics`` answers 501)."""
    import httpx  # noqa: PLC0415

    try:
        response = httpx.get(f"{endpoint.base_url.removesuffix('/v1')}/metrics", timeout=timeout)
    except httpx.HTTPError:
        return None
    return parse_metrics(response.text) if response.status_code == 200 else None


def cached_prompt_tokens(metrics: dict[str, float] | None) -> float | None:
    """The cache-hit counter among ``metrics``, or None when the server exports none this module knows."""
    name = _counter(metrics)
    return None if name is None else metrics[name]  # type: ignore[index]


def _counter(metrics: dict[str, float] | None) -> str | None:
    return next((name for name in CACHE_HIT_COUNTERS if metrics and name in metrics), None)


@dataclass
class CacheCount:
    """Cached prompt tokens the server counted during a :func:`counting` block (None: it exports no counter)."""

    before: float | None = None
    after: float | None = None
    rounded: bool = True  # printed to six significant digits (llama.cpp); vLLM's prometheus_client prints full floats

    @property
    def hits(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def resolution(self) -> float:
        """How finely the counter is printed: llama.cpp writes six significant digits (1,234,567 → 1.23457e+06).

        >>> CacheCount(0, 999).resolution, CacheCount(1_000_000, 1_234_567).resolution
        (1, 10)
        """
        if not self.rounded:
            return 1
        largest = max(abs(self.before or 0), abs(self.after or 0), 1)
        return max(1, 10 ** (math.floor(math.log10(largest)) - 5))


@contextmanager
def counting(endpoint: Endpoint) -> Iterator[CacheCount]:
    """Count the prompt tokens the server took from its cache while the block runs (``count.hits`` after it)."""
    metrics = read_metrics(endpoint)
    name = _counter(metrics)
    count = CacheCount(before=cached_prompt_tokens(metrics), rounded=not (name or "").startswith("vllm:"))
    yield count
    if count.before is not None:
        count.after = cached_prompt_tokens(read_metrics(endpoint))
