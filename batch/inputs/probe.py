"""An image's size from its header alone, for the estimate: no pixel is decoded.

A WebP's size comes straight from its RIFF header (Pillow would read the whole file); a ``data:``
URL is base64-decoded only as far as its image header.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..core import ImageError
from .images import MAX_PIXELS

__all__ = ["data_url_size", "webp_header_size"]

_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.ASCII)
# base64 characters decoded to find a data URL's image size: PNG/GIF/WEBP headers sit in the
# first bytes, a JPEG's size after its EXIF block; the whole payload is the last resort.
_DATA_URL_PREFIXES = (4096, 131072)


def webp_header_size(path: Path) -> tuple[int, int] | None:
    """A WebP file's canvas size from its first 30 bytes, or None to let Pillow decide.

    Pillow opens a WebP by reading the whole file and creating an animation decoder that
    allocates the full canvas (48 MB for a 12-megapixel photo): two thirds of an estimate's time
    on WebP-heavy manifests. The size sits in the RIFF header (VP8, VP8L or VP8X chunk); anything
    unusual (or unreadable) goes through :func:`probe_image` for its proper error.
    """
    try:
        with path.open("rb") as f:
            head = f.read(30)
    except OSError:
        return None
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    size: tuple[int, int] | None = None
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy: key frame start code, then 14-bit sizes
        size = int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    elif chunk == b"VP8L" and head[20] == 0x2F:  # lossless: signature, then 14-bit sizes minus one
        bits = int.from_bytes(head[21:25], "little")
        size = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        size = int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if size is None or min(size) < 1 or size[0] * size[1] > MAX_PIXELS:
        return None  # Pillow's checks give the row its proper error (e.g. image_too_large)
    return size


def data_url_size(url: str) -> tuple[int, int]:
    """The size of a ``data:`` URL's image, decoding only as much base64 as its header needs."""
    m = _DATA_URL.match(url)
    if not m:
        raise ImageError("data URL is not of the form data:<mime>;base64,<data>", code="bad_data_url")
    start = m.end()
    payload_len = len(url) - start
    for limit in (*_DATA_URL_PREFIXES, payload_len):
        whole = limit >= payload_len
        chunk = url[start:] if whole else url[start : start + limit - limit % 4]
        try:
            raw = base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("data URL holds invalid base64", code="bad_data_url") from None
        try:
            with Image.open(io.BytesIO(raw)) as im:
                return im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            if whole:
                raise ImageError("data URL does not hold an image Pillow can read", code="image_corrupt") from None
        except Image.DecompressionBombError:
            raise ImageError("data URL holds an image too large to decode", code="image_too_large") from None
    raise AssertionError("unreachable: the last attempt decodes the whole payload")
