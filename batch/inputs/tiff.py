"""Multi-page TIFFs with Pillow: frames counted and sized from their directories, read one at a time."""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..core import ImageError
from .page_image import RenderedPage, check_pages, encoded, grey_if_grey, to_8bit


class _TiffHandle:
    def __init__(self, im: Image.Image) -> None:
        self.im = im

    def __enter__(self) -> Image.Image:
        return self.im

    def __exit__(self, *exc: object) -> None:
        self.im.close()


def tiff_open(path: str | os.PathLike[str] | bytes, shown: str) -> _TiffHandle:
    with tiff_errors(shown):
        return _TiffHandle(Image.open(io.BytesIO(path) if isinstance(path, bytes) else Path(path)))


@contextmanager
def tiff_errors(shown: str) -> Iterator[None]:
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


def render_tiff(
    path: str | os.PathLike[str] | bytes,
    shown: str,
    pages: Sequence[int] | None,
    max_pixels: int,
    max_bytes: int,
    max_png_bytes: int,
) -> Iterator[RenderedPage]:
    with tiff_open(path, shown) as im:
        with tiff_errors(shown):
            n = int(getattr(im, "n_frames", 1))
        for number in check_pages(pages, n, shown):
            with tiff_errors(shown):
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
                page = to_8bit(im)
                if page is im:
                    page = im.copy()  # the next seek would change it under the caller
            yield encoded(number, grey_if_grey(page), dpi, None, max_bytes, max_png_bytes)


def _tiff_dpi(frame: Image.Image) -> float | None:
    info = frame.info.get("dpi")
    if not isinstance(info, tuple) or not info:
        return None
    try:
        dpi = float(info[0])  # Pillow gives IFDRational or float pairs
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return round(dpi, 1) if dpi > 1 else None


def tiff_frames(path: str | os.PathLike[str] | bytes, shown: str) -> int:
    """Frames in the TIFF (its directory chain; nothing decoded)."""
    with tiff_open(path, shown) as im, tiff_errors(shown):
        return int(getattr(im, "n_frames", 1))


def tiff_frame_sizes(
    path: str | os.PathLike[str] | bytes, shown: str, pages: Sequence[int] | None
) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    with tiff_open(path, shown) as im, tiff_errors(shown):
        for number in check_pages(pages, int(getattr(im, "n_frames", 1)), shown):
            im.seek(number - 1)
            sizes.append(im.size)
    return sizes


def tiff_selected(
    path: str | os.PathLike[str] | bytes, shown: str, select: Callable[[int], list[int]]
) -> list[tuple[int, tuple[int, int]]]:
    """``select(frame count)``'s frames with their sizes, from one opening of the TIFF."""
    with tiff_open(path, shown) as im:
        with tiff_errors(shown):
            n = int(getattr(im, "n_frames", 1))
        numbers = select(n)
        out: list[tuple[int, tuple[int, int]]] = []
        with tiff_errors(shown):
            for number in numbers:
                im.seek(number - 1)
                out.append((number, im.size))
    return out
