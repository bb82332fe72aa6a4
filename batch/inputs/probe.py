"""A row's file or ``data:`` URL looked at from its header alone: no pixel is decoded.

:func:`probe_file` opens a row's file once and says what it is (an image, a PDF, a TIFF of several
pages) and an image's size: the request plan's one sniff of the file. A WebP's size comes straight
from its RIFF header (Pillow would read the whole file); a ``data:`` URL is base64-decoded only as
far as its image header.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image, UnidentifiedImageError

from ..core import ImageError
from .documents import is_document, tiff_errors
from .files import decoding, open_file
from .images import MAX_PIXELS
from .video import claims_video

__all__ = ["FileKind", "FileProbe", "data_url_size", "probe_file", "webp_header_size"]

# What a row's file is: an image (a one-page TIFF included), a document of pages, or a video.
FileKind = Literal["image", "pdf", "tiff", "video"]

_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.ASCII)
# The first bytes of a file hold its document magic and, for most images, the size.
_HEAD_BYTES = 4096
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2})
# base64 characters decoded to find a data URL's image size: PNG/GIF/WEBP headers sit in the
# first bytes, a JPEG's size after its EXIF block; the whole payload is the last resort.
_DATA_URL_PREFIXES = (4096, 131072)


@dataclass(frozen=True, slots=True)
class FileProbe:
    """What a row's file is. ``size`` is an image's (None for a document); ``tiff``: a TIFF of
    more than one page (a one-page TIFF is an ``image``)."""

    kind: FileKind
    size: tuple[int, int] | None
    file_bytes: int
    # An image's whole file, when the caller asked for it (``keep``): read in the same open.
    data: bytes | None = field(default=None, repr=False)


def probe_file(path: Path, *, keep: bool = False) -> FileProbe:
    """Open ``path`` once: its kind from the first bytes, an image's size from its header.

    A PDF, or a TIFF with more than one page, is a document; anything else is an image. Errors are
    those of :func:`~batch.inputs.images.load_image` for the file (``image_not_found`` ...) and the
    header (``image_corrupt``, ``image_too_large``); a damaged TIFF is ``document_corrupt``.
    With ``keep``, an image's whole file is read too (``data``), for a caller that loads it next
    (:func:`~batch.inputs.images.load_image` with ``data``): the file is opened and checked once,
    not twice. A document or video is never read whole here.
    """
    shown = str(path)
    with open_file(path) as f:
        try:
            head = f.read(_HEAD_BYTES)
            file_bytes = os.fstat(f.fileno()).st_size
        except OSError as exc:
            raise ImageError(f"cannot read image file {shown}: {exc.strerror or exc}", code="image_unreadable") from exc
        if claims_video(path, head):  # by name or header; probe_video says if it really is one
            return FileProbe("video", None, file_bytes)
        kind = is_document(head[:1024])
        if kind == "pdf":
            return FileProbe("pdf", None, file_bytes)
        f.seek(0)
        size: tuple[int, int] | None
        if kind == "tiff":
            with tiff_errors(shown), Image.open(f) as im:
                if int(getattr(im, "n_frames", 1)) > 1:
                    return FileProbe("tiff", None, file_bytes)
                size = im.size
        else:
            size = _head_size(head)
            if size is None:
                with decoding(shown), Image.open(f) as im:
                    size = im.size
        return FileProbe("image", size, file_bytes, _read_whole(f, shown) if keep else None)


def _read_whole(f: BinaryIO, shown: str) -> bytes:
    """The whole file (as :func:`~batch.inputs.images.load_image` reads it, with its error)."""
    try:
        f.seek(0)
        return f.read()
    except OSError as exc:
        raise ImageError(f"cannot read image file {shown}: {exc.strerror or exc}", code="image_unreadable") from exc


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
    return _webp_size(head)


def _head_size(head: bytes) -> tuple[int, int] | None:
    """A PNG, GIF, JPEG or WebP image's size from its first bytes, or None to let Pillow decide.

    Pillow's ``Image.open`` costs ten times the read of the first bytes (plugin search, header
    objects); the run plans every row, so the common formats are read here directly. Anything
    unusual (or too large, or damaged) goes through Pillow for its proper error."""
    size: tuple[int, int] | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 33:
        if binascii.crc32(head[12:29]) == int.from_bytes(head[29:33], "big"):
            size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    elif head.startswith((b"GIF87a", b"GIF89a")) and len(head) >= 10:
        size = int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    elif head.startswith(b"\xff\xd8"):
        size = _jpeg_size(head)
    else:
        return _webp_size(head)
    if size is None or min(size) < 1 or size[0] * size[1] > MAX_PIXELS:
        return None
    return size


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """The frame size from a baseline/extended/progressive JPEG's SOF segment, if within ``head``."""
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(head[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF:
            return int.from_bytes(head[pos + 7 : pos + 9], "big"), int.from_bytes(head[pos + 5 : pos + 7], "big")
        if marker == 0xDA or length < 2:  # scan data before any frame header: not ours to judge
            return None
        pos += 2 + length
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
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
