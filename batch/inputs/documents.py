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

**Errors.** Every failure is an :class:`~batch.core.errors.ImageError` (the row's file) or a
:class:`~batch.core.errors.RowError` (the row's ``pages``), with a distinct ``code``:
``image_not_found``, ``image_not_a_file``, ``image_empty``, ``image_unreadable`` (as for images),
``document_unsupported`` (neither PDF nor TIFF), ``document_corrupt``, ``document_encrypted``
(a user password is required), ``document_empty`` (no pages), ``document_too_large`` (a page over
``max_pixels`` even at the lowest DPI) and ``bad_pages``.

The work is split: :mod:`.pdf` (PDFium), :mod:`.tiff` (Pillow), :mod:`.page_image` (a page's
encoding); this module decides which, and checks the file.

**Threads.** PDFium is not thread-safe: every PDFium call here holds one process-wide lock, so
documents may be rendered from several threads (they take turns inside PDFium; Pillow work such
as PNG encoding runs outside the lock).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from ..core import ImageError
from .files import check_regular_file
from .page_image import MAX_BYTES, MAX_PIXELS, MAX_PNG_BYTES, RenderedPage
from .page_ranges import parse_pages
from .pdf import MIN_DPI, pdf_page_sizes, pdf_pages, pdf_selected, render_pdf
from .tiff import render_tiff, tiff_errors, tiff_frame_sizes, tiff_frames, tiff_selected

__all__ = [
    "DEFAULT_DPI",
    "DocumentKind",
    "RenderedPage",
    "document_pages",
    "is_document",
    "page_count",
    "page_sizes",
    "parse_pages",
    "render_pages",
    "tiff_errors",
]

DocumentKind = Literal["pdf", "tiff"]
DEFAULT_DPI = 200
MAX_DPI = 600
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF


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
    n = pdf_pages(path, shown) if kind == "pdf" else tiff_frames(path, shown)
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
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be between {MIN_DPI} and {MAX_DPI}, got {dpi}")
    shown, kind = _identify(path)
    if kind == "pdf":
        yield from render_pdf(path, shown, pages, dpi, max_pixels, max_bytes, max_png_bytes)
    else:
        yield from render_tiff(path, shown, pages, max_pixels, max_bytes, max_png_bytes)


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
    if kind == "pdf":
        return pdf_page_sizes(path, shown, pages, dpi, max_pixels)
    return tiff_frame_sizes(path, shown, pages)


def document_pages(
    path: str | os.PathLike[str] | bytes,
    pages: str | None,
    dpi: float = DEFAULT_DPI,
    *,
    check: Callable[[list[int]], None] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> list[tuple[int, tuple[int, int]]]:
    """The pages a row's ``pages`` value selects, each with its size as :func:`render_pages` makes
    it, from one look at the document (nothing rendered). ``check`` sees the page numbers before
    any page is sized (e.g. to refuse too many)."""
    shown, kind = _identify(path)

    def select(n: int) -> list[int]:
        if n < 1:
            raise ImageError(f"document has no pages: {shown}", code="document_empty")
        numbers = parse_pages(pages, n)
        if check is not None:
            check(numbers)
        return numbers

    if kind == "pdf":
        return pdf_selected(path, shown, select, dpi, max_pixels)
    return tiff_selected(path, shown, select)


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
