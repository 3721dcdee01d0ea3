"""Invoice images with an exact answer key: the test set for document → JSON extraction.

Each document varies what real scans vary — font (the DejaVu family), layout, field labels,
date and amount formats, line items, noise, a slight rotation and JPEG artefacts — while its
ground truth is known exactly, so any backend (OCR + LLM, or a VLM) can be scored on it.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from ..exceptions import MissingDependencyError

__all__ = ["Document", "font_paths", "make_invoices"]

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")
_VENDORS = ["Northwind Traders", "Contoso Supplies", "Fabrikam Robotics", "Tailspin Components", "Adatum Labs",
            "Litware Printing", "Proseware Logistics", "Wingtip Tools", "Alpine Ski House", "Coho Vineyard",
            "Blue Yonder Freight", "Fourth Coffee", "Lucerne Publishing", "Margie's Travel", "Trey Research"]
_ITEMS = ["Consulting hours", "GPU server rental", "Cable set", "Annual licence", "Shipping", "Spare parts",
          "Training session", "Support plan", "Storage array", "Network switch", "Printer toner", "Desk chairs"]
_SYMBOL = {"USD": "$", "EUR": "€", "GBP": "£"}
_NUMBER_LABELS = ["Invoice No.", "Invoice #", "Invoice number:", "No.", "Ref:"]
_DATE_LABELS = ["Date:", "Invoice date:", "Issued:", "Dated"]
_TOTAL_LABELS = ["Total due:", "TOTAL", "Amount due:", "Balance due:", "Total:"]
_DATE_FORMATS = ["%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%d.%m.%Y"]  # unambiguous day/month orders only


@dataclass
class Document:
    """One generated invoice: the JPEG bytes, its answer key and how it was made."""

    image: bytes
    truth: dict
    layout: str
    font: str

    def pil(self):
        from PIL import Image  # noqa: PLC0415

        return Image.open(io.BytesIO(self.image))


def font_paths() -> list[Path]:
    """DejaVu TrueType fonts found on this system (Debian: ``fonts-dejavu-core``)."""
    for folder in _FONT_DIRS:
        found = sorted(p for p in Path(folder).glob("DejaVu*.ttf") if "ExtraLight" not in p.name) if Path(folder).is_dir() else []
        if found:
            return found
    raise MissingDependencyError("No DejaVu fonts found: `sudo apt install fonts-dejavu-core` (Debian/Ubuntu) "
                                 "or `conda install -c conda-forge font-ttf-dejavu-sans-mono`.")


def _amount(value: float, currency: str, style: int) -> str:
    text = f"{value:,.2f}"
    if style == 1:  # European grouping: 1.234,56
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{_SYMBOL[currency]}{text}" if style != 2 else f"{text} {currency}"


def _one(rng: random.Random, fonts: list[Path], index: int) -> Document:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: PLC0415

    vendor = rng.choice(_VENDORS)
    number = f"{rng.choice(['INV', 'IN', 'F', 'BILL'])}-{rng.randint(1000, 99999)}"
    day = date(2023, 1, 1) + timedelta(days=rng.randint(0, 729))
    currency = rng.choice(list(_SYMBOL))
    items = [(rng.choice(_ITEMS), rng.randint(1, 9), round(rng.uniform(5, 900), 2)) for _ in range(rng.randint(2, 5))]
    subtotal = round(sum(q * p for _, q, p in items), 2)
    tax = round(subtotal * rng.choice([0.0, 0.07, 0.2]), 2)
    total = round(subtotal + tax, 2)
    style = rng.choice([0, 0, 1, 2]) if currency == "EUR" else rng.choice([0, 0, 2])
    font_file = rng.choice(fonts)
    size = rng.randint(17, 22)
    font = ImageFont.truetype(str(font_file), size)
    big = ImageFont.truetype(str(font_file), size + 10)
    width, height = 900, 420 + 34 * len(items)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    layout = rng.choice(["header-left", "header-right"])
    x0, right = 40, width - 40
    draw.text((x0, 30), vendor, font=big, fill=0)
    draw.text((x0, 30 + size + 16), f"{rng.randint(1, 999)} {rng.choice(['Main St', 'Harbour Rd', 'Via Roma', 'High St'])}",
              font=font, fill=60)
    meta = [f"{rng.choice(_NUMBER_LABELS)} {number}", f"{rng.choice(_DATE_LABELS)} {day.strftime(rng.choice(_DATE_FORMATS))}"]
    for k, line in enumerate(meta):
        xm = right - int(draw.textlength(line, font=font)) if layout == "header-right" else x0
        draw.text((xm, 130 + k * (size + 12)), line, font=font, fill=0)
    y = 210
    draw.line((x0, y - 8, right, y - 8), fill=120, width=1)
    for name, qty, price in items:
        draw.text((x0, y), f"{qty} x {name}", font=font, fill=0)
        cost = _amount(qty * price, currency, style)
        draw.text((right - int(draw.textlength(cost, font=font)), y), cost, font=font, fill=0)
        y += 34
    draw.line((x0, y + 4, right, y + 4), fill=120, width=1)
    for label, value in (("Tax", tax), (rng.choice(_TOTAL_LABELS), total)):
        line = f"{label} {_amount(value, currency, style)}"
        draw.text((right - int(draw.textlength(line, font=font)), y + 16), line, font=font, fill=0)
        y += 36
    # scan artefacts: slight rotation, blur, sensor noise, JPEG compression
    page = page.rotate(rng.uniform(-2.0, 2.0), resample=Image.BICUBIC, expand=True, fillcolor=255)
    if rng.random() < 0.5:
        page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    noisy = np.asarray(page, dtype=np.float32) + np.random.default_rng(index).normal(0, rng.uniform(2, 9), page.size[::-1])
    page = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB")
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=rng.randint(55, 90))
    truth = {"vendor": vendor, "invoice_number": number, "date": day.isoformat(), "total": total, "currency": currency}
    return Document(image=buffer.getvalue(), truth=truth, layout=layout, font=font_file.name)


def make_invoices(n: int, *, seed: int = 0) -> list[Document]:
    """``n`` invoice images with their answer keys, identical for the same ``seed``."""
    fonts = font_paths()
    rng = random.Random(seed)
    return [_one(rng, fonts, seed * 100_003 + i) for i in range(n)]
