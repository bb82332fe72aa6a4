"""Walk a PNG, JPEG or WebP file's structure without decoding its pixels (``verify_images = "quick"``).

:func:`walk` returns ``(mime, width, height)`` when the file's framing is whole and understood, a
:class:`Corrupt` when it is provably damaged (a PNG chunk's CRC), and None when anything is short,
odd or unknown: the caller (:mod:`batch.inputs.images`) then decodes the image and Pillow gives the verdict
and its message. What the walk checks, and what only a full decode catches, is described in
:mod:`batch.inputs.images`. The PNG walk is here; JPEG's is :mod:`.jpeg_walk`, WebP's :mod:`.webp_walk`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .jpeg_walk import walk_jpeg
from .webp_walk import walk_webp

__all__ = ["Corrupt", "Walked", "walk"]


@dataclass(frozen=True, slots=True)
class Corrupt:
    reason: str


Walked = tuple[str, int, int] | Corrupt | None

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> (channels, allowed bit depths)
_PNG_COLOUR = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)), 6: (4, (8, 16))}
_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
# Deflate cannot compress better than 1032:1 (a 258-byte match in about two bits).
_DEFLATE_MAX_RATIO = 1032


def walk(data: bytes) -> Walked:
    if data.startswith(_PNG_SIGNATURE):
        return _walk_png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return walk_jpeg(data)
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return walk_webp(data)
    return None  # GIF, or not a sendable format: decoded


def _walk_png(data: bytes) -> Walked:
    """Every chunk whole and its CRC right, IHDR first, IDATs together, IEND last."""
    n = len(data)
    view = memoryview(data)
    pos = len(_PNG_SIGNATURE)
    size: tuple[int, int] | None = None
    raw_bytes = idat_bytes = 0
    idat_state = 0  # 0: none yet, 1: in the IDAT run, 2: after it
    palette = needs_palette = False
    while True:
        if pos + 12 > n:
            return None  # truncated (or no IEND): the decoder decides
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            return None
        crc = struct.unpack_from(">I", data, end - 4)[0]
        if zlib.crc32(view[pos + 8 : end - 4], zlib.crc32(kind)) != crc:
            return Corrupt(f"PNG chunk {kind.decode('latin-1')!r} at byte {pos} fails its CRC check")
        if size is None:
            if kind != b"IHDR" or length != 13:
                return None
            w, h, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, pos + 8)
            spec = _PNG_COLOUR.get(colour)
            if not (w and h) or spec is None or depth not in spec[1] or (compression, filtering) != (0, 0):
                return None
            if interlace not in (0, 1):
                return None
            size = (w, h)
            raw_bytes = h * ((w * spec[0] * depth + 7) // 8)  # a lower bound, filter bytes left out
            needs_palette = colour == 3
        elif kind == b"IDAT":
            if idat_state == 2 or (needs_palette and not palette):
                return None
            idat_state = 1
            idat_bytes += length
        elif kind == b"IEND":
            break
        else:
            if idat_state == 1:
                idat_state = 2
            if kind == b"PLTE":
                palette = True
            elif kind == b"IHDR" or (not kind[0] & 0x20 and kind not in _PNG_CRITICAL):
                return None  # a second IHDR, or a critical chunk this walk does not know
        pos = end
    if size is None or idat_state == 0 or idat_bytes * _DEFLATE_MAX_RATIO < raw_bytes:
        return None  # no image data, or too little of it for the header's size
    return "image/png", size[0], size[1]
