"""Documents as rows: split a PDF or a (multi-page) TIFF into page images the service accepts.

- :func:`is_document` sniffs the first bytes (``%PDF-`` within the first KiB; TIFF and BigTIFF
  byte-order marks), so a row's file is recognised whatever its name.
- :func:`parse_pages` turns a row's ``pages`` value (``"1-3,7"``, ``"5-"``) into page numbers.
- :func:`page_count` reads only the PDF's page tree or the TIFF's directory chain: no rendering.
- :func:`render_pages` yields one :class:`RenderedPage` at a time (memory holds one page, however
  long the document): PDFs are rendered with PDFium (``pypdfium2``, BSD-3/Apache-2.0) at the
  requested DPI, TIFF frames are read with Pillow at their scanned resolution.

**Encoding.** Pages are sent as **PNG**: they are text, and lossless pixels keep every digit and
decimal point crisp for the model and for OCR, while the image-token cost does not depend on the
bytes. A page whose PNG would exceed ``max_png_bytes`` (a photograph or a colour scan at high DPI)
is sent as JPEG (quality 90) instead, downscaled if needed to fit ``max_bytes`` (the service's
20 MB), and :attr:`RenderedPage.note` says so. Pages whose pixels are all grey are stored as
8-bit greyscale (a third of the bytes of RGB).

**Modes.** Bilevel frames (fax/group 4) become 8-bit greyscale; 16- and 32-bit and float frames
are stretched to 8-bit over their actual range; CMYK, YCbCr and LAB become RGB; palette and alpha
images are composited onto white (a page has no meaningful transparency).

**Errors.** Every failure is an :class:`~batch.errors.ImageError` (the row's file) or a
:class:`~batch.errors.RowError` (the row's ``pages``), with a distinct ``code``:
``image_not_found``, ``image_not_a_file``, ``image_empty``, ``image_unreadable`` (as for images),
``document_unsupported`` (neither PDF nor TIFF), ``document_corrupt``, ``document_encrypted``
(a user password is required), ``document_empty`` (no pages), ``document_too_large`` (a page over
``max_pixels`` even at the lowest DPI) and ``bad_pages``.

**Threads.** PDFium is not thread-safe: every PDFium call here holds one process-wide lock, so
documents may be rendered from several threads (they take turns inside PDFium; Pillow work such
as PNG encoding runs outside the lock).
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pypdfium2 as pdfium  # type: ignore[import-untyped]
from PIL import Image, UnidentifiedImageError

from ..core import ImageError, RowError
from .images import check_regular_file
from .page_ranges import parse_pages

__all__ = [
    "DEFAULT_DPI",
    "DocumentKind",
    "RenderedPage",
    "is_document",
    "page_count",
    "page_sizes",
    "parse_pages",
    "render_pages",
]

DocumentKind = Literal["pdf", "tiff"]
DEFAULT_DPI = 200
MAX_DPI = 600
MAX_BYTES = 20 * 1024 * 1024  # the service's per-image limit
MAX_PNG_BYTES = 8 * 1024 * 1024  # above this a page is photo-like: JPEG serves it better
MAX_PIXELS = 40_000_000  # a page, not a poster: A0 at 150 dpi; larger pages are rendered at lower DPI
JPEG_QUALITY = 90
_MIN_DPI = 36
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF
_PDFIUM_LOCK = threading.RLock()
# pypdfium2's load error codes (FPDF_ERR_*): 2 file, 3 format, 4 password, 5 security handler.
_ERR_FILE, _ERR_PASSWORD, _ERR_SECURITY = 2, 4, 5


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


def is_document(source: str | os.PathLike[str] | bytes) -> DocumentKind | None:
    """``"pdf"`` or ``"tiff"`` from the first bytes of a file or buffer, else None.

    A path that cannot be read is None as well: the image loader reports why.
    """
    if isinstance(source, bytes):
        head = source[:1024]
    else:
        try:
            with open(source, "rb") as f:
                head = f.read(1024)
        except OSError:
            return None
    if head.startswith(_TIFF_MAGICS):
        return "tiff"
    if b"%PDF-" in head:  # the header may follow up to 1 KiB of junk (PDF 32000-1 annex H)
        return "pdf"
    return None


def page_count(path: str | os.PathLike[str] | bytes) -> int:
    """Pages in a PDF (its page tree, nothing rendered) or frames in a TIFF (its directories)."""
    shown, kind = _identify(path)
    if kind == "pdf":
        with _pdf_open(path, shown) as pdf:
            with _PDFIUM_LOCK:
                n = len(pdf)
    else:
        with _tiff_open(path, shown) as im, _tiff_errors(shown):
            n = int(getattr(im, "n_frames", 1))
    if n < 1:
        raise ImageError(f"document has no pages: {shown}", code="document_empty")
    return n


def render_pages(
    path: str | os.PathLike[str] | bytes,
    pages: Sequence[int] | None = None,
    dpi: float = DEFAULT_DPI,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    max_png_bytes: int = MAX_PNG_BYTES,
) -> Iterator[RenderedPage]:
    """Yield the requested pages (1-based, in the order given; all when None), one at a time.

    ``dpi`` applies to PDF pages (TIFF frames keep their scanned resolution). A PDF page larger
    than ``max_pixels`` at ``dpi`` is rendered at the highest DPI that fits, and noted.
    """
    if not _MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be between {_MIN_DPI} and {MAX_DPI}, got {dpi}")
    shown, kind = _identify(path)
    if kind == "pdf":
        yield from _render_pdf(path, shown, pages, dpi, max_pixels, max_bytes, max_png_bytes)
    else:
        yield from _render_tiff(path, shown, pages, max_pixels, max_bytes, max_png_bytes)


def page_sizes(
    path: str | os.PathLike[str] | bytes,
    pages: Sequence[int] | None = None,
    dpi: float = DEFAULT_DPI,
    *,
    max_pixels: int = MAX_PIXELS,
) -> list[tuple[int, int]]:
    """Each page's size in pixels as :func:`render_pages` makes it, with nothing rendered (estimates).

    PDF pages from the page tree (PDFium rounds ``points x dpi / 72`` up), TIFF frames from their
    directories. A page that would be sent as JPEG, downscaled to fit 20 MB, is rarer than this
    function can tell without rendering: it reports the rendered size.
    """
    shown, kind = _identify(path)
    sizes: list[tuple[int, int]] = []
    if kind == "pdf":
        with _pdf_open(path, shown) as pdf, _PDFIUM_LOCK:
            for number in _check_pages(pages, len(pdf), shown):
                w_pt, h_pt = pdf.get_page_size(number - 1)
                page_dpi, _note = _fit_dpi(w_pt, h_pt, dpi, max_pixels, shown, number)
                sizes.append((math.ceil(w_pt * page_dpi / 72.0), math.ceil(h_pt * page_dpi / 72.0)))
        return sizes
    with _tiff_open(path, shown) as im, _tiff_errors(shown):
        for number in _check_pages(pages, int(getattr(im, "n_frames", 1)), shown):
            im.seek(number - 1)
            sizes.append(im.size)
    return sizes


# --- PDF -------------------------------------------------------------------------------------


class _PdfHandle:
    """A PdfDocument closed (under the lock) when the ``with`` block ends."""

    def __init__(self, pdf: pdfium.PdfDocument) -> None:
        self.pdf = pdf

    def __enter__(self) -> pdfium.PdfDocument:
        return self.pdf

    def __exit__(self, *exc: object) -> None:
        with _PDFIUM_LOCK:
            self.pdf.close()


def _pdf_open(path: str | os.PathLike[str] | bytes, shown: str) -> _PdfHandle:
    source = path if isinstance(path, bytes) else str(path)
    try:
        with _PDFIUM_LOCK:
            return _PdfHandle(pdfium.PdfDocument(source))
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in (_ERR_PASSWORD, _ERR_SECURITY):
            raise ImageError(
                f"PDF is encrypted and needs a password: {shown} (remove the password, or print it to a new PDF)",
                code="document_encrypted",
            ) from None
        if code == _ERR_FILE:
            raise ImageError(f"cannot read PDF file {shown}", code="image_unreadable") from None
        raise ImageError(f"PDF is corrupt or truncated: {shown} ({exc})", code="document_corrupt") from None


def _render_pdf(
    path: str | os.PathLike[str] | bytes,
    shown: str,
    pages: Sequence[int] | None,
    dpi: float,
    max_pixels: int,
    max_bytes: int,
    max_png_bytes: int,
) -> Iterator[RenderedPage]:
    with _pdf_open(path, shown) as pdf:
        with _PDFIUM_LOCK:
            n = len(pdf)
        if n < 1:
            raise ImageError(f"document has no pages: {shown}", code="document_empty")
        for number in _check_pages(pages, n, shown):
            with _PDFIUM_LOCK:
                try:
                    width_pt, height_pt = pdf.get_page_size(number - 1)
                    page_dpi, note = _fit_dpi(width_pt, height_pt, dpi, max_pixels, shown, number)
                    page = pdf[number - 1]
                    try:
                        bitmap = page.render(scale=page_dpi / 72.0, fill_color=(255, 255, 255, 255), rev_byteorder=True)
                        image = bitmap.to_pil().convert("RGB")  # a copy: independent of PDFium's buffer
                        bitmap.close()
                    finally:
                        page.close()
                except pdfium.PdfiumError as exc:
                    raise ImageError(
                        f"PDF page {number} cannot be rendered: {shown} ({exc})", code="document_corrupt"
                    ) from None
            yield _encoded(number, _grey_if_grey(image), page_dpi, note, max_bytes, max_png_bytes)


def _fit_dpi(
    width_pt: float, height_pt: float, dpi: float, max_pixels: int, shown: str, number: int
) -> tuple[float, str | None]:
    pixels = (width_pt * dpi / 72.0) * (height_pt * dpi / 72.0)
    if pixels <= max_pixels:
        return dpi, None
    fitted = float(int(dpi * (max_pixels / pixels) ** 0.5))
    if fitted < _MIN_DPI:
        raise ImageError(
            f"PDF page {number} of {shown} is {width_pt / 72:.0f}x{height_pt / 72:.0f} inches: over {max_pixels:,} "
            f"pixels even at {_MIN_DPI} dpi",
            code="document_too_large",
        )
    return fitted, f"rendered at {fitted:.0f} dpi instead of {dpi:.0f} to stay within {max_pixels:,} pixels"


# --- TIFF ------------------------------------------------------------------------------------


class _TiffHandle:
    def __init__(self, im: Image.Image) -> None:
        self.im = im

    def __enter__(self) -> Image.Image:
        return self.im

    def __exit__(self, *exc: object) -> None:
        self.im.close()


def _tiff_open(path: str | os.PathLike[str] | bytes, shown: str) -> _TiffHandle:
    with _tiff_errors(shown):
        return _TiffHandle(Image.open(io.BytesIO(path) if isinstance(path, bytes) else Path(path)))


@contextmanager
def _tiff_errors(shown: str) -> Iterator[None]:
    """Pillow's many ways of failing on a damaged TIFF become ``document_corrupt``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: errors follow if it matters
        try:
            yield
        except Image.DecompressionBombError as exc:
            raise ImageError(f"TIFF frame is too large to decode: {shown}", code="document_too_large") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            raise ImageError(f"TIFF is corrupt or truncated: {shown} ({exc})", code="document_corrupt") from exc


