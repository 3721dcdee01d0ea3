"""Talk to any OpenAI-compatible server (vLLM, llama.cpp, Ollama, NIM, TRT-LLM) and measure it.

Everything goes through the official ``openai`` client. Failures a user will meet become
:class:`~sparkbooks.exceptions.ServerError` subclasses whose messages say what to do.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .exceptions import (
    ContextLengthError,
    ModelNotServedError,
    RequestTimeoutError,
    ServerDiedError,
    ServerError,
    ServerUnreachableError,
    VisionUnsupportedError,
)

__all__ = [
    "Endpoint",
    "Reply",
    "Tool",
    "ToolRun",
    "chat",
    "connect",
    "extract_json",
    "plot_sweep",
    "run_extractions",
    "sweep",
    "tool_call_via_schema",
    "tool_round_trip",
]

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

    @property
    def decode_tok_s(self) -> float | None:
        """Tokens/s after the first token, as the client saw them arrive."""
        if self.ttft_s is None or self.completion_tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.completion_tokens - 1) / (self.total_s - self.ttft_s)


def _request(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, max_tokens: int, temperature: float,
             seed: int | None, reasoning: bool | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": endpoint.model, "messages": list(messages), "max_tokens": max_tokens,
                            "temperature": temperature, **extra}
    if seed is not None:
        body["seed"] = seed
    if reasoning is not None:  # Nemotron 3's chat template switch; templates without it ignore it
        body["extra_body"] = {"chat_template_kwargs": {"enable_thinking": reasoning}}
    return body


def chat(endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *, max_tokens: int = 256, temperature: float = 0.0,
         seed: int | None = None, reasoning: bool | None = None, stream: bool = True,
         on_text: Callable[[str], None] | None = None, timeout: float = 300.0, **extra: Any) -> Reply:
    """One chat completion; streamed by default so time to first token is measured.

    ``timeout`` (seconds) bounds each network read; a server that says nothing for that long
    raises :class:`RequestTimeoutError`.

    ``extra`` passes straight to the API (``response_format``, ``tools``, ``tool_choice``…).
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
        return Reply(text=choice.message.content or "", reasoning=getattr(choice.message, "reasoning_content", "") or "",
                     finish_reason=choice.finish_reason, prompt_tokens=usage.prompt_tokens if usage else 0,
                     completion_tokens=usage.completion_tokens if usage else 0, total_s=time.perf_counter() - start,
                     tool_calls=calls)
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
                thought = getattr(delta, "reasoning_content", None) or ""
                if (piece or thought) and reply.ttft_s is None:
                    reply.ttft_s = now - start
                if piece:
                    parts.append(piece)
                    if on_text:
                        on_text(piece)
                thoughts.append(thought)
                reply.finish_reason = chunk.choices[0].finish_reason or reply.finish_reason
            if chunk.usage:
                reply.prompt_tokens, reply.completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            timings = (chunk.model_extra or {}).get("timings")  # llama.cpp reports its own decode speed
            if timings and timings.get("predicted_per_second"):
                reply.server_decode_tok_s = float(timings["predicted_per_second"])
    reply.total_s = time.perf_counter() - start
    reply.text, reply.reasoning = "".join(parts), "".join(thoughts)
    if reply.finish_reason is None:
        raise ServerDiedError(f"The stream from {endpoint.base_url} ended without a finish reason: the server "
                              "probably died mid-response. Check its log and start it again.")
    return reply


