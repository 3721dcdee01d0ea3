"""The OpenAI-compatible client: connect to a server (vLLM, llama.cpp, Ollama, NIM, TRT-LLM) and chat with it.

Everything goes through the official ``openai`` client. Failures a user will meet become
:class:`~sparkbooks.exceptions.ServerError` subclasses whose messages say what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import (
    ContextLengthError,
    ModelNotServedError,
    RequestTimeoutError,
    ServerDiedError,
    ServerError,
    ServerUnreachableError,
    VisionUnsupportedError,
)

__all__ = ["Endpoint", "Reply", "chat", "connect"]

_START_HINT = ("Start a server first — on a DGX Spark e.g. `vllm serve nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4 "
               "--port 8000 …` (see the nemotron-nano guide) — or leave base_url empty to start the local llama-server stand-in.")


@dataclass(frozen=True)
class Endpoint:
    """A reachable server and the model to ask."""

    base_url: str
    model: str
    served: tuple[str, ...]
    api_key: str = "not-needed"

    def client(self, *, timeout: float = 300.0):
        import openai  # noqa: PLC0415

        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=timeout, max_retries=0)


def connect(base_url: str, *, model: str | None = None, api_key: str | None = None, timeout: float = 5.0) -> Endpoint:
    """Check that ``base_url`` answers ``/models`` and serves ``model`` (default: the first served).

    Raises
    ------
    ServerUnreachableError
        Within ``timeout`` seconds when nothing answers; names the URL and how to start a server.
    ModelNotServedError
        Listing the served models.
    """
    import httpx  # noqa: PLC0415

    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, timeout=timeout, headers=headers)
        response.raise_for_status()
        served = tuple(m["id"] for m in response.json()["data"])
    except httpx.HTTPStatusError as exc:
        raise ServerUnreachableError(f"{url} answered HTTP {exc.response.status_code}: is this an OpenAI-compatible server? {_START_HINT}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise ServerUnreachableError(f"No server answers at {base_url} ({type(exc).__name__}: {exc}). {_START_HINT}") from None
    except (ValueError, KeyError, TypeError):
        raise ServerUnreachableError(f"{url} did not return an OpenAI model list. {_START_HINT}") from None
    if not served:
        raise ModelNotServedError(f"The server at {base_url} serves no model yet (still loading?).")
    if model is None:
        model = served[0]
    elif model not in served:
        raise ModelNotServedError(f"The server at {base_url} does not serve {model!r}. Served: {', '.join(served)}.")
    return Endpoint(base_url.rstrip("/"), model, served, api_key or "not-needed")


@contextmanager
def _translated(endpoint: Endpoint, *, streaming: bool = False, timeout: float | None = None) -> Iterator[None]:
    import httpx  # noqa: PLC0415
    import openai  # noqa: PLC0415

    try:
        try:
            yield
        except (openai.BadRequestError, openai.InternalServerError) as exc:
            if _no_vision(str(exc)):
                raise VisionUnsupportedError(
                    f"{endpoint.base_url} serves {endpoint.model!r}, which does not accept images ({str(exc)[:200]}). "
                    "Serve a vision-language model, e.g. `vllm serve Qwen/Qwen2.5-VL-7B-Instruct`, or start "
                    "llama-server with `--mmproj` for the model's projector.") from None
            raise
    except (openai.APITimeoutError, httpx.TimeoutException):  # before APIConnectionError / TransportError, their parents
        raise RequestTimeoutError(_timeout_message(endpoint, timeout, streaming=streaming)) from None
    except (httpx.TransportError, ConnectionError) as exc:  # raised raw while iterating a stream
        raise ServerDiedError(f"The connection to {endpoint.base_url} broke mid-response ({type(exc).__name__}: {exc}); "
                              "the server probably died — check its log, then start it again.") from None
    except openai.BadRequestError as exc:
        text = str(exc)
        if "context" in text.lower():
            limit = _context_limit(exc)
            raise ContextLengthError(
                f"The prompt does not fit the context window{limit}: {text}. Shorten the prompt or lower max_tokens, "
                "or restart the server with a larger --ctx-size (llama.cpp) / --max-model-len (vLLM).") from None
        raise ServerError(f"The server rejected the request: {text}") from None
    except openai.NotFoundError as exc:
        raise ModelNotServedError(f"{endpoint.base_url}: {exc}. Served: {', '.join(endpoint.served)}.") from None
    except (openai.APIConnectionError, openai.InternalServerError) as exc:
        if streaming:
            raise ServerDiedError(f"The connection to {endpoint.base_url} broke mid-response ({exc}); the server "
                                  "probably died — check its log, then start it again.") from None
        raise ServerUnreachableError(f"No server answers at {endpoint.base_url} ({exc}). {_START_HINT}") from None


def _timeout_message(endpoint: Endpoint, timeout: float | None, *, streaming: bool) -> str:
    if streaming:
        return (f"{endpoint.base_url} stopped sending for {timeout} s mid-answer: the server is overloaded or stuck. "
                "Raise the timeout, lower max_tokens or the load, or restart the server.")
    return (f"{endpoint.base_url} did not answer within {timeout} s. The server may be busy or the request large "
            "(many or big images, long max_tokens): raise the timeout, send smaller images, or lower max_tokens.")


_NO_VISION = ("image input is not supported", "does not support image", "not a multimodal model",
              "multimodal input is not supported", "at most 0 image")


def _no_vision(text: str) -> bool:
    """Whether a server's error says its model takes no images (llama.cpp, vLLM and Ollama phrasings)."""
    return any(marker in text.lower() for marker in _NO_VISION)


