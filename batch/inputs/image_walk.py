"""Walk a PNG, JPEG or WebP file's structure without decoding its pixels (``verify_images = "quick"``).

:func:`walk` returns ``(mime, width, height)`` when the file's framing is whole and understood, a
:class:`Corrupt` when it is provably damaged (a PNG chunk's CRC), and None when anything is short,
odd or unknown: the caller (:mod:`batch.images`) then decodes the image and Pillow gives the verdict
and its message. What the walk checks, and what only a full decode catches, is described in
:mod:`batch.images`.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass


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
# A JPEG marker in entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker or fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive Huffman: what the quick walk accepts
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Segments the walk knows: frames, DHT, DQT, DRI, SOS, COM, APPn. Any other marker: decoded.
_JPEG_SEGMENTS = {*_JPEG_SOF, 0xC4, 0xDB, 0xDD, 0xDA, 0xFE, *range(0xE0, 0xF0)}


def walk(data: bytes) -> Walked:
    if data.startswith(_PNG_SIGNATURE):
        return _walk_png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _walk_jpeg(data)
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _walk_webp(data)
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


def _walk_jpeg(data: bytes) -> Walked:
    """Marker segments whole and consistent (tables, frame, scan headers), every scan followed by a
    marker, ending in EOI. The checks are libjpeg's own on the headers; the pixels are not decoded."""
    n = len(data)
    pos = 2
    frame: _JpegFrame | None = None
    quant: set[int] = set()
    huff: set[tuple[int, int]] = set()  # (class 0 = DC / 1 = AC, table id)
    scans = 0
    while True:
        # Markers may be preceded by any number of 0xFF fill bytes.
        while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1
        if pos + 2 > n or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            break
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker not in _JPEG_SEGMENTS or pos + 4 > n:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body, end = pos + 4, pos + 2 + length
        if length < 2 or end > n:
            return None
        if marker == 0xDB:
            if not _jpeg_dqt(data, body, end, quant):
                return None
        elif marker == 0xC4:
            if not _jpeg_dht(data, body, end, huff):
                return None
        elif marker == 0xDA:  # a scan: its header, then entropy-coded data up to the next marker
            if frame is None or not _jpeg_sos(data, body, end, frame, quant, huff):
                return None
            found = _JPEG_MARKER.search(data, end)
            if found is None:
                return None  # the data runs to the end of the file: truncated, or no EOI
            scans += 1
            pos = found.start()
            continue
        elif marker in _JPEG_SOF:
            if frame is not None:
                return None
            frame = _jpeg_sof(data, marker, body, end)
            if frame is None:
                return None
        pos = end
    if frame is None or scans == 0:
        return None
    return "image/jpeg", frame.width, frame.height


@dataclass(frozen=True, slots=True)
class _JpegFrame:
    progressive: bool
    width: int
    height: int
    components: dict[int, tuple[int, int]]  # component id -> (quantisation table id, blocks in an MCU)


def _jpeg_sof(data: bytes, marker: int, body: int, end: int) -> _JpegFrame | None:
    if end - body < 6:
        return None
    precision, height, width, count = struct.unpack_from(">BHHB", data, body)
    if precision != 8 or not (width and height) or count not in (1, 3, 4) or end - body != 6 + 3 * count:
        return None
    components: dict[int, tuple[int, int]] = {}
    factors = []
    for k in range(count):
        ident, sampling, table = data[body + 6 + 3 * k : body + 9 + 3 * k]
        h, v = sampling >> 4, sampling & 15
        if ident in components or not (1 <= h <= 4 and 1 <= v <= 4) or table > 3:
            return None
        components[ident] = (table, h * v)
        factors.append((h, v))
    max_h, max_v = max(h for h, _ in factors), max(v for _, v in factors)
    if any(max_h % h or max_v % v for h, v in factors):
        return None  # libjpeg does not upsample by fractions
    return _JpegFrame(marker == 0xC2, width, height, components)


def _jpeg_dqt(data: bytes, pos: int, end: int, quant: set[int]) -> bool:
    while pos < end:
        precision, table = data[pos] >> 4, data[pos] & 15
        if precision > 1 or table > 3:
            return False
        pos += 1 + 64 * (precision + 1)
        quant.add(table)
    return pos == end


def _jpeg_dht(data: bytes, pos: int, end: int, huff: set[tuple[int, int]]) -> bool:
    while pos < end:
        if pos + 17 > end:
            return False
        kind, table = data[pos] >> 4, data[pos] & 15
        counts = data[pos + 1 : pos + 17]
        total = sum(counts)
        if kind > 1 or table > 3 or total > 256 or pos + 17 + total > end:
            return False
        code = 0  # libjpeg's test: the codes of each length must fit in that many bits
        for bits, k in enumerate(counts, 1):
            code += k
            if code > 1 << bits:
                return False
            code <<= 1
        if kind == 0 and max(data[pos + 17 : pos + 17 + total], default=0) > 11:
            return False  # a DC symbol is a magnitude category, at most 11 for 8-bit samples
        pos += 17 + total
        huff.add((kind, table))
    return pos == end