def sweep(endpoint: Endpoint, prompts: Sequence[str], *, levels: Sequence[int], requests_per_level: int,
          max_tokens: int = 64, seed: int = 0):
    """Concurrency sweep: for each level, ``requests_per_level`` streamed requests with that many in flight.

    Returns a DataFrame: TTFT p50/p95, mean per-stream decode tokens/s, aggregate tokens/s.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for level in levels:
        work = [[{"role": "user", "content": prompts[i % len(prompts)]}] for i in range(requests_per_level)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=level) as pool:
            replies = list(pool.map(lambda m: chat(endpoint, m, max_tokens=max_tokens, seed=seed), work))
        wall = time.perf_counter() - start
        ttfts = sorted(r.ttft_s for r in replies if r.ttft_s is not None)
        decode = [r.decode_tok_s for r in replies if r.decode_tok_s]
        tokens = sum(r.completion_tokens for r in replies)
        rows.append({
            "concurrency": level, "requests": len(replies), "tokens": tokens, "wall_s": wall,
            "ttft_p50_s": statistics.median(ttfts), "ttft_p95_s": ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))],
            "per_stream_tok_s": statistics.fmean(decode) if decode else float("nan"),
            "aggregate_tok_s": tokens / wall,
        })
    return pd.DataFrame(rows).set_index("concurrency")


def extract_json(endpoint: Endpoint, text: str, *, schema: Mapping[str, Any], instruction: str,
                 max_tokens: int = 200, seed: int = 0, examples: Sequence[tuple[str, Mapping[str, Any]]] = (),
                 timeout: float = 300.0) -> tuple[dict[str, Any] | None, str, Reply]:
    """Ask for JSON constrained by ``schema`` and validate it; returns ``(object or None, error, reply)``.

    ``examples`` are (text, answer) pairs sent first as a worked conversation (few-shot prompting).
    """
    import jsonschema  # noqa: PLC0415

    fmt = {"type": "json_schema", "json_schema": {"name": "extraction", "schema": dict(schema), "strict": True}}
    shots = [m for source, answer in examples for m in ({"role": "user", "content": source},
                                                        {"role": "assistant", "content": json.dumps(answer)})]
    reply = chat(endpoint, [{"role": "system", "content": instruction}, *shots, {"role": "user", "content": text}],
                 max_tokens=max_tokens, seed=seed, response_format=fmt, timeout=timeout)
    try:
        obj = json.loads(reply.text)
        jsonschema.validate(obj, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}", reply
    return obj, "", reply


@dataclass(frozen=True)
class Tool:
    """A Python function the model may call, with its JSON-schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: Callable[..., Any]

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}


@dataclass
class ToolRun:
    """The messages exchanged in a tool loop and what happened."""

    messages: list[dict[str, Any]]
    called: list[str]
    answer: str
    errors: list[str] = field(default_factory=list)


def _call(tool: Tool, arguments: Mapping[str, Any], run: ToolRun) -> Any:
    run.called.append(tool.name)
    try:
        return tool.fn(**arguments)
    except Exception as exc:  # the model's arguments can be wrong; tell it, as an API would
        run.errors.append(f"{type(exc).__name__}: {exc}")
        return {"error": run.errors[-1]}


def tool_round_trip(endpoint: Endpoint, question: str, tools: Sequence[Tool], *, tool_choice: str = "auto",
                    max_rounds: int = 3, max_tokens: int = 200, seed: int = 0) -> ToolRun:
    """Let the model call ``tools`` natively until it answers in text (at most ``max_rounds`` calls).

    Tool results go back as ``role: tool`` messages; a model that answers without calling
    a tool is reported as such, not retried into compliance.
    """
    by_name = {t.name: t for t in tools}
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    run = ToolRun(messages, [], "")
    choice = tool_choice
    for _ in range(max_rounds):
        reply = chat(endpoint, messages, max_tokens=max_tokens, seed=seed, stream=False,
                     tools=[t.spec() for t in tools], tool_choice=choice)
        if not reply.tool_calls:
            run.answer = reply.text
            messages.append({"role": "assistant", "content": reply.text})
            return run
        messages.append({"role": "assistant", "content": reply.text or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in reply.tool_calls]})
        for call in reply.tool_calls:
            tool = by_name.get(call["name"])
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except json.JSONDecodeError:
                arguments = None
            if tool is None or not isinstance(arguments, dict):
                run.errors.append(f"unusable tool call {call['name']}({call['arguments']})")
                result: Any = {"error": run.errors[-1]}
            else:
                result = _call(tool, arguments, run)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)})
        choice = "auto"  # after a forced call, let the model answer
    run.answer = "(no final answer within the round limit)"
    return run


