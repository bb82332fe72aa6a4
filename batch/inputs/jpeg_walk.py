"""A JPEG's marker segments walked without decoding (the JPEG half of :func:`.image_walk.walk`).

Baseline, extended and progressive Huffman frames only, with libjpeg's own header checks on
DQT/DHT/SOF/SOS and every scan up to EOI (a regex skips the entropy-coded data). Returns
``(mime, width, height)`` when the framing is whole and understood, else None (the caller
decodes the image).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

__all__ = ["walk_jpeg"]

# A JPEG marker in entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker or fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive Huffman: what the quick walk accepts
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Segments the walk knows: frames, DHT, DQT, DRI, SOS, COM, APPn. Any other marker: decoded.
_JPEG_SEGMENTS = {*_JPEG_SOF, 0xC4, 0xDB, 0xDD, 0xDA, 0xFE, *range(0xE0, 0xF0)}


def walk_jpeg(data: bytes) -> tuple[str, int, int] | None:
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