def _jpeg_sos(data: bytes, pos: int, end: int, frame: _JpegFrame, quant: set[int], huff: set[tuple[int, int]]) -> bool:
    count = data[pos] if pos < end else 0
    if not 1 <= count <= 4 or end - pos != 4 + 2 * count:
        return False
    ss, se, approx = data[end - 3], data[end - 2], data[end - 1]
    ah, al = approx >> 4, approx & 15
    if frame.progressive:
        if se > 63 or ss > se or (ss == 0) != (se == 0) or ah > 13 or al > 13 or (ss and count != 1):
            return False
    elif (ss, se, ah, al) != (0, 63, 0, 0):
        return False
    seen = set()
    blocks = 0
    for k in range(count):
        ident, tables = data[pos + 1 + 2 * k], data[pos + 2 + 2 * k]
        if ident not in frame.components or ident in seen or frame.components[ident][0] not in quant:
            return False
        seen.add(ident)
        blocks += frame.components[ident][1]
        if ss == 0 and ah == 0 and (0, tables >> 4) not in huff:
            return False  # a first DC scan needs its DC table
        if se and ah == 0 and (1, tables & 15) not in huff:
            return False  # an AC scan (baseline, or a first progressive pass) needs its AC table
    return count == 1 or blocks <= 10  # libjpeg's limit on blocks in an interleaved MCU


def _walk_webp(data: bytes) -> Walked:
    """The RIFF container whole, and a VP8/VP8L frame header that agrees with the canvas."""
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data) or riff_end < 20:
        return None
    chunks: list[tuple[bytes, int, int]] = []  # (fourcc, payload start, payload size)
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            return None
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > riff_end:
            return None
        chunks.append((kind, pos + 8, size))
        pos += 8 + size + (size & 1)
    if pos > riff_end + 1:  # the last chunk's padding byte may be left out
        return None
    first = chunks[0][0]
    if first in (b"VP8 ", b"VP8L"):
        frame = _webp_frame(data, *chunks[0])
        if frame is None:
            return None
        return "image/webp", frame[0], frame[1]
    if first != b"VP8X" or chunks[0][2] < 10:
        return None
    start = chunks[0][1]
    flags = data[start]
    width = int.from_bytes(data[start + 4 : start + 7], "little") + 1
    height = int.from_bytes(data[start + 7 : start + 10], "little") + 1
    frames = [c for c in chunks[1:] if c[0] in (b"VP8 ", b"VP8L")]
    if flags & 0x02:  # animated: every frame's own image chunk, checked like a still image's
        anmf = [c for c in chunks if c[0] == b"ANMF"]
        if not anmf or frames or not any(c[0] == b"ANIM" for c in chunks):
            return None
        if any(_webp_anmf_frame(data, start, size) is None for _, start, size in anmf):
            return None
        return "image/webp", width, height
    if len(frames) != 1:
        return None
    frame = _webp_frame(data, *frames[0])
    if frame is None or frame != (width, height):
        return None
    return "image/webp", width, height


def _webp_anmf_frame(data: bytes, start: int, size: int) -> tuple[int, int] | None:
    """The image chunk inside one ANMF frame (16 bytes of frame header, then ALPH? and VP8/VP8L)."""
    pos, end = start + 16, start + size
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + length > end:
            return None
        if kind in (b"VP8 ", b"VP8L"):
            return _webp_frame(data, kind, pos + 8, length)
        pos += 8 + length + (length & 1)
    return None


def _webp_frame(data: bytes, kind: bytes, start: int, size: int) -> tuple[int, int] | None:
    """A VP8 key frame's or a VP8L image's header: signature, size, and a first partition that fits."""
    head = data[start : start + 10]
    if kind == b"VP8 ":
        if size < 10 or len(head) < 10 or head[3:6] != b"\x9d\x01\x2a":
            return None
        tag = int.from_bytes(head[0:3], "little")
        key_frame, version, shown, first_partition = not tag & 1, (tag >> 1) & 7, (tag >> 4) & 1, tag >> 5
        if not key_frame or version > 3 or not shown or first_partition > size - 10:
            return None
        w = int.from_bytes(head[6:8], "little") & 0x3FFF
        h = int.from_bytes(head[8:10], "little") & 0x3FFF
    else:
        if size < 5 or len(head) < 5 or head[0] != 0x2F:
            return None
        bits = int.from_bytes(head[1:5], "little")
        if bits >> 29:  # version must be 0
            return None
        w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return (w, h) if w and h else None