def _render_tiff(
    path: str | os.PathLike[str] | bytes,
    shown: str,
    pages: Sequence[int] | None,
    max_pixels: int,
    max_bytes: int,
    max_png_bytes: int,
) -> Iterator[RenderedPage]:
    with _tiff_open(path, shown) as im:
        with _tiff_errors(shown):
            n = int(getattr(im, "n_frames", 1))
        for number in _check_pages(pages, n, shown):
            with _tiff_errors(shown):
                im.seek(number - 1)  # reads only this frame's directory
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"TIFF page {number} of {shown} is {w}x{h} ({w * h:,} pixels), over the limit of "
                        f"{max_pixels:,}: not decoded",
                        code="document_too_large",
                    )
                im.load()
                dpi = _tiff_dpi(im)
                page = _to_8bit(im)
                if page is im:
                    page = im.copy()  # the next seek would change it under the caller
            yield _encoded(number, _grey_if_grey(page), dpi, None, max_bytes, max_png_bytes)


def _tiff_dpi(frame: Image.Image) -> float | None:
    info = frame.info.get("dpi")
    if not isinstance(info, tuple) or not info:
        return None
    try:
        dpi = float(info[0])  # Pillow gives IFDRational or float pairs
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return round(dpi, 1) if dpi > 1 else None


