"""A WebP's RIFF chunks and its VP8/VP8L frame header walked without decoding (the WebP half of
:func:`.image_walk.walk`).

Returns ``(mime, width, height)`` when the framing is whole and understood (animated files by
their ANMF frames), else None (the caller decodes the image).
"""

from __future__ import annotations

__all__ = ["walk_webp"]


def walk_webp(data: bytes) -> tuple[str, int, int] | None:
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
