"""Make the financial-statement sample scans (deterministic: same bytes on every run).

    python data/make_financial_samples.py      # writes data/financial/*

Each page is a bank statement: an account number, a period, an opening balance, a table of
10-15 transactions (date, reference, description, counterparty account, amount, balance) and
totals, printed in a 10-14 px DejaVu font, then "scanned": rotated by 1-2 degrees, speckled with
noise and saved through JPEG at quality 60. Every amount, date and account number printed on a
page is listed, exactly as printed, in the document's ``*.truth.json``; the OCR benchmark
(``bench/ocr_accuracy.py``) uses :func:`statement_page` the same way with other seeds.

Written to ``data/financial/``:

- ``statement-1.png``, ``statement-2.png``: single pages (10 and 13 px print; 16 grey levels, to keep them small)
- ``statements.pdf``: three pages (JPEG images inside the PDF, as scanners write them)
- ``statements.tiff``: three bilevel pages, CCITT group 4 (the fax-like scans TIFF usually holds)
- ``manifest.parquet``: one row per document (``id``, ``image``, ``pages``, ``detail``)
"""

from __future__ import annotations

import io
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
OUT = HERE / "financial"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf")
BANKS = ("NORTHWIND TRUST BANK", "CONTOSO SAVINGS & LOAN", "FABRIKAM COMMERCIAL BANK", "WOODGROVE BANK PLC")
DESCRIPTIONS = (
    "Wire transfer out",
    "Wire transfer in",
    "Card settlement",
    "Payroll batch",
    "Interest credit",
    "Loan repayment",
    "Supplier invoice",
    "FX conversion",
    "Tax payment",
    "Dividend received",
    "Standing order",
    "Cheque deposit",
    "Service charge",
    "Inter-account sweep",
)


# Pillow stamps PDFs with the current time; a fixed stamp keeps the output byte-identical.
FIXED_DATES = {"creationDate": time.gmtime(1775001600), "modDate": time.gmtime(1775001600)}  # 2026-04-01


@dataclass
class Truth:
    """What a page prints that OCR must recover exactly, as printed."""

    amounts: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    def tokens(self) -> list[str]:
        return [*self.amounts, *self.dates, *self.accounts]

    def as_dict(self) -> dict[str, list[str]]:
        return {"amounts": self.amounts, "dates": self.dates, "accounts": self.accounts}


@dataclass
class Page:
    image: Image.Image
    truth: Truth
    px: int
    rotation: float
    font: str


