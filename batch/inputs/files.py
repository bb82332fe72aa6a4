"""Opening a row's file: every way that can fail becomes a row error with its own code.

Not found, unreadable, a directory or a device, empty (``image_not_found``, ``image_unreadable``,
``image_not_a_file``, ``image_empty``); and while Pillow decodes, a decompression bomb, an
unidentified format or a corrupt file (``image_too_large``, ``image_corrupt``).
"""

from __future__ import annotations

import stat
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from ..core import ImageError

__all__ = ["check_regular_file", "decoding", "open_file"]


def check_regular_file(path: Path, kind: str = "image") -> None:
    """A readable, non-empty regular file, or an ImageError saying which of those it is not.

    ``kind`` ("image", "document") only words the message; the codes are the same for both.
    """
    shown = str(path)
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError(f"{kind} file not found: {shown}", code="image_not_found") from None
    except OSError as exc:
        raise ImageError(f"cannot read {kind} file {shown}: {exc.strerror or exc}", code="image_unreadable") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{kind} path is a directory, not a file: {shown}", code="image_not_a_file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{kind} path is not a regular file: {shown}", code="image_not_a_file")
    if st.st_size == 0:
        raise ImageError(f"{kind} file is empty (0 bytes): {shown}", code="image_empty")


@contextmanager
def open_file(path: Path) -> Iterator[BinaryIO]:
    """Open a regular file for reading; every way that can fail becomes an ImageError."""
    shown = str(path)
    check_regular_file(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ImageError(f"cannot read image file {shown}: {exc.strerror or exc}", code="image_unreadable") from None
    with f:
        yield f


@contextmanager
def decoding(shown: str) -> Iterator[None]:
    """Turn Pillow's failures into ImageErrors; keep its global bomb warning out of the way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except Image.DecompressionBombError as exc:
            raise ImageError(f"image {shown} is too large to decode: {exc}", code="image_too_large") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(f"not an image, or a format Pillow cannot read: {shown}", code="image_corrupt") from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            raise ImageError(f"image file is corrupt or truncated: {shown} ({exc})", code="image_corrupt") from exc