# --- shared ----------------------------------------------------------------------------------


def _identify(path: str | os.PathLike[str] | bytes) -> tuple[str, DocumentKind]:
    """How to name the source in messages, and its kind; file problems as ImageErrors."""
    if isinstance(path, bytes):
        shown = f"<{len(path):,} bytes>"
        if not path:
            raise ImageError("document is empty (0 bytes)", code="image_empty")
    else:
        shown = str(path)
        _check_file(Path(path))
    kind = is_document(path)
    if kind is None:
        raise ImageError(f"not a PDF or TIFF document: {shown}", code="document_unsupported")
    return shown, kind


def _check_file(path: Path) -> None:
    check_regular_file(path, "document")
    if not os.access(path, os.R_OK):
        raise ImageError(f"cannot read document file {path}: permission denied", code="image_unreadable")


def _check_pages(pages: Sequence[int] | None, n: int, shown: str) -> list[int]:
    if pages is None:
        return list(range(1, n + 1))
    for p in pages:
        if not 1 <= p <= n:
            raise RowError(f"page {p} is not in {shown} (pages 1-{n})", code="bad_pages")
    return list(pages)


def _to_8bit(im: Image.Image) -> Image.Image:
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


def _grey_if_grey(im: Image.Image) -> Image.Image:
    """RGB whose channels are equal everywhere (most scans and statements) as 8-bit greyscale."""
    if im.mode != "RGB":
        return im
    a = np.asarray(im)
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]):
        return im.getchannel(0)
    return im


def _encoded(
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