def money(cents: int) -> str:
    """-982499553 -> '-9,824,995.53'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{frac:02d}"


def random_amount(rng: random.Random, negative_share: float = 0.4) -> int:
    """Cents, log-uniform from 1.00 to 9,999,999.99, negative with the given probability."""
    cents = int(10 ** rng.uniform(2, 9)) + rng.randint(0, 99)
    return -cents if rng.random() < negative_share else cents


def random_account(rng: random.Random) -> str:
    return f"{rng.randint(0, 9999):04d}-{rng.randint(0, 999999):06d}-{rng.randint(0, 99):02d}"


def random_date(rng: random.Random, year: int = 2026) -> str:
    month = rng.randint(1, 12)
    return f"{year}-{month:02d}-{rng.randint(1, 28):02d}"


def render_statement(
    rng: random.Random, px: int, font_name: str, page_no: int = 1, pages: int = 1
) -> tuple[Image.Image, Truth]:
    """A clean statement page (greyscale, white paper) and what it prints."""
    font = ImageFont.truetype(str(FONT_DIR / font_name), px)
    bold = ImageFont.truetype(str(FONT_DIR / font_name.replace(".ttf", "-Bold.ttf")), px + 2)
    char_w = font.getlength("0")
    width = round(char_w * 98)
    height = round(width * 1.3)
    img = Image.new("L", (width, height), 255)
    d = ImageDraw.Draw(img)
    truth = Truth()
    margin = round(char_w * 3)
    line = round(px * 1.75)
    y = margin

    account = random_account(rng)
    month = rng.randint(1, 12)
    end_day = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    start, end = f"2026-{month:02d}-01", f"2026-{month:02d}-{end_day:02d}"
    d.text((margin, y), rng.choice(BANKS) + "  -  STATEMENT OF ACCOUNT", font=bold, fill=0)
    y += round(line * 1.6)
    d.text((margin, y), f"Account number: {account}", font=font, fill=0)
    d.text((width - margin - font.getlength(f"Page {page_no} of {pages}"), y), f"Page {page_no} of {pages}", font=font)
    y += line
    d.text((margin, y), f"Statement period: {start} to {end}", font=font, fill=0)
    y += line
    truth.accounts.append(account)
    truth.dates += [start, end]

    balance = rng.randint(-5_000_000_00, 9_000_000_00)
    d.text((margin, y), f"Opening balance: {money(balance)}", font=font, fill=0)
    truth.amounts.append(money(balance))
    y += round(line * 1.5)

    # Column anchors, in characters from the left margin: left-aligned text, right-aligned numbers.
    cols = {"date": 0, "ref": 12, "desc": 23, "acct": 45, "amount_r": 76, "balance_r": 92}

    def at(col: str) -> float:
        return margin + cols[col] * char_w

    for label, col in (("Date", "date"), ("Reference", "ref"), ("Description", "desc"), ("Counterparty", "acct")):
        d.text((at(col), y), label, font=font, fill=0)
    for label, col in (("Amount", "amount_r"), ("Balance", "balance_r")):
        d.text((at(col) - font.getlength(label), y), label, font=font, fill=0)
    y += line
    d.line((margin, y - line // 4, width - margin, y - line // 4), fill=0, width=1)

    debits = credits = 0
    for _ in range(rng.randint(10, 15)):
        date = f"2026-{month:02d}-{rng.randint(1, end_day):02d}"
        amount = random_amount(rng)
        balance += amount
        if amount < 0:
            debits += amount
        else:
            credits += amount
        d.text((at("date"), y), date, font=font, fill=0)
        d.text((at("ref"), y), f"TX{rng.randint(100000, 999999)}", font=font, fill=0)
        d.text((at("desc"), y), rng.choice(DESCRIPTIONS), font=font, fill=0)
        truth.dates.append(date)
        if rng.random() < 0.7:
            acct = random_account(rng)
            d.text((at("acct"), y), acct, font=font, fill=0)
            truth.accounts.append(acct)
        for value, col in ((money(amount), "amount_r"), (money(balance), "balance_r")):
            d.text((at(col) - font.getlength(value), y), value, font=font, fill=0)
            truth.amounts.append(value)
        y += line

    d.line((margin, y - line // 4, width - margin, y - line // 4), fill=0, width=1)
    y += line // 2
    for label, value in (("Total debits", debits), ("Total credits", credits), ("Closing balance", balance)):
        d.text((at("desc"), y), label, font=bold if label == "Closing balance" else font, fill=0)
        text = money(value)
        d.text((at("balance_r") - font.getlength(text), y), text, font=font, fill=0)
        truth.amounts.append(text)
        y += line
    y += line
    d.text((margin, y), f"Statement issued on {end} for account {account}. Figures in USD.", font=font, fill=0)
    truth.dates.append(end)
    truth.accounts.append(account)
    return img.crop((0, 0, width, min(height, y + 2 * margin))), truth


def scan(
    img: Image.Image, rng: random.Random, rotation: float, jpeg_quality: int = 60, noise: float = 10.0
) -> Image.Image:
    """Make a clean page look scanned: grey paper, rotation, noise and JPEG artefacts."""
    paper = rng.randint(225, 245)
    page = img.point(lambda v: round(v / 255 * (paper - 25) + 25))  # ink at 25, paper greyish
    page = page.rotate(rotation, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)
    page = page.filter(ImageFilter.GaussianBlur(0.4))  # scanner optics
    page = ImageChops.add(page, Image.effect_noise(page.size, noise), scale=1.0, offset=-128)
    buf = io.BytesIO()
    page.save(buf, "JPEG", quality=jpeg_quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


def statement_page(
    seed: int,
    *,
    px: int | None = None,
    rotation: float | None = None,
    jpeg_quality: int = 60,
    page_no: int = 1,
    pages: int = 1,
) -> Page:
    """One scanned statement page. Unset ``px`` (10-14) and ``rotation`` (±1-2°) are drawn from ``seed``."""
    rng = random.Random(seed)
    px = px if px is not None else rng.randint(10, 14)
    if rotation is None:
        rotation = rng.uniform(1.0, 2.0) * rng.choice((-1, 1))
    font = FONTS[seed % len(FONTS)]
    clean, truth = render_statement(rng, px, font, page_no, pages)
    return Page(scan(clean, rng, rotation, jpeg_quality), truth, px, round(rotation, 3), font)


def _png_bytes(im: Image.Image) -> bytes:
    """16 evenly spaced grey levels: half the bytes of 8-bit noise, and OCR reads it as well.

    (Pillow's adaptive ``quantize(16)`` picks levels from the histogram and costs Tesseract a
    third of the digits on 10 px print: even steps keep the ink/paper contrast.)
    """
    buf = io.BytesIO()
    im.point(lambda v: (v // 16) * 16 + 8).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _truth_json(doc: str, pages: list[Page]) -> str:
    body = {
        "document": doc,
        "pages": [
            {"page": i + 1, "px": p.px, "rotation_deg": p.rotation, "font": p.font, **p.truth.as_dict()}
            for i, p in enumerate(pages)
        ],
    }
    return json.dumps(body, indent=1) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str | None]] = {"id": [], "image": [], "pages": [], "detail": []}

    def add(doc_id: str, name: str, pages: str | None) -> None:
        rows["id"].append(doc_id)
        rows["image"].append(name)
        rows["pages"].append(pages)
        rows["detail"].append("high")

    for i, (px, seed) in enumerate(((10, 101), (13, 102)), start=1):
        page = statement_page(seed, px=px)
        (OUT / f"statement-{i}.png").write_bytes(_png_bytes(page.image))
        (OUT / f"statement-{i}.truth.json").write_text(_truth_json(f"statement-{i}.png", [page]))
        add(f"statement-{i}", f"statement-{i}.png", None)

    pdf_pages = [statement_page(200 + n, px=12, page_no=n + 1, pages=3) for n in range(3)]
    # Pillow 13 quirk (dependency-notes.md): never save the same Image objects twice as
    # multi-page files; each save gets its own copies.
    first, *rest = [p.image.copy() for p in pdf_pages]
    first.save(
        OUT / "statements.pdf", "PDF", save_all=True, append_images=rest, resolution=100.0, quality=60, **FIXED_DATES
    )
    (OUT / "statements-pdf.truth.json").write_text(_truth_json("statements.pdf", pdf_pages))
    add("statements-pdf", "statements.pdf", "1-2")

    tiff_pages = [statement_page(300 + n, px=14, page_no=n + 1, pages=3) for n in range(3)]
    bilevel = [
        p.image.point(lambda v: 255 if v > 150 else 0).convert("1", dither=Image.Dither.NONE) for p in tiff_pages
    ]
    first, *rest = [b.copy() for b in bilevel]
    first.save(OUT / "statements.tiff", "TIFF", save_all=True, append_images=rest, compression="group4", dpi=(100, 100))
    (OUT / "statements-tiff.truth.json").write_text(_truth_json("statements.tiff", tiff_pages))
    add("statements-tiff", "statements.tiff", "1,3")

    schema = pa.schema([("id", pa.string()), ("image", pa.string()), ("pages", pa.string()), ("detail", pa.string())])
    pq.write_table(pa.table(rows, schema=schema), OUT / "manifest.parquet")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(rows['id'])} documents to {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
