"""A real HTTP server speaking the OpenAI chat API whose answers follow a script: for testing client logic exactly.

The stand-in model decides for itself whether to call a tool or how to spell a field; a test of
the *client's* loop needs the server to do a known thing. Each scripted turn is a dict with any of
``content``, ``reasoning``, ``reasoning_content`` and ``tool_calls`` (``[{"name": ..., "arguments": {...}}]``);
requests are answered in order, streamed (SSE) or not as the request asks, and kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


def _message(turn: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.get("content")}
    for key in ("reasoning", "reasoning_content"):
        if key in turn:
            message[key] = turn[key]
    if turn.get("tool_calls"):
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                 for i, c in enumerate(turn["tool_calls"])]
    return message


@contextmanager
def scripted(turns: list[dict[str, Any]], *, model: str = "scripted") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve ``turns`` at ``http://127.0.0.1:PORT/v1``; yields ``(base_url, requests)``."""
    requests: list[dict[str, Any]] = []
    script = list(turns)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._json({"object": "list", "data": [{"id": model, "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            turn = script.pop(0) if script else {"content": "(script exhausted)"}
            message = _message(turn)
            finish = "tool_calls" if turn.get("tool_calls") else "stop"
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            if not body.get("stream"):
                self._json({"id": "x", "object": "chat.completion", "created": 0, "model": model, "usage": usage,
                            "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            deltas = []
            for key in ("reasoning", "reasoning_content"):
                if key in turn:
                    deltas.append({"role": "assistant", key: turn[key]})
            if turn.get("content"):
                deltas.append({"content": turn["content"]})
            for i, delta in enumerate(deltas):
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish if i == len(deltas) - 1 else None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            tail = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(tail)}\n\ndata: [DONE]\n\n".encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", requests
    finally:
        server.shutdown()
        server.server_close()
