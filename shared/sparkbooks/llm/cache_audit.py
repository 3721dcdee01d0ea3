"""Timed prompts no cache can answer, and the audit of every TTFT sample against the server's own cache figures.

Each timed prompt is unique from its first content token (:func:`unique_messages`, :func:`random_prompts`),
and each reply carries the server's own cache evidence (llama.cpp's ``timings.cache_n`` / ``prompt_n``, or the
OpenAI ``usage.prompt_tokens_details.cached_tokens`` vLLM sends with ``--enable-prompt-tokens-details``).
A sample whose cache hit reaches beyond the tokens every prompt shares by construction — the chat
template's own prefix, found by :func:`template_prefix` — is refused: it is counted, never published
(:class:`CacheAudit`). A sample without evidence is published but counted as unaudited, and
:func:`sparkbooks.llm.loadtest.consistency` says so.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..exceptions import InputError
from .client import Endpoint, Reply, chat

__all__ = ["AuditedReplies", "CacheAudit", "TemplatePrefix", "audit_replies", "random_prompts", "template_prefix",
           "unique_messages"]

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


def random_prompts(n: int, words: int, *, seed: int = 0) -> list[str]:
    """``n`` different prompts of ``words`` random words each, every one opening with its own number.

    Distinct openings stop a server answering from a cached copy of an earlier prompt (llama.cpp's
    slot cache, vLLM's prefix cache); only the chat template's own prefix stays shared, as it is
    for real users (``prompt_cache=False``, the default of :func:`sweep`, makes llama.cpp recompute that too). The first
    digit cycles 1–9, so consecutive prompts differ from their very first token.
    """
    rng = random.Random(seed)
    return [f"{_tag(i, rng)} " + " ".join(rng.choices(_WORDS, k=words)) for i in range(n)]
