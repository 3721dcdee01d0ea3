"""Timed prompts no cache can answer, and the audit of every TTFT sample against the server's own cache figures.

Each timed prompt is unique from its first content token (:func:`unique_messages`, :func:`random_prompts`),
and each reply carries the server's own cache evidence (llama.cpp's ``timings.cache_n`` / ``prompt_n``, or the
OpenAI ``usage.prompt_tokens_details.cached_tokens`` vLLM sends with ``--enable-prompt-tokens-details``).
A sample whose cache hit reaches beyond the tokens every prompt shares by construction — those before
the tag: the chat template's own prefix, and with the tag in the last message the system prompt too,
counted exactly by :func:`template_prefix` — is refused: it is counted, never published
(:class:`CacheAudit`). A sample without evidence is published but counted as unaudited, and
:func:`sparkbooks.llm.loadtest.consistency` says so — unless the server is known to report
(:func:`cache_reporting`): vLLM omits the field when **no** token came from cache, so there a missing
count is 0, not "no evidence".
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..exceptions import InputError
from .client import Endpoint, Reply, chat

__all__ = ["AuditedReplies", "CacheAudit", "CacheReporting", "TemplatePrefix", "audit_replies", "cache_reporting",
           "cold_body", "random_prompts", "template_prefix", "unique_messages"]

# What a vLLM server needs to report its cache hits: the count itself, and a prefix cache for it to count
REPORTING_FLAGS = "--enable-prompt-tokens-details --enable-prefix-caching"

FIXED_LENGTH = {"ignore_eos": True}  # vLLM and llama.cpp both honour it: every request decodes exactly max_tokens
# llama.cpp reuses a slot's cached prompt prefix (the chat template's own tokens, a default system prompt); for a
# prefill rate every prompt token must be computed. vLLM ignores the field (its prefix cache works on whole blocks).
NO_PROMPT_CACHE = {"cache_prompt": False}


def cold_body(prompt_cache: bool) -> dict[str, Any]:
    """The request fields for one timed request: fixed length, and — cold — no cache on either engine: llama.cpp's
    ``cache_prompt: false``, and a fresh ``cache_salt`` (vLLM ≥ 0.9 keys its prefix cache by it, so not even the chat
    template's blocks can hit; llama.cpp ignores the field)."""
    if prompt_cache:
        return dict(FIXED_LENGTH)
    return {**FIXED_LENGTH, **NO_PROMPT_CACHE, "cache_salt": f"sparkbooks-{uuid.uuid4().hex}"}

# Common English words: random prompts of them tokenize at a stable, measurable rate on any tokenizer.
_WORDS = tuple("""the of and to in is was for on that with as by at from his her an which it be are this had not but
they have one were all their there been has when who will more no if out so said what up its about into than them can
only other new some could time these two may then do first any my now such like our over man me even most made after
also did many before must through back years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here between both life being under never day
same another know while last might us great old year off come since against go came right used take three""".split())


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
        missing = f" (not audited: start vLLM with {REPORTING_FLAGS})" if self.unaudited else ""
        return (f"{self.audited} TTFT samples audited clean (cache hit ≤ {self.allowed} tokens shared before the tag), "
                f"{self.refused} refused as cache hits, {self.unaudited} without the server's cache evidence{missing}")


class CacheReporting(NamedTuple):
    """Whether a server reports the prompt tokens it took from cache, and how that was found out."""

    reports: bool
    how: str


def cache_reporting(endpoint: Endpoint, *, words: int = 3000, seed: int = 0) -> CacheReporting:
    """Whether ``endpoint`` counts its cached prompt tokens, probed with one long prompt sent twice.

    llama.cpp always sends ``timings.cache_n``. vLLM sends ``usage.prompt_tokens_details.cached_tokens``
    only when started with ``--enable-prompt-tokens-details``, and **only when the count is non-zero**
    (``if self.enable_prompt_tokens_details and num_cached_tokens:`` in its OpenAI serving code), so on
    vLLM a missing count means 0 only if the server is known to report: the repeat must come back with
    its hit counted. The probe is long (≈ 4,000 tokens) so the hit spans whole cache blocks, the large
    blocks of hybrid Mamba models included; it opens with its own tag, so no timed prompt shares it.
    """
    import openai  # noqa: PLC0415

    from ..exceptions import ServerError  # noqa: PLC0415

    prompt = [{"role": "user", "content": random_prompts(1, words, seed=seed + 104_729)[0]}]
    try:
        first, again = (chat(endpoint, prompt, max_tokens=1, seed=seed, stream=False) for _ in range(2))
    except (ServerError, openai.APIError) as exc:  # a probe that fails proves nothing either way
        return CacheReporting(False, f"the cache probe failed ({exc}); not audited: start vLLM with {REPORTING_FLAGS}")
    if again.cached_tokens:
        return CacheReporting(True, f"a repeated {again.prompt_tokens}-token probe came back with {again.cached_tokens} "
                                    "tokens cached, so a reply without the count took none from cache (vLLM omits a 0)")
    if first.cached_tokens is not None or again.cached_tokens is not None:
        return CacheReporting(True, "the server reports cached tokens even when there are none")
    return CacheReporting(False, "the server sent no cached-token count, not even for a repeated prompt; not audited: "
                                 f"start vLLM with {REPORTING_FLAGS}")


class _Reporting:
    """:func:`cache_reporting` for one endpoint, probed at most once and only when a reply lacks the count."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint, self.known = endpoint, None

    def __call__(self, replies: Sequence[Reply]) -> CacheReporting | None:
        if self.known is None and any(r.cached_tokens is None for r in replies):
            self.known = cache_reporting(self.endpoint)
        return self.known


class AuditedReplies(NamedTuple):
    """The replies whose TTFT may be published, and the audit that decided it."""

    kept: list[Reply]
    audit: CacheAudit


def audit_replies(replies: Sequence[Reply], *, allowed: int, how: str = "",
                  reporting: CacheReporting | None = None) -> AuditedReplies:
    """The replies whose TTFT may be published, and the audit that decided it.

    A reply whose ``cached_tokens`` exceed ``allowed`` is refused; one without evidence is kept and
    counted as unaudited — unless ``reporting`` says the server reports its cache hits (vLLM with
    ``--enable-prompt-tokens-details``), where a missing count means none came from cache.

    Examples
    --------
    >>> from sparkbooks.llm.client import Reply
    >>> kept, audit = audit_replies([Reply("", cached_tokens=3), Reply("", cached_tokens=40)], allowed=3)
    >>> len(kept), audit.refused
    (1, 1)
    """
    zero = 0 if reporting is not None and reporting.reports else None  # what a missing count means

    def cached(r: Reply) -> int | None:
        return zero if r.cached_tokens is None else r.cached_tokens

    kept = [r for r in replies if cached(r) is None or cached(r) <= allowed]
    if reporting is not None and any(r.cached_tokens is None for r in replies):
        how = f"{how}; {reporting.how}" if how else reporting.how
    audit = CacheAudit(allowed, how, audited=sum(cached(r) is not None for r in kept),
                       refused=len(replies) - len(kept), unaudited=sum(cached(r) is None for r in kept))
    return AuditedReplies(kept, audit)


def _tag(i: int, rng: random.Random) -> str:
    """A 9-digit opening whose first digit cycles 1–9: consecutive prompts differ from their first token on."""
    return f"{1 + i % 9}{rng.randrange(10**8):08d}"


def unique_messages(messages: Sequence[Mapping[str, Any]], tag: str, *, at: int = 0) -> list[dict[str, Any]]:
    """``messages`` with ``tag`` opening message ``at``'s content (default the first), so no earlier prompt shares
    more than what comes before it: the template's opening, or with ``at=-1`` the system prompt too (a warm prefix)."""
    out = [dict(m) for m in messages]
    if not out:
        raise InputError("messages is empty: pass at least one chat message.")
    content = out[at].get("content", "")
    out[at]["content"] = (f"{tag} {content}" if isinstance(content, str) else
                          [{"type": "text", "text": tag}, *content])
    return out


class TemplatePrefix(NamedTuple):
    """Prompt tokens every tagged variant shares (template, and messages before the tag), and how they were counted."""

    tokens: int
    how: str


def _shared(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def template_prefix(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, at: int = 0) -> TemplatePrefix:
    """Prompt tokens that every :func:`unique_messages` variant of ``messages`` (tagged at ``at``) shares.

    Two variants whose tags differ in their first digit are rendered by the server's own chat template
    and tokenizer, and their common prefix counted — exact on llama.cpp (``/apply-template`` then
    ``/tokenize``) and on vLLM (``/tokenize`` with ``messages``). A server that offers neither gets an
    allowance of **0**: every cache hit is refused, so a contaminated sample is never published (an
    upper bound such as "the prompt with the tagged message emptied" would let the other messages'
    text — a whole user question — count as template). Returns a :class:`TemplatePrefix`.
    """
    import httpx  # noqa: PLC0415

    root = endpoint.base_url.removesuffix("/v1")
    variants = [unique_messages(messages, tag, at=at) for tag in ("1", "2")]
    try:  # llama.cpp: its template renders the prompt, its tokenizer counts it
        token_lists = []
        for variant in variants:
            rendered = httpx.post(f"{root}/apply-template", json={"messages": variant}, timeout=10)
            rendered.raise_for_status()
            tokens = httpx.post(f"{root}/tokenize", json={"content": rendered.json()["prompt"], "add_special": True},
                                timeout=10)
            tokens.raise_for_status()
            token_lists.append(tokens.json()["tokens"])
        return TemplatePrefix(_shared(*token_lists), "llama.cpp's own template and tokenizer (exact)")
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass
    try:  # vLLM: /tokenize applies the served model's chat template to `messages`
        token_lists = []
        for variant in variants:
            tokens = httpx.post(f"{root}/tokenize", json={"model": endpoint.model, "messages": variant,
                                                          "add_generation_prompt": True}, timeout=10)
            tokens.raise_for_status()
            token_lists.append(tokens.json()["tokens"])
        return TemplatePrefix(_shared(*token_lists), "the server's /tokenize with messages (exact)")
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return TemplatePrefix(0, "no way to count the template on this server: no cache hit allowed (strict)")


def random_prompts(n: int, words: int, *, seed: int = 0) -> list[str]:
    """``n`` different prompts of ``words`` random words each, every one opening with its own number.

    Distinct openings stop a server answering from a cached copy of an earlier prompt (llama.cpp's
    slot cache, vLLM's prefix cache); only the chat template's own prefix stays shared, as it is
    for real users (``prompt_cache=False``, the default of :func:`sweep`, makes llama.cpp recompute that too). The first
    digit cycles 1–9, so consecutive prompts differ from their very first token.
    """
    rng = random.Random(seed)
    return [f"{_tag(i, rng)} " + " ".join(rng.choices(_WORDS, k=words)) for i in range(n)]