def tool_call_via_schema(endpoint: Endpoint, question: str, tools: Sequence[Tool], *, max_tokens: int = 200,
                         seed: int = 0) -> ToolRun:
    """Tool use for models without native tool calling: a JSON-schema-constrained choice of tool.

    The model must answer ``{"tool": name, "arguments": {...}}`` (one ``anyOf`` branch per tool),
    the tool runs, and its result goes back for the final answer.
    """
    schema = {"anyOf": [{"type": "object", "properties": {"tool": {"const": t.name}, "arguments": dict(t.parameters)},
                         "required": ["tool", "arguments"], "additionalProperties": False} for t in tools]}
    menu = "\n".join(f"- {t.name}: {t.description}" for t in tools)
    instruction = f"Choose the tool that answers the question and give its arguments as JSON.\nTools:\n{menu}"
    choice, error, _ = extract_json(endpoint, question, schema=schema, instruction=instruction, max_tokens=max_tokens,
                                    seed=seed)
    messages: list[dict[str, Any]] = [{"role": "system", "content": instruction}, {"role": "user", "content": question}]
    run = ToolRun(messages, [], "")
    if choice is None:
        run.errors.append(error)
        run.answer = "(the model produced no valid tool choice)"
        return run
    by_name = {t.name: t for t in tools}
    result = _call(by_name[choice["tool"]], choice["arguments"], run)
    messages.append({"role": "assistant", "content": json.dumps(choice)})
    # The final answer is a fresh, plain request: the JSON-only instruction no longer applies.
    follow_up = [{"role": "user", "content": f"{question}\nA {choice['tool']} tool computed: {json.dumps(result)}. "
                                             "Answer in one sentence using that result."}]
    reply = chat(endpoint, follow_up, max_tokens=max_tokens, seed=seed)
    messages += [*follow_up, {"role": "assistant", "content": reply.text}]
    run.answer = reply.text
    return run


def run_extractions(endpoint: Endpoint, items: Sequence[Mapping[str, Any]], *, schema: Mapping[str, Any],
                    instruction: str, max_tokens: int = 200, seed: int = 0):
    """Extract JSON from each ``item["text"]`` and score it against ``item["expected"]``.

    Returns a DataFrame: one row per item with ``valid`` (schema-valid), ``fields_correct``
    (share of expected fields matched, case- and space-insensitive; an expected list lists
    acceptable answers), ``seconds`` and the error.
    """
    import pandas as pd  # noqa: PLC0415

    def norm(v: Any) -> str:
        return " ".join(str(v).lower().split())

    rows = []
    for item in items:
        obj, error, reply = extract_json(endpoint, item["text"], schema=schema, instruction=instruction,
                                         max_tokens=max_tokens, seed=seed)
        expected = item.get("expected", {})
        hits = [obj is not None and norm(obj.get(k)) in {norm(a) for a in (v if isinstance(v, list) else [v])}
                for k, v in expected.items()]
        rows.append({"text": item["text"], "valid": obj is not None, "answer": reply.text,
                     "fields_correct": sum(hits) / len(hits) if hits else float("nan"),
                     "seconds": reply.total_s, "error": error})
    return pd.DataFrame(rows)


def plot_sweep(table):
    """Aggregate and per-stream tokens/s, and TTFT p50/p95, against concurrency."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    levels = table.index.to_list()
    left.plot(levels, table["aggregate_tok_s"], "o-", color="#76b900", label="aggregate")
    left.plot(levels, table["per_stream_tok_s"], "s--", color="#5b5b5b", label="per stream")
    left.set(xlabel="parallel streams", ylabel="tokens/s", title="Decode throughput", xscale="log", xticks=levels)
    left.set_xticklabels(levels)
    left.legend()
    right.plot(levels, table["ttft_p50_s"], "o-", color="#76b900", label="p50")
    right.plot(levels, table["ttft_p95_s"], "s--", color="#5b5b5b", label="p95")
    right.set(xlabel="parallel streams", ylabel="seconds", title="Time to first token", xscale="log", xticks=levels)
    right.set_xticklabels(levels)
    right.legend()
    for ax in (left, right):
        ax.minorticks_off()
    fig.tight_layout()
    return fig
