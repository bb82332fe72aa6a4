"""A document page as the service takes it: 8-bit, grey when it is grey, PNG or (if large) JPEG.

See :mod:`batch.inputs.documents` for the encoding rules.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..core import ImageError, RowError

MAX_BYTES = 20 * 1024 * 1024  # the service's per-image limit
MAX_PNG_BYTES = 8 * 1024 * 1024  # above this a page is photo-like: JPEG serves it better
MAX_PIXELS = 40_000_000  # a page, not a poster: A0 at 150 dpi; larger pages are rendered at lower DPI
JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """One page, encoded. ``page`` is 1-based; ``image`` is the decoded page (for local OCR)."""

    page: int
    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    dpi: float | None  # None when a TIFF frame does not say
    image: Image.Image = field(repr=False, compare=False)
    note: str | None = None  # what was done beyond rendering (JPEG fallback, lower DPI, ...)


def check_pages(pages: Sequence[int] | None, n: int, shown: str) -> list[int]:
    if pages is None:
        return list(range(1, n + 1))
    for p in pages:
        if not 1 <= p <= n:
            raise RowError(f"page {p} is not in {shown} (pages 1-{n})", code="bad_pages")
    return list(pages)


def to_8bit(im: Image.Image) -> Image.Image:
    """An 8-bit L or RGB page from any frame mode (see the module docstring)."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.full_like(a, 255.0)
        return Image.fromarray(scaled.round().astype(np.uint8), "L")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        page = Image.new("RGB", rgba.size, (255, 255, 255))
        page.paste(rgba, mask=rgba.getchannel("A"))
        return page
    return im.convert("RGB")  # CMYK, YCbCr, LAB, P, ...


def grey_if_grey(im: Image.Image) -> Image.Image:
    """RGB whose channels are equal everywhere (most scans and statements) as 8-bit greyscale."""
    if im.mode != "RGB":
        return im
    a = np.asarray(im)
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]):
        return im.getchannel(0)
    return im


def encoded(
    number: int, image: Image.Image, dpi: float | None, note: str | None, max_bytes: int, max_png_bytes: int
) -> RenderedPage:
    png = _save(image, "PNG", compress_level=6)
    if len(png) <= min(max_png_bytes, max_bytes):
        return RenderedPage(number, png, "image/png", image.width, image.height, dpi, image, note)
    what = f"PNG would be {len(png) / 1e6:.1f} MB: sent as JPEG"
    scale = 1.0
    for _ in range(12):
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        candidate = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        data = _save(candidate, "JPEG", quality=JPEG_QUALITY)
        if len(data) <= max_bytes:
            extra = "" if scale == 1.0 else f", downscaled to {size[0]}x{size[1]} to fit {max_bytes:,} bytes"
            text = what + extra + (f"; {note}" if note else "")
            page_dpi = dpi * scale if dpi is not None else None
            return RenderedPage(number, data, "image/jpeg", size[0], size[1], page_dpi, candidate, text)
        scale *= min(0.9, max(0.25, 0.95 * (max_bytes / len(data)) ** 0.5))
    raise ImageError(f"page {number} cannot be made to fit {max_bytes:,} bytes", code="document_too_large")


def _save(im: Image.Image, fmt: str, **params: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()
