"""Tool calling: native (``tools`` in the request) and schema-routed (a JSON-constrained choice of tool)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .client import Endpoint, chat
from .extraction import extract_json

__all__ = ["Tool", "ToolRun", "tool_call_via_schema", "tool_round_trip"]


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
                         seed: int = 0, reasoning: bool | None = False) -> ToolRun:
    """Tool use for models without native tool calling: a JSON-schema-constrained choice of tool.

    The model must answer ``{"tool": name, "arguments": {...}}`` (one ``anyOf`` branch per tool),
    the tool runs, and its result goes back for the final answer. ``reasoning`` is off by default, as in
    :func:`~sparkbooks.llm.extraction.extract_json` (a thinking model's trace would use up the constrained answer's tokens).
    """
    schema = {"anyOf": [{"type": "object", "properties": {"tool": {"const": t.name}, "arguments": dict(t.parameters)},
                         "required": ["tool", "arguments"], "additionalProperties": False} for t in tools]}
    menu = "\n".join(f"- {t.name}: {t.description}" for t in tools)
    instruction = f"Choose the tool that answers the question and give its arguments as JSON.\nTools:\n{menu}"
    done = extract_json(endpoint, question, schema=schema, instruction=instruction, max_tokens=max_tokens, seed=seed,
                        reasoning=reasoning)
    choice = done.value
    messages: list[dict[str, Any]] = [{"role": "system", "content": instruction}, {"role": "user", "content": question}]
    run = ToolRun(messages, [], "")
    if choice is None:
        run.errors.append(done.problem)
        run.answer = "(the model produced no valid tool choice)"
        return run
    by_name = {t.name: t for t in tools}
    result = _call(by_name[choice["tool"]], choice["arguments"], run)
    messages.append({"role": "assistant", "content": json.dumps(choice)})
    # The final answer is a fresh, plain request: the JSON-only instruction no longer applies.
    follow_up = [{"role": "user", "content": f"{question}\nA {choice['tool']} tool computed: {json.dumps(result)}. "
                                             "Answer in one sentence using that result."}]
    reply = chat(endpoint, follow_up, max_tokens=max_tokens, seed=seed, reasoning=reasoning)
    messages += [*follow_up, {"role": "assistant", "content": reply.text}]
    run.answer = reply.text
    return run

