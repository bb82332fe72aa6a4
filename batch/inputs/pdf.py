"""PDF pages with PDFium (``pypdfium2``): counted and sized from the page tree, rendered one at a time.

PDFium is not thread-safe: every PDFium call here holds one process-wide lock.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence

import pypdfium2 as pdfium  # type: ignore[import-untyped]

from ..core import ImageError
from .page_image import RenderedPage, check_pages, encoded, grey_if_grey

MIN_DPI = 36
_PDFIUM_LOCK = threading.RLock()
# pypdfium2's load error codes (FPDF_ERR_*): 2 file, 3 format, 4 password, 5 security handler.
_ERR_FILE, _ERR_PASSWORD, _ERR_SECURITY = 2, 4, 5


class _PdfHandle:
    """A PdfDocument closed (under the lock) when the ``with`` block ends."""

    def __init__(self, pdf: pdfium.PdfDocument) -> None:
        self.pdf = pdf

    def __enter__(self) -> pdfium.PdfDocument:
        return self.pdf

    def __exit__(self, *exc: object) -> None:
        with _PDFIUM_LOCK:
            self.pdf.close()


def pdf_open(path: str | os.PathLike[str] | bytes, shown: str) -> _PdfHandle:
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


def render_pdf(
    path: str | os.PathLike[str] | bytes,
    shown: str,
    pages: Sequence[int] | None,
    dpi: float,
    max_pixels: int,
    max_bytes: int,
    max_png_bytes: int,
) -> Iterator[RenderedPage]:
    with pdf_open(path, shown) as pdf:
        with _PDFIUM_LOCK:
            n = len(pdf)
        if n < 1:
            raise ImageError(f"document has no pages: {shown}", code="document_empty")
        for number in check_pages(pages, n, shown):
            with _PDFIUM_LOCK:
                try:
                    width_pt, height_pt = pdf.get_page_size(number - 1)
                    page_dpi, note = fit_dpi(width_pt, height_pt, dpi, max_pixels, shown, number)
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
            yield encoded(number, grey_if_grey(image), page_dpi, note, max_bytes, max_png_bytes)


def fit_dpi(
    width_pt: float, height_pt: float, dpi: float, max_pixels: int, shown: str, number: int
) -> tuple[float, str | None]:
    pixels = (width_pt * dpi / 72.0) * (height_pt * dpi / 72.0)
    if pixels <= max_pixels:
        return dpi, None
    fitted = float(int(dpi * (max_pixels / pixels) ** 0.5))
    if fitted < MIN_DPI:
        raise ImageError(
            f"PDF page {number} of {shown} is {width_pt / 72:.0f}x{height_pt / 72:.0f} inches: over {max_pixels:,} "
            f"pixels even at {MIN_DPI} dpi",
            code="document_too_large",
        )
    return fitted, f"rendered at {fitted:.0f} dpi instead of {dpi:.0f} to stay within {max_pixels:,} pixels"


def pdf_pages(path: str | os.PathLike[str] | bytes, shown: str) -> int:
    """Pages in the PDF's page tree (nothing rendered)."""
    with pdf_open(path, shown) as pdf, _PDFIUM_LOCK:
        return len(pdf)


def pdf_page_sizes(
    path: str | os.PathLike[str] | bytes, shown: str, pages: Sequence[int] | None, dpi: float, max_pixels: int
) -> list[tuple[int, int]]:
    """Each page's size as :func:`render_pdf` makes it (PDFium rounds ``points x dpi / 72`` up)."""
    sizes: list[tuple[int, int]] = []
    with pdf_open(path, shown) as pdf, _PDFIUM_LOCK:
        for number in check_pages(pages, len(pdf), shown):
            w_pt, h_pt = pdf.get_page_size(number - 1)
            page_dpi, _note = fit_dpi(w_pt, h_pt, dpi, max_pixels, shown, number)
            sizes.append((math.ceil(w_pt * page_dpi / 72.0), math.ceil(h_pt * page_dpi / 72.0)))
    return sizes


def pdf_selected(
    path: str | os.PathLike[str] | bytes, shown: str, select: Callable[[int], list[int]], dpi: float, max_pixels: int
) -> list[tuple[int, tuple[int, int]]]:
    """``select(page count)``'s pages with their rendered sizes, from one opening of the PDF."""
    with pdf_open(path, shown) as pdf:
        with _PDFIUM_LOCK:
            n = len(pdf)
        numbers = select(n)
        out: list[tuple[int, tuple[int, int]]] = []
        with _PDFIUM_LOCK:
            for number in numbers:
                w_pt, h_pt = pdf.get_page_size(number - 1)
                page_dpi, _note = fit_dpi(w_pt, h_pt, dpi, max_pixels, shown, number)
                out.append((number, (math.ceil(w_pt * page_dpi / 72.0), math.ceil(h_pt * page_dpi / 72.0))))
    return out
