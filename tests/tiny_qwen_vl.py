"""Test fixture: a tiny, randomly initialised Qwen2.5-VL behind a real OpenAI-compatible HTTP server.

No trained vision-language model installs offline, so the VLM request path (image encoding,
message shape, JSON-schema requests, usage, timeouts) is tested against this instead. The model is
built from a config (1 text layer, 1 vision block, random weights) and runs Qwen2.5-VL's real image
processor and vision tower, so ``usage.prompt_tokens`` counts real image tokens. Its answers are
noise by construction: it must never stand in for a result.

transformers' ``Qwen2_5_VLProcessor`` cannot be built without torchvision (which does not import
beside the CPU torch here), so the image tokens are expanded by hand exactly as that processor
does: one ``<|image_pad|>`` per merged 2×2 patch between ``<|vision_start|>`` and ``<|vision_end|>``.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "tiny-random-qwen2.5-vl"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
WORDS = ["user", "assistant", "system", "what", "is", "in", "this", "image", "the", "a", "invoice", "total", "\n"]


def build() -> tuple[tuple[Any, Any], Any]:
    """``((image_processor, tokenizer), model)``, deterministic (seed 0), in about a second."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    vocab = {t: i for i, t in enumerate([*SPECIAL, "<unk>", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=SPECIAL)
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 8192,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                     "bos_token_id": vocab["<|endoftext|>"], "eos_token_id": vocab["<|im_end|>"], "pad_token_id": vocab["<|endoftext|>"]},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "fullatt_block_indexes": [0],
                       "window_size": 112},
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    return (Qwen2VLImageProcessorPil(), fast), Qwen2_5_VLForConditionalGeneration(config).eval()


def encode(processor: tuple[Any, Any], images: list[Any], question: str) -> dict[str, Any]:
    """Model inputs for one user turn: the chat-template tokens, the image tokens, the question."""
    import torch

    image_processor, tokenizer = processor
    pieces, extra = ["<|im_start|>", "user", "\n"], {}
    if images:
        vision = image_processor(images=images, return_tensors="pt")
        extra = {"pixel_values": vision["pixel_values"], "image_grid_thw": vision["image_grid_thw"]}
        for grid in vision["image_grid_thw"]:
            pieces += ["<|vision_start|>", *["<|image_pad|>"] * int(grid.prod() // 4), "<|vision_end|>"]
    ids = tokenizer.convert_tokens_to_ids(pieces) + tokenizer(question, add_special_tokens=False)["input_ids"]
    ids += tokenizer.convert_tokens_to_ids(["<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"])
    input_ids = torch.tensor([ids])
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), **extra}


class _Handler(BaseHTTPRequestHandler):
    """``GET /v1/models`` and ``POST /v1/chat/completions`` (streamed or not) over the tiny model."""

    state: dict[str, Any] = {}

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, pieces: list[str], usage: dict[str, Any], model: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "tiny", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": p}, "finish_reason": None}]}
                  for p in pieces]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        chunks.append({**base, "choices": [], "usage": usage})
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
        return self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        import torch
        from PIL import Image

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.setdefault("requests", []).append(body)
        time.sleep(self.state.get("delay_s", 0.0))
        images, texts = [], []
        for message in body["messages"]:
            content = message["content"]
            for part in content if isinstance(content, list) else [{"type": "text", "text": content}]:
                if part["type"] == "text":
                    texts.append(part["text"])
                elif part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    if not url.startswith("data:image/"):
                        return self._send(400, {"error": {"message": "only data:image/ URLs are accepted"}})
                    images.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
        processor, model = self.state["model"]
        inputs = encode(processor, images, " ".join(texts))
        with self.state["lock"], torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=min(int(body.get("max_tokens") or 8), 8), do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]
        usage = {"prompt_tokens": int(inputs["input_ids"].shape[1]), "completion_tokens": len(new), "total_tokens": int(out.shape[1])}
        if body.get("stream"):  # server-sent events, one token per chunk, usage last (as vLLM streams)
            return self._stream([processor[1].decode(t) for t in new], usage, body.get("model"))
        return self._send(200, {
            "id": "tiny", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": processor[1].decode(new)}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": int(inputs["input_ids"].shape[1]), "completion_tokens": len(new), "total_tokens": int(out.shape[1])}})


def serve() -> tuple[str, dict[str, Any], ThreadingHTTPServer]:
    """Start the server on a free local port in a daemon thread: ``(base_url, state, server)``.

    ``state["requests"]`` collects every request body; set ``state["delay_s"]`` to make it slow.
    """
    handler = type("Handler", (_Handler,), {"state": {"model": build(), "lock": threading.Lock()}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", handler.state, server
