"""A small ipywidgets chat box for JupyterLab, streaming replies from an OpenAI-compatible server."""

from __future__ import annotations

import html
from typing import Any

from ..exceptions import ServerError
from .client import Endpoint, chat

__all__ = ["ChatBox"]


class ChatBox:
    """Chat with ``endpoint`` in a notebook; ``history`` keeps the conversation.

    ``ChatBox(endpoint).widget`` is the thing to display; :meth:`send` works without a
    browser too (tests and static guides use it to produce a transcript).
    """

    def __init__(self, endpoint: Endpoint, *, system_prompt: str = "", max_tokens: int = 256,
                 reasoning: bool | None = None) -> None:
        import ipywidgets as w  # noqa: PLC0415

        self.endpoint, self.max_tokens, self.reasoning = endpoint, max_tokens, reasoning
        self.history: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.log = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="6px", min_height="120px"))
        self.box = w.Text(placeholder=f"Ask {endpoint.model}…", layout=w.Layout(width="80%"))
        self.button = w.Button(description="Send", button_style="success")
        self.status = w.Label()
        self.button.on_click(lambda _: self.send(self.box.value))
        self.widget = w.VBox([self.log, w.HBox([self.box, self.button]), self.status])

    def send(self, text: str) -> str:
        """Send one user message, stream the answer into the log, return the answer."""
        text = text.strip()
        if not text:
            return ""
        self.box.value = ""
        self.history.append({"role": "user", "content": text})
        pieces: list[str] = []

        def show(piece: str) -> None:
            pieces.append(piece)
            self._render(pending="".join(pieces))

        try:
            reply = chat(self.endpoint, self.history, max_tokens=self.max_tokens, reasoning=self.reasoning, on_text=show)
        except ServerError as exc:
            self.history.pop()
            self.status.value = f"{type(exc).__name__}: {exc}"
            self._render()
            return ""
        self.history.append({"role": "assistant", "content": reply.text})
        speed = f"{reply.decode_tok_s:.0f} tok/s" if reply.decode_tok_s else "—"
        self.status.value = f"{reply.completion_tokens} tokens · first token {reply.ttft_s or 0:.2f} s · {speed}"
        self._render()
        return reply.text

    def transcript(self) -> str:
        """The conversation as plain text (system prompt left out)."""
        return "\n".join(f"{m['role']:>9}: {m['content']}" for m in self.history if m["role"] != "system")

    def _render(self, pending: str = "") -> None:
        rows = [f"<p><b>{html.escape(m['role'])}</b>: {html.escape(m['content'])}</p>"
                for m in self.history if m["role"] != "system"]
        if pending:
            rows.append(f"<p><b>assistant</b>: {html.escape(pending)}▌</p>")
        self.log.value = "".join(rows)
