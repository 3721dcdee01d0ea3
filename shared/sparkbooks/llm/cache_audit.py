"""Timed prompts no cache can answer, and the audit of every TTFT sample against the server's own cache figures.

Each timed prompt is unique from its first content token (:func:`unique_messages`, :func:`random_prompts`),
and each reply carries the server's own cache evidence (llama.cpp's ``timings.cache_n`` / ``prompt_n``, or the
OpenAI ``usage.prompt_tokens_details.cached_tokens`` vLLM sends with ``--enable-prompt-tokens-details``).
A sample whose cache hit reaches beyond the tokens every prompt shares by construction — those before
the tag: the chat template's own prefix, and with the tag in the last message the system prompt too,
counted exactly by :func:`template_prefix` — is refused: it is counted, never published
(:class:`CacheAudit`). A sample without evidence is published but counted as unaudited, and
:func:`sparkbooks.llm.loadtest.consistency` says so.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..exceptions import InputError
from .client import Endpoint, Reply

__all__ = ["AuditedReplies", "CacheAudit", "TemplatePrefix", "audit_replies", "random_prompts", "template_prefix",
           "unique_messages"]

FIXED_LENGTH = {"ignore_eos": True}  # vLLM and llama.cpp both honour it: every request decodes exactly max_tokens
# llama.cpp reuses a slot's cached prompt prefix (the chat template's own tokens, a default system prompt); for a
# prefill rate every prompt token must be computed. vLLM ignores the field (its prefix cache works on whole blocks).
NO_PROMPT_CACHE = {"cache_prompt": False}

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
        return (f"{self.audited} TTFT samples audited clean (cache hit ≤ {self.allowed} tokens shared before the tag), "
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
