"""Invoice images with an exact answer key: the test set for document → JSON extraction.

Each document varies what real scans vary — font (the DejaVu family), five layouts (classic,
a ruled table, two columns, a title line above the vendor, two pages), field labels, date and
amount formats, line items, noise, a slight rotation and JPEG artefacts — while its ground
truth is known exactly, so any backend (OCR + LLM, or a VLM) can be scored on it.

Every page carries values that compete with the answer: a bill-to company beside the vendor,
a PO number beside the invoice number, a due date (sometimes printed first) beside the
invoice date, subtotal, shipping and tax beside the total (and sometimes a fee or limit
printed after it). About one invoice in seven prints no invoice number at all: its answer is
``None``, so an extractor must be able to say "not on the page".
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from ..exceptions import MissingDependencyError

__all__ = ["Document", "LAYOUTS", "font_paths", "make_invoices"]

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
_PO_LABELS = ["PO Number:", "PO #", "Purchase order:", "Order No.", "Customer ref:"]
_DUE_LABELS = ["Due date:", "Payment due:", "Due:", "Pay by:"]
_SUBTOTAL_LABELS = ["Subtotal", "Net amount", "Sub-total"]
_FOOTERS = ["Late fee after the due date: {}", "Free shipping on orders over {}", "Credit limit: {}"]
_TITLES = ["INVOICE", "TAX INVOICE", "Invoice"]
_STREETS = ["Main St", "Harbour Rd", "Via Roma", "High St", "Quay Lane", "Station Rd"]
_CITIES = ["Springfield 62704", "Leeds LS1 4AP", "Rotterdam 3011", "Lyon 69002", "Dublin D02 X285"]
LAYOUTS = ("classic", "table", "two-column", "titled", "two-page")
_DATE_FORMATS = ["%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%d.%m.%Y"]  # unambiguous day/month orders only


@dataclass
class Document:
    """One generated invoice: its pages as JPEG bytes, its answer key and how it was made."""

    pages: list[bytes]
    truth: dict
    layout: str
    font: str

    @property
    def image(self) -> bytes:
        """The first page."""
        return self.pages[0]

    def pil(self, page: int = 0):
        from PIL import Image  # noqa: PLC0415

        return Image.open(io.BytesIO(self.pages[page]))


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


class _Page:
    """A white page that text is written onto line by line; it grows as needed."""

    def __init__(self, font, big, size: int, width: int = 900) -> None:
        from PIL import Image, ImageDraw  # noqa: PLC0415

        self.font, self.big, self.size, self.width = font, big, size, width
        self.image = Image.new("L", (width, 2400), 255)
        self.draw = ImageDraw.Draw(self.image)
        self.x0, self.right, self.y = 40, width - 40, 30

    def text(self, text: str, *, x: int | None = None, align: str = "left", big: bool = False, fill: int = 0,
             advance: bool = True) -> None:
        font = self.big if big else self.font
        if align == "right":
            x = self.right - int(self.draw.textlength(text, font=font))
        self.draw.text((self.x0 if x is None else x, self.y), text, font=font, fill=fill)
        if advance:
            self.y += (self.size + 10) + (10 if big else 0) + 2

    def rule(self, gap: int = 8) -> None:
        self.draw.line((self.x0, self.y - gap, self.right, self.y - gap), fill=120, width=1)

    def finish(self):
        return self.image.crop((0, 0, self.width, self.y + 40))


def _scan(page, rng: random.Random, index: int) -> bytes:
    """Scan artefacts: slight rotation, blur, sensor noise, JPEG compression."""
    from PIL import Image, ImageFilter  # noqa: PLC0415

    page = page.rotate(rng.uniform(-2.0, 2.0), resample=Image.BICUBIC, expand=True, fillcolor=255)
    if rng.random() < 0.5:
        page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    noisy = np.asarray(page, dtype=np.float32) + np.random.default_rng(index).normal(0, rng.uniform(2, 9), page.size[::-1])
    page = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB")
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=rng.randint(55, 90))
    return buffer.getvalue()


def _one(rng: random.Random, fonts: list[Path], index: int) -> Document:
    from PIL import ImageFont  # noqa: PLC0415

    vendor, customer = rng.sample(_VENDORS, 2)
    number = f"{rng.choice(['INV', 'IN', 'F', 'BILL'])}-{rng.randint(1000, 99999)}" if rng.random() > 0.15 else None
    po = f"{rng.choice(['PO', '45', 'SO-', 'C-'])}{rng.randint(10000, 9999999)}"
    day = date(2023, 1, 1) + timedelta(days=rng.randint(0, 729))
    due = day + timedelta(days=rng.choice([14, 30, 45, 60]))
    currency = rng.choice(list(_SYMBOL))
    items = [(rng.choice(_ITEMS), rng.randint(1, 9), round(rng.uniform(5, 900), 2)) for _ in range(rng.randint(2, 6))]
    subtotal = round(sum(q * p for _, q, p in items), 2)
    shipping = round(rng.uniform(8, 60), 2) if rng.random() < 0.4 else 0.0
    tax = round((subtotal + shipping) * rng.choice([0.0, 0.07, 0.2]), 2)
    total = round(subtotal + shipping + tax, 2)
    style = rng.choice([0, 0, 1, 2]) if currency == "EUR" else rng.choice([0, 0, 2])
    money = lambda value: _amount(value, currency, style)  # noqa: E731
    date_format = rng.choice(_DATE_FORMATS)
    layout = rng.choice(LAYOUTS)
    font_file = rng.choice(fonts)
    size = rng.randint(17, 22)
    font, big = ImageFont.truetype(str(font_file), size), ImageFont.truetype(str(font_file), size + 10)

    meta = [f"{rng.choice(_DATE_LABELS)} {day.strftime(date_format)}", f"{rng.choice(_DUE_LABELS)} {due.strftime(date_format)}",
            f"{rng.choice(_PO_LABELS)} {po}"]
    rng.shuffle(meta)  # the due date or the PO number may come first
    if number:
        meta.insert(rng.randrange(len(meta) + 1), f"{rng.choice(_NUMBER_LABELS)} {number}")
    bill_to = ["Bill to:", customer, f"{rng.randint(1, 999)} {rng.choice(_STREETS)}"]

    pages = [_Page(font, big, size)]
    page = pages[0]
    if layout == "titled":
        page.text(rng.choice(_TITLES), big=True)
    page.text(vendor, big=True)
    top = page.y
    page.text(f"{rng.randint(1, 999)} {rng.choice(_STREETS)}", fill=60)
    page.text(rng.choice(_CITIES), fill=60)
    if layout == "two-column":  # meta in a box on the right, level with the vendor's address; bill-to below
        page.y = top
        box = page.width // 2 + 40
        for line in meta:
            page.text(line, x=box + 12)
        page.draw.rectangle((box, top - 8, page.right, page.y), outline=90)
        page.y += 16
        for line in bill_to:
            page.text(line)
    else:
        page.y += 12
        meta_align = rng.choice(["left", "right"])
        for line in meta:
            page.text(line, align=meta_align)
        page.y += 12
        for line in bill_to:
            page.text(line)
    page.y += 20
    page.rule()
    split = rng.randint(1, len(items) - 1) if layout == "two-page" else len(items)
    for k, (name, qty, price) in enumerate(items):
        if k == split:  # continue on a second page
            page.text("Continued on page 2", fill=90)
            page.text("Page 1 of 2", align="right", fill=90)
            page = _Page(font, big, size)
            pages.append(page)
            page.text(f"{vendor} · {'Invoice ' + number if number else 'Invoice'} (continued)", fill=60)
            page.y += 20
            page.rule()
        if layout == "table":
            if k == 0:
                for header, x in (("Description", page.x0), ("Qty", 430), ("Unit price", 520)):
                    page.text(header, x=x, advance=False)
                page.text("Amount", align="right")
                page.rule(4)
            page.text(name, advance=False)
            page.text(str(qty), x=440, advance=False)
            page.text(money(price), x=520, advance=False)
            page.text(money(qty * price), align="right")
            page.rule(4)
        else:
            page.text(f"{qty} x {name}", advance=False)
            page.text(money(qty * price), align="right")
    page.y += 8
    page.rule()
    lines = [(rng.choice(_SUBTOTAL_LABELS), subtotal)] + ([("Shipping", shipping)] if shipping else []) + \
            [("Tax", tax), (rng.choice(_TOTAL_LABELS), total)]
    for label, value in lines:
        page.text(f"{label} {money(value)}", align="right")
    if rng.random() < 0.4:  # an amount after the total: "the last amount" is no longer the answer
        page.y += 16
        page.text(rng.choice(_FOOTERS).format(money(rng.choice([25, 50, 500, 1000, 10000]))), fill=60)
    if len(pages) > 1:
        page.text("Page 2 of 2", align="right", fill=90)
    truth = {"vendor": vendor, "invoice_number": number, "date": day.isoformat(), "total": total, "currency": currency}
    images = [_scan(p.finish(), rng, index * 7 + k) for k, p in enumerate(pages)]
    return Document(pages=images, truth=truth, layout=layout, font=font_file.name)


def make_invoices(n: int, *, seed: int = 0) -> list[Document]:
    """``n`` invoice images with their answer keys, identical for the same ``seed``."""
    fonts = font_paths()
    rng = random.Random(seed)
    return [_one(rng, fonts, seed * 100_003 + i) for i in range(n)]
