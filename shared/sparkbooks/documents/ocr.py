"""Optical character recognition with PaddleOCR's PP-OCRv4 models via ``rapidocr-onnxruntime``.

The wheel carries the detection, direction and recognition ONNX models (no torch, no
download). Their sha256 is checked before first use, so a damaged install fails loudly
instead of reading worse. Output lines are rebuilt in reading order: box centres are turned
back by the page's skew, then boxes whose centres lie within half a line of each other form
one line, read left to right.

The recognition dictionary (6,623 characters) has ``$`` but neither ``€`` nor ``£``: those
symbols are silently dropped.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import ChecksumMismatchError, ImageInputError, MissingDependencyError

__all__ = ["MODEL_SHA256", "OcrEngine", "OcrResult", "load_ocr"]

#: sha256 of the ONNX models inside rapidocr-onnxruntime 1.4.4.
MODEL_SHA256 = {
    "ch_PP-OCRv4_det_infer.onnx": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    "ch_PP-OCRv4_rec_infer.onnx": "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
}


@dataclass
class OcrResult:
    """The text of one page in reading order, its boxes, and how long it took."""

    text: str
    lines: list[str]
    boxes: list[tuple[list[list[float]], str, float]] = field(repr=False)
    seconds: float


class OcrEngine:
    """A loaded PP-OCRv4 pipeline; call :meth:`read` on image bytes, a path or a PIL image."""

    def __init__(self, engine) -> None:
        self._engine = engine

    def read(self, image) -> OcrResult:
        import numpy as np  # noqa: PLC0415

        if isinstance(image, (str, Path)):
            if not Path(image).is_file():
                raise ImageInputError(f"{image}: no such file.")
            image = Path(image).read_bytes()
        if hasattr(image, "convert"):  # PIL image
            image = np.asarray(image.convert("RGB"))[:, :, ::-1]
        start = time.perf_counter()
        try:
            found, _ = self._engine(image)
        except Exception as exc:  # rapidocr raises its own types for undecodable input
            raise ImageInputError(f"OCR could not read this image ({type(exc).__name__}: {exc}).") from None
        seconds = time.perf_counter() - start
        boxes = [(box, text, float(score)) for box, text, score in (found or [])]
        return OcrResult(text="\n".join(lines := _reading_order(boxes)), lines=lines, boxes=boxes, seconds=seconds)


    def read_pages(self, images) -> OcrResult:
        """Every page of one document read in order: texts joined, lines and boxes concatenated, seconds summed."""
        reads = [self.read(image) for image in images]
        return OcrResult(text="\n".join(r.text for r in reads), lines=[line for r in reads for line in r.lines],
                         boxes=[box for r in reads for box in r.boxes], seconds=sum(r.seconds for r in reads))


def _skew(boxes) -> float:
    """The page's rotation in radians: the median slope of the boxes' top edges (wide boxes only)."""
    import math  # noqa: PLC0415
    import statistics  # noqa: PLC0415

    slopes = [math.atan2(b[1][1] - b[0][1], b[1][0] - b[0][0]) for b, _, _ in boxes if b[1][0] - b[0][0] > 2 * abs(b[3][1] - b[0][1])]
    return statistics.median(slopes) if slopes else 0.0


def _reading_order(boxes) -> list[str]:
    # A 2° tilt moves the right edge of a 900-px page by 30 px, more than a line's height, so centres
    # are turned back by the page's skew before boxes are grouped into lines.
    import math  # noqa: PLC0415

    cos, sin = math.cos(-_skew(boxes)), math.sin(-_skew(boxes))
    items = []
    for box, text, _ in boxes:
        cx, cy = sum(p[0] for p in box) / 4, sum(p[1] for p in box) / 4
        ys = [p[1] for p in box]
        items.append((cx * sin + cy * cos, max(ys) - min(ys), cx * cos - cy * sin, text))
    items.sort()
    lines: list[list[tuple[float, str]]] = []
    last_centre = None
    for centre, height, x, text in items:
        if last_centre is not None and abs(centre - last_centre) < height / 2:
            lines[-1].append((x, text))
        else:
            lines.append([(x, text)])
            last_centre = centre
    return [" ".join(t for _, t in sorted(line)) for line in lines]


def load_ocr() -> OcrEngine:
    """The PP-OCRv4 engine, its model files checksum-verified."""
    try:
        import rapidocr_onnxruntime  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("OCR is not installed: `pip install -e '.[vision]'` (brings rapidocr-onnxruntime).") from None
    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    for name, expected in MODEL_SHA256.items():
        path = models / name
        if not path.is_file():
            raise MissingDependencyError(f"{path} is missing: reinstall with `pip install --force-reinstall rapidocr-onnxruntime==1.4.4`.")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise ChecksumMismatchError(f"rapidocr model {name}", expected, digest)
    return OcrEngine(rapidocr_onnxruntime.RapidOCR())
