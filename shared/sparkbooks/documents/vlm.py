"""Images to an OpenAI-compatible vision-language model: loading, encoding, requests, token budgets.

Images travel inside the chat request as base64 ``data:`` URLs (the OpenAI ``image_url`` content
part, which vLLM, llama.cpp with a projector, Ollama and NIM all accept). Unreadable files are
refused with the reason; very large images are downscaled first, and the caller is told.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import ImageInputError, MissingDependencyError

__all__ = [
    "LoadedImage", "PHOTOS", "VisualTokens", "ask", "data_url", "image_messages", "load_image", "plot_throughput", "qwen_visual_tokens",
    "request_body", "request_preview", "sample_photos", "throughput", "throughput_problems",
]


@dataclass
class LoadedImage:
    """An RGB image ready to send, with a note when it had to be changed."""

    image: Any
    source: str
    note: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def load_image(source: str | Path | bytes, *, max_side: int = 2048) -> LoadedImage:
    """Open an image file (or bytes), convert it to RGB and downscale it so no side exceeds ``max_side``.

    Raises
    ------
    ImageInputError
        The file is missing, empty or not an image PIL can decode; the message says which.
    """
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageInputError(f"{name}: no such file.")
        source = path.read_bytes()
    if not source:
        raise ImageInputError(f"{name}: the file is empty.")
    try:
        image = Image.open(io.BytesIO(source))
        original = image.size
        if image.format == "JPEG" and max(image.size) > 2 * max_side:
            image.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale: a 48-MP photo never fills memory
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"{name}: {exc} Downscale it before sending, or raise PIL.Image.MAX_IMAGE_PIXELS "
                              "if you trust the file.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageInputError(f"{name}: not a readable image ({exc}). Use JPEG, PNG, WebP, GIF, BMP or TIFF.") from None
    note = ""
    if max(original) > max_side:
        scale = max_side / max(original)
        new = (max(1, round(original[0] * scale)), max(1, round(original[1] * scale)))
        note = f"downscaled from {original[0]}×{original[1]} to {new[0]}×{new[1]} (max_side={max_side})"
        image = image.resize(new, Image.LANCZOS)
    return LoadedImage(image.convert("RGB"), name, note)


#: Photos that ship inside scikit-image and matplotlib (public domain / free licences), for captions and VQA.
PHOTOS = {"astronaut": "skimage", "coffee": "skimage", "chelsea": "skimage", "rocket": "skimage", "grace_hopper.jpg": "matplotlib"}


def sample_photos() -> dict[str, LoadedImage]:
    """Real photographs available offline: scikit-image's astronaut, coffee, chelsea (a cat) and rocket, and Grace Hopper."""
    try:
        import skimage.data  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("scikit-image is not installed: `pip install -e '.[vision]'`.") from None
    from matplotlib import cbook  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    photos = {}
    for name, package in PHOTOS.items():
        if package == "skimage":
            photos[name] = LoadedImage(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"), f"skimage.data.{name}()")
        else:
            with cbook.get_sample_data(name) as handle:
                photo = load_image(handle.read())
            photo.source = f"matplotlib sample data {name}"
            photos[name.split(".")[0]] = photo
    return photos


def data_url(image: LoadedImage, *, quality: int = 90) -> str:
    """The image as a ``data:image/jpeg;base64,…`` URL."""
    buffer = io.BytesIO()
    image.image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_messages(images: Sequence[LoadedImage], question: str, *, system: str | None = None) -> list[dict[str, Any]]:
    """Chat messages asking ``question`` about ``images``: text first, then one ``image_url`` part per image."""
    content: list[dict[str, Any]] = [{"type": "text", "text": question}]
    content += [{"type": "image_url", "image_url": {"url": data_url(img)}} for img in images]
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]


def request_body(images: Sequence[LoadedImage], question: str, *, schema: Mapping[str, Any] | None = None,
                 max_tokens: int = 256) -> dict[str, Any]:
    """The chat-completion request :func:`ask` sends (less ``model`` and ``seed``)."""
    body: dict[str, Any] = {"messages": image_messages(images, question), "max_tokens": max_tokens, "temperature": 0.0}
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": dict(schema), "strict": True}}
    return body


