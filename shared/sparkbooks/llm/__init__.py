"""LLMs behind an OpenAI-compatible API: client, tool calling, JSON extraction, load tests, llama.cpp serving.

``rag``, ``txt2kg`` and ``fine-tune`` reuse the same client; the submodules are

* :mod:`~sparkbooks.llm.client` — :func:`connect`, :func:`chat`, :func:`embed`, :class:`Reply`;
* :mod:`~sparkbooks.llm.tools` — native and schema-routed tool calling;
* :mod:`~sparkbooks.llm.extraction` — schema-constrained JSON, validated and scored;
* :mod:`~sparkbooks.llm.loadtest` — repeated single streams, concurrency and prompt-length sweeps (TTFT, TPOT, ITL), consistency checks;
* :mod:`~sparkbooks.llm.cache_audit` — timed prompts no cache can answer, each TTFT audited against the server's cache figures;
* :mod:`~sparkbooks.llm.engine_check` — the server's decode against ``llama-batched-bench``'s at the same levels;
* :mod:`~sparkbooks.llm.server_metrics` — the server's own ``/metrics`` counters (cached prompt tokens);
* :mod:`~sparkbooks.llm.llamacpp` — build/find ``llama-server`` and run it as a service (:func:`stand_in`);
* :mod:`~sparkbooks.llm.chat_widget` — an ipywidgets chat box (imported on first use).
"""

from __future__ import annotations

from . import engine_check, server_metrics
from .client import Endpoint, Reply, chat, connect, embed
from .extraction import Extraction, extract_json, field_accuracy, parse_answer, run_extractions, score_answers
from .llamacpp import LlamaServer, stand_in
from .loadtest import (
    CacheAudit,
    SingleStream,
    Spread,
    audit_replies,
    consistency,
    plot_sweep,
    prompt_length_sweep,
    server_slots,
    single_stream,
    speculation,
    sweep,
    template_prefix,
)
from .tools import Tool, ToolRun, tool_call_via_schema, tool_round_trip

__all__ = [
    "CacheAudit",
    "Endpoint",
    "Extraction",
    "LlamaServer",
    "Reply",
    "SingleStream",
    "Spread",
    "Tool",
    "ToolRun",
    "audit_replies",
    "chat",
    "connect",
    "consistency",
    "embed",
    "extract_json",
    "field_accuracy",
    "parse_answer",
    "plot_sweep",
    "prompt_length_sweep",
    "run_extractions",
    "score_answers",
    "server_slots",
    "single_stream",
    "speculation",
    "stand_in",
    "sweep",
    "template_prefix",
    "tool_call_via_schema",
    "tool_round_trip",
]


def __getattr__(name: str):
    if name == "chat_widget":  # ipywidgets only when the widget is wanted
        import importlib  # noqa: PLC0415

        return importlib.import_module(f"{__name__}.chat_widget")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