def _context_limit(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if not isinstance(body, Mapping):
        return ""
    err = body["error"] if isinstance(body.get("error"), Mapping) else body
    n_ctx = err.get("n_ctx")  # llama.cpp reports the slot's context size
    return f" of {n_ctx} tokens per request slot" if n_ctx else ""


@dataclass
class Reply:
    """One completion and how long it took."""

    text: str
    reasoning: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    server_decode_tok_s: float | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    arrivals_s: list[float] = field(default_factory=list)  # when each streamed chunk with text arrived, from the request
    # The server's own cache evidence: prompt tokens it took from its prompt/prefix cache (llama.cpp ``timings.cache_n``,
    # or the OpenAI ``usage.prompt_tokens_details.cached_tokens`` vLLM sends) and those it computed (``timings.prompt_n``).
    # None: the server did not say, so a TTFT from this reply cannot be audited.
    cached_tokens: int | None = None
    computed_prompt_tokens: int | None = None
    # llama.cpp's speculative decoding: tokens drafted and of those accepted (None: no speculation ran)
    draft_tokens: int | None = None
    draft_accepted: int | None = None

    @property
    def decode_tok_s(self) -> float | None:
        """Tokens/s after the first token, as the client saw them arrive (1 / TPOT)."""
        tpot = self.tpot_s
        return None if tpot is None else 1 / tpot

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (total − TTFT) / (tokens − 1), as ``vllm bench serve`` defines it."""
        if self.ttft_s is None or self.completion_tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.total_s - self.ttft_s) / (self.completion_tokens - 1)

    @property
    def itl_s(self) -> list[float]:
        """Inter-token latencies: the gaps between streamed chunks (one token per chunk on vLLM and llama.cpp)."""
        return [b - a for a, b in zip(self.arrivals_s, self.arrivals_s[1:])]


def _reasoning(message: Any) -> str:
    """The reasoning trace of a message or stream delta, whichever field the server uses.

    vLLM moved it to ``reasoning`` (vllm#27752, Nov 2025) and removed ``reasoning_content``
    (vllm#33402, Jan 2026); llama.cpp and older vLLM send ``reasoning_content``.
    """
    for name in ("reasoning", "reasoning_content"):
        value = getattr(message, name, None)
        if value is None:
            value = (getattr(message, "model_extra", None) or {}).get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _request(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, max_tokens: int, temperature: float,
             seed: int | None, reasoning: bool | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": endpoint.model, "messages": list(messages), "max_tokens": max_tokens,
                            "temperature": temperature, **extra}
    if seed is not None:
        body["seed"] = seed
    if reasoning is not None:  # Nemotron 3's chat template switch; templates without it ignore it
        body["extra_body"] = {**body.get("extra_body", {}), "chat_template_kwargs": {"enable_thinking": reasoning}}
    return body


def _cache_evidence(reply: Reply, usage: Any, timings: Mapping[str, Any] | None) -> None:
    """Copy the server's own prompt-cache figures into ``reply`` (llama.cpp ``timings``; OpenAI ``usage`` details)."""
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if isinstance(cached, int):
        reply.cached_tokens = cached
    if timings:
        if isinstance(timings.get("cache_n"), int):
            reply.cached_tokens = int(timings["cache_n"])
        if isinstance(timings.get("prompt_n"), int):
            reply.computed_prompt_tokens = int(timings["prompt_n"])
        if isinstance(timings.get("draft_n"), int):
            reply.draft_tokens, reply.draft_accepted = int(timings["draft_n"]), int(timings.get("draft_n_accepted") or 0)


def chat(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, max_tokens: int = 256, temperature: float = 0.0,
         seed: int | None = None, reasoning: bool | None = None, stream: bool = True,
         on_text: Callable[[str], None] | None = None, timeout: float = 300.0, **extra: Any) -> Reply:
    """One chat completion; streamed by default so time to first token is measured.

    ``timeout`` (seconds) bounds each network read; a server that says nothing for that long
    raises :class:`RequestTimeoutError`.

    ``extra`` passes straight to the API (``response_format``, ``tools``, ``tool_choice``…);
    server-specific fields go in ``extra_body`` (e.g. ``{"ignore_eos": True}``, which vLLM and llama.cpp honour).
    """
    body = _request(endpoint, messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                    reasoning=reasoning, extra=extra)
    client = endpoint.client(timeout=timeout)
    start = time.perf_counter()
    if not stream:
        with _translated(endpoint, timeout=timeout):
            done = client.chat.completions.create(**body)
        choice = done.choices[0]
        usage = done.usage
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                 for c in (choice.message.tool_calls or [])]
        reply = Reply(text=choice.message.content or "", reasoning=_reasoning(choice.message),
                      finish_reason=choice.finish_reason, prompt_tokens=usage.prompt_tokens if usage else 0,
                      completion_tokens=usage.completion_tokens if usage else 0, total_s=time.perf_counter() - start,
                      tool_calls=calls)
        timings = (done.model_extra or {}).get("timings")
        _cache_evidence(reply, usage, timings)
        if timings and timings.get("predicted_per_second"):  # llama.cpp's own clock, as in the streamed path
            reply.server_decode_tok_s = float(timings["predicted_per_second"])
        return reply
    reply = Reply(text="")
    parts: list[str] = []
    thoughts: list[str] = []
    with _translated(endpoint, timeout=timeout):
        chunks = client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
    with _translated(endpoint, streaming=True, timeout=timeout):
        for chunk in chunks:
            now = time.perf_counter()
            if chunk.choices:
                delta = chunk.choices[0].delta
                piece = delta.content or ""
                thought = _reasoning(delta)
                if piece or thought:
                    reply.arrivals_s.append(now - start)
                    if reply.ttft_s is None:
                        reply.ttft_s = now - start
                if piece:
                    parts.append(piece)
                    if on_text:
                        on_text(piece)
                thoughts.append(thought)
                reply.finish_reason = chunk.choices[0].finish_reason or reply.finish_reason
            if chunk.usage:
                reply.prompt_tokens, reply.completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            timings = (chunk.model_extra or {}).get("timings")  # llama.cpp reports its own decode speed and cache use
            _cache_evidence(reply, chunk.usage, timings)
            if timings and timings.get("predicted_per_second"):
                reply.server_decode_tok_s = float(timings["predicted_per_second"])
    reply.total_s = time.perf_counter() - start
    reply.text, reply.reasoning = "".join(parts), "".join(thoughts)
    if reply.finish_reason is None:
        raise ServerDiedError(f"The stream from {endpoint.base_url} ended without a finish reason: the server "
                              "probably died mid-response. Check its log and start it again.")
    return reply



def embed(endpoint: Endpoint, texts: Sequence[str], *, batch_size: int = 32, timeout: float = 300.0,
          extra_body: Mapping[str, Any] | None = None) -> list[list[float]]:
    """Vectors for ``texts`` from an OpenAI-compatible ``/v1/embeddings`` server (vLLM ``--task embed``, llama.cpp
    ``--embeddings``, an NVIDIA embedding NIM), in order, ``batch_size`` texts per request; errors translated as for
    :func:`chat`. ``extra_body`` adds request fields, e.g. ``{"input_type": "query"}``, which NVIDIA's NIMs require."""
    vectors: list[list[float]] = []
    extra = {"extra_body": dict(extra_body)} if extra_body else {}
    with endpoint.client(timeout=timeout) as client, _translated(endpoint, timeout=timeout):
        for i in range(0, len(texts), batch_size):
            done = client.embeddings.create(model=endpoint.model, input=list(texts[i:i + batch_size]), **extra)
            vectors.extend(d.embedding for d in sorted(done.data, key=lambda d: d.index))
    return vectors