def request_preview(body: Mapping[str, Any], *, keep: int = 48) -> str:
    """``body`` as indented JSON with each base64 image cut to ``keep`` characters and its full length noted."""
    import json  # noqa: PLC0415

    def cut(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:") and len(value) > keep:
            return f"{value[:keep]}… ({len(value):,} characters)"
        if isinstance(value, Mapping):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    return json.dumps(cut(dict(body)), indent=1, ensure_ascii=False)


def ask(endpoint, images: Sequence[LoadedImage], question: str, *, schema: Mapping[str, Any] | None = None,
        max_tokens: int = 256, seed: int = 0, timeout: float = 120.0):
    """One question about ``images``; with ``schema`` the answer is constrained to that JSON schema.

    Raises
    ------
    VisionUnsupportedError
        The server answered that its model takes no images (e.g. llama-server without ``--mmproj``).
    RequestTimeoutError
        No answer within ``timeout`` seconds.
    """
    from ..llm import chat  # noqa: PLC0415

    body = request_body(images, question, schema=schema, max_tokens=max_tokens)
    extra = {"response_format": body["response_format"]} if schema is not None else {}
    return chat(endpoint, body["messages"], max_tokens=max_tokens, seed=seed, stream=False, timeout=timeout, **extra)


def throughput(endpoint, images: Sequence[LoadedImage], *, levels: Sequence[int], sides: Sequence[int],
               question: str = "Describe this image in one sentence.", max_tokens: int = 48, requests_per_level: int = 8,
               warmup: bool = True, timeout: float = 300.0, seed: int = 0):
    """Images/s, tokens/s and streamed TTFT with ``levels`` requests in flight, each image's long side ``sides[i]``.

    Measured as the text sweep is (:func:`sparkbooks.llm.sweep`): at every (size, level) point at least
    ``requests_per_level`` and four requests per stream, after one discarded warm-up request per stream;
    **every request a different image** (a distinct crop of one of ``images``, so neither vLLM's
    multimodal/prefix cache nor llama.cpp's slot cache can answer it) opened by its own tag; outputs of
    exactly ``max_tokens`` (``ignore_eos``); streamed, so TTFT is timed, and audited against the server's
    own cache figures like the text sweep (``ttft_refused``). Each row also holds the prompt tokens the
    server reported (``usage``) beside the visual tokens :func:`qwen_visual_tokens` predicts.
    """
    import random  # noqa: PLC0415
    import statistics  # noqa: PLC0415
    import time  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from ..llm import chat  # noqa: PLC0415
    from ..llm.cache_audit import (FIXED_LENGTH, NO_PROMPT_CACHE, _Reporting, _tag, audit_replies,  # noqa: PLC0415
                                   template_prefix, unique_messages)

    if not images:
        raise ImageInputError("throughput needs at least one image.")
    rng = random.Random(seed)
    allowed, how = template_prefix(endpoint, [{"role": "user", "content": question}])
    counter, reporting = iter(range(10**9)), _Reporting(endpoint)  # vLLM omits a cached count of 0: probe once if so

    def send(image: LoadedImage):
        messages = unique_messages(image_messages([image], question), _tag(next(counter), rng))
        return chat(endpoint, messages, max_tokens=max_tokens, seed=seed, timeout=timeout,
                    extra_body={**FIXED_LENGTH, **NO_PROMPT_CACHE})  # full prefill, as the text sweep

    rows = []
    for side in sides:
        for level in levels:
            n = max(requests_per_level, 4 * level)
            jobs = [_distinct_crop(images[i % len(images)], side, rng) for i in range(n + (level if warmup else 0))]
            if warmup:
                with ThreadPoolExecutor(level) as pool:
                    list(pool.map(send, jobs[:level]))
                jobs = jobs[level:]
            start = time.perf_counter()
            with ThreadPoolExecutor(level) as pool:
                replies = list(pool.map(send, jobs))
            wall = time.perf_counter() - start
            kept, audit = audit_replies(replies, allowed=allowed, how=how, reporting=reporting(replies))
            ttft = [r.ttft_s for r in kept if r.ttft_s is not None]
            rows.append({"side_px": side, "concurrency": level, "requests": len(jobs), "images_per_s": len(jobs) / wall,
                         "completion_tok_s": sum(r.completion_tokens for r in replies) / wall,
                         "prompt_tok_s": sum(r.prompt_tokens for r in replies) / wall,
                         "ttft_p50_s": float(np.percentile(ttft, 50)) if ttft else float("nan"),
                         "ttft_p99_s": float(np.percentile(ttft, 99)) if ttft else float("nan"),
                         "latency_p50_s": statistics.median(r.total_s for r in replies),
                         "prompt_tokens": statistics.median(r.prompt_tokens for r in replies),
                         "predicted_visual_tokens": statistics.median(qwen_visual_tokens(*img.size).tokens for img in jobs),
                         "distinct_images": len({img.image.tobytes() for img in jobs}),
                         "ttft_audited": audit.audited, "ttft_refused": audit.refused, "ttft_unaudited": audit.unaudited,
                         "short_outputs": sum(r.completion_tokens < max_tokens for r in replies)})
    return pd.DataFrame(rows)


def throughput_problems(table, *, max_scaling: float = 1.15) -> list[str]:
    """What makes a :func:`throughput` table untrustworthy, as :func:`sparkbooks.llm.consistency` checks the text sweep.

    At every point: TTFT samples without the server's cache evidence, a point left with no audited TTFT,
    outputs shorter than asked (``ignore_eos`` ignored); and at each image size, streams that each
    generate faster at a higher concurrency than at the lowest by more than ``max_scaling``×.
    """
    from ..llm.cache_audit import REPORTING_FLAGS  # noqa: PLC0415

    problems = []
    for row in table.itertuples(index=False):
        where = f"at {row.side_px} px, {row.concurrency} in flight"
        if row.ttft_unaudited:
            problems.append(f"{where}: {row.ttft_unaudited} TTFT samples carry no cache evidence from the server "
                            f"(not audited: start vLLM with {REPORTING_FLAGS})")
        if row.ttft_audited + row.ttft_unaudited == 0:
            problems.append(f"{where}: every TTFT sample was a cache hit: no TTFT published")
        if row.short_outputs:
            problems.append(f"{where}: {row.short_outputs} outputs shorter than asked (the server ignores `ignore_eos`)")
    for side, rows in table.groupby("side_px"):
        per_stream = rows.set_index("concurrency")["completion_tok_s"] / rows.set_index("concurrency").index
        base = per_stream.loc[per_stream.index.min()]
        for level, rate in per_stream.items():
            if base > 0 and rate > max_scaling * base:
                problems.append(f"at {side} px each of {level} streams generated {rate:.1f} tok/s, faster than {base:.1f} "
                                f"at {per_stream.index.min()} (limit {max_scaling}×): the lower level was disturbed")
    return problems


def _distinct_crop(image: LoadedImage, side: int, rng) -> LoadedImage:
    """A random crop (88–100 % of each side) of ``image``, resized so its long side is ``side``: pixels no other request sends."""
    w, h = image.size
    cw, ch = max(1, round(w * rng.uniform(0.88, 1.0))), max(1, round(h * rng.uniform(0.88, 1.0)))
    x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
    cropped = LoadedImage(image.image.crop((x, y, x + cw, y + ch)), image.source, f"crop {cw}×{ch} at ({x}, {y})")
    return _resized(cropped, side)


def _resized(image: LoadedImage, side: int) -> LoadedImage:
    from PIL import Image  # noqa: PLC0415

    scale = side / max(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return LoadedImage(image.image.resize(size, Image.LANCZOS), image.source, f"resized to {size[0]}×{size[1]}")


def plot_throughput(table):
    """Images/s and generated tokens/s against requests in flight, one line per image size."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for side, rows in table.groupby("side_px"):
        left.plot(rows["concurrency"], rows["images_per_s"], marker="o", label=f"{side} px")
        right.plot(rows["concurrency"], rows["completion_tok_s"], marker="o", label=f"{side} px")
    for ax, label in ((left, "images / s"), (right, "generated tokens / s")):
        ax.set(xlabel="requests in flight", ylabel=label, xscale="log", xticks=sorted(table["concurrency"].unique()))
        ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        ax.grid(alpha=0.3)
    left.legend(title="long side")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class VisualTokens:
    """Tokens one image costs a VLM, and the size the processor resizes it to first."""

    tokens: int
    width: int
    height: int


def qwen_visual_tokens(width: int, height: int, *, patch: int = 14, merge: int = 2,
                       min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 16384) -> VisualTokens:
    """Visual tokens one image costs in Qwen2-VL / Qwen2.5-VL, and the size it is resized to.

    The image processor rounds each side to a multiple of ``patch × merge`` (28 px) keeping the
    aspect ratio, scales into ``[min_pixels, max_pixels]``, cuts 14-px patches and merges 2×2
    patches into one token: tokens = (H/28)·(W/28). Defaults are the limits in Qwen2.5-VL-7B-Instruct's
    ``preprocessor_config.json``; servers started with other limits (vLLM ``--mm-processor-kwargs
    '{"max_pixels": …}'``) need the same ``max_pixels`` here.
    """
    factor = patch * merge
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return VisualTokens((h // factor) * (w // factor), w, h)
