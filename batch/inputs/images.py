"""Load a row's image from disk and make it something the service accepts.

The service takes PNG, JPEG, WEBP and non-animated GIF (azure-vision-api.md §1.3). Those are sent
byte for byte (the bytes are the image's identity downstream), after checking that they are whole.
Anything else Pillow reads is re-encoded as PNG, and anything over the size limit is downscaled to
a JPEG that fits; :attr:`EncodedImage.reencoded` says what was done.

How a sendable image is checked (``verify``, the job's ``[input].verify_images``):

* ``"quick"`` (the default) walks the file's structure without decoding pixels: every PNG chunk and
  its CRC, up to IEND, with enough IDAT data for the header's size; a JPEG's marker segments and
  every scan up to EOI; a WebP's RIFF chunks and its VP8/VP8L frame header. A file that passes is
  sent as it is. Anything the walk finds short, odd or unknown is decoded in full (below), so a
  truncated file costs a decode and still becomes ``image_corrupt`` with the decoder's own message.
  A PNG chunk whose CRC does not match is ``image_corrupt`` at once: the bytes are provably damaged
  (Pillow's decoder skips the CRCs of image data). GIFs are always decoded (small, and rare).
* ``"full"`` runs the same walk and then decodes the image (a JPEG at 1/8 scale, which still
  entropy-decodes every scan). This also catches damage *inside* compressed data whose framing is
  intact: a deflate stream that fails within a PNG whose CRCs match (possible only if the damage
  happened before the CRCs were computed, e.g. a faulty encoder), a JPEG whose entropy-coded data
  is damaged badly enough for libjpeg to fail, a WebP whose VP8/VP8L bitstream libwebp rejects.

Every failure is an :class:`~batch.core.errors.ImageError` whose ``code`` says what is wrong
(``image_not_found``, ``image_not_a_file``, ``image_unreadable``, ``image_empty``,
``image_corrupt``, ``image_too_large``) and whose message names the file as given.

Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is global: its warning is
silenced here and the limit is checked explicitly against ``max_pixels``. Its hard error (above
twice ``MAX_IMAGE_PIXELS``, the default ``max_pixels``) still applies and becomes
``image_too_large``.
"""

from __future__ import annotations

import binascii
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from PIL import Image

from ..core import ImageError
from .files import decoding, open_file
from .image_walk import Corrupt, walk

__all__ = [
    "VERIFY_MODES",
    "EncodedImage",
    "ImageInfo",
    "VerifyMode",
    "data_url_bytes",
    "load_image",
    "probe_image",
    "sniff_mime",
    "to_data_url",
]

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 178_956_970  # Pillow's hard limit: 2 * Image.MAX_IMAGE_PIXELS by default
JPEG_QUALITY = 90

# Formats the service accepts as they are (an MPO is a camera JPEG with extra frames appended).
_SENDABLE = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"}
_MAX_SHRINK_STEPS = 12

VerifyMode = Literal["quick", "full"]
VERIFY_MODES: tuple[VerifyMode, ...] = ("quick", "full")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says; ``mime`` is what the image would be sent as if sendable unchanged."""

    width: int
    height: int
    format: str
    mime: str
    n_frames: int


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """The bytes to send. ``reencoded`` is None when they are the file's own bytes."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    reencoded: str | None


def probe_image(path: Path) -> ImageInfo:
    """Size, format and frame count from the header only, without decoding the pixels."""
    shown = str(path)
    with open_file(path) as f, decoding(shown), Image.open(f) as im:
        fmt = im.format or "unknown"
        mime = _SENDABLE.get(fmt) or Image.MIME.get(fmt, "application/octet-stream")
        return ImageInfo(im.width, im.height, fmt, mime, getattr(im, "n_frames", 1))


def _read_file(path: Path, shown: str) -> bytes:
    with open_file(path) as f:
        try:
            return f.read()
        except OSError as exc:
            raise ImageError(f"cannot read image file {shown}: {exc.strerror or exc}", code="image_unreadable") from exc


def load_image(
    path: Path,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    verify: VerifyMode = "quick",
    data: bytes | None = None,
) -> EncodedImage:
    """Read ``path`` once and return bytes the service accepts, at most ``max_bytes`` long.

    Raises :class:`ImageError` when the file is missing, not a file, unreadable, empty, not a
    decodable image, or has more than ``max_pixels`` pixels (checked before decoding).
    ``verify`` says how a file sent as it is gets checked (see the module's docstring).
    ``data``: the file's bytes, already read (and the file checked) by
    :func:`~batch.inputs.probe.probe_file` with ``keep``; the file is then not opened again.
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
    shown = str(path)
    if data is None:
        data = _read_file(path, shown)
    if not data:
        raise ImageError(f"image file is empty (0 bytes): {shown}", code="image_empty")
    walked = walk(data)
    if isinstance(walked, Corrupt):
        raise ImageError(f"image file is corrupt or truncated: {shown} ({walked.reason})", code="image_corrupt")
    if walked is not None:
        mime, width, height = walked
        if width * height > max_pixels:
            raise _too_many_pixels(shown, width, height, max_pixels)
        if verify == "quick" and len(data) <= max_bytes and width * height <= 2 * _pillow_max_pixels():
            return EncodedImage(data, mime, width, height, None)
    with decoding(shown), Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        if width * height > max_pixels:
            raise _too_many_pixels(shown, width, height, max_pixels)
        fmt = im.format or "unknown"
        frames: int = getattr(im, "n_frames", 1)
        sendable = fmt in _SENDABLE and not (fmt == "GIF" and frames > 1)
        if sendable and len(data) <= max_bytes:
            if fmt in ("JPEG", "MPO"):
                # Decoding at 1/8 scale still reads every byte of the stream: enough to verify it.
                im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
            im.load()
            return EncodedImage(data, _SENDABLE[fmt], width, height, None)
        im.seek(0)
        im.load()
        with _encoding(shown, fmt, im.mode):
            if sendable:
                return _shrink_to_jpeg(im, max_bytes, f"re-encoded {fmt}")
            frame = _png_compatible(im)
            what = f"converted {fmt}" + (f" (frame 1 of {frames})" if frames > 1 else "")
            png = _encode(frame, "PNG")
            if len(png) <= max_bytes:
                return EncodedImage(png, "image/png", width, height, f"{what} to PNG")
            return _shrink_to_jpeg(frame, max_bytes, what)


def to_data_url(img: EncodedImage) -> str:
    """``data:<mime>;base64,<data>``, the form an ``image_url`` part takes inline."""
    return data_url_bytes(img).decode("ascii")


def data_url_bytes(img: EncodedImage) -> bytes:
    """:func:`to_data_url` as ASCII bytes, made in one copy (no str round trip for megabytes)."""
    return b"".join((b"data:", img.mime.encode("ascii"), b";base64,", binascii.b2a_base64(img.data, newline=False)))


def _too_many_pixels(shown: str, width: int, height: int, max_pixels: int) -> ImageError:
    return ImageError(
        f"image {shown} is {width}x{height} ({width * height:,} pixels), over the limit of "
        f"{max_pixels:,} pixels: not decoded",
        code="image_too_large",
    )


def _pillow_max_pixels() -> int:
    # Pillow's own limit can be changed at run time; above twice it, Pillow refuses to open.
    return int(Image.MAX_IMAGE_PIXELS or MAX_PIXELS)


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of a sendable image from its first bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _shrink_to_jpeg(im: Image.Image, max_bytes: int, what: str) -> EncodedImage:
    """JPEG at full size if that fits, else downscaled until it does."""
    src = _flatten_to_rgb(im)
    width, height = src.size
    limit = _describe_bytes(max_bytes)
    scale = 1.0
    for _ in range(_MAX_SHRINK_STEPS):
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        candidate = src if size == src.size else src.resize(size, Image.Resampling.LANCZOS)
        data = _encode(candidate, "JPEG", quality=JPEG_QUALITY)
        if len(data) <= max_bytes:
            if size == src.size:
                note = f"{what} to JPEG to fit {limit}"
            else:
                note = f"{what}, downscaled {width}x{height} to {size[0]}x{size[1]} JPEG to fit {limit}"
            return EncodedImage(data, "image/jpeg", size[0], size[1], note)
        # JPEG size grows about with the pixel count: shrink the sides by the square root.
        scale *= min(0.9, max(0.25, 0.95 * math.sqrt(max_bytes / len(data))))
    raise ImageError(f"{what}: cannot make it fit {limit}", code="image_too_large")


def _png_compatible(im: Image.Image) -> Image.Image:
    """``im`` in a mode PNG can store; 32-bit integer and float images are stretched to 8-bit grey."""
    if im.mode in _PNG_MODES:
        return im
    if im.mode.startswith("I;16"):
        return im.convert("I").convert("I;16")
    if im.mode in ("I", "F"):
        lo, hi = cast(tuple[float, float], im.getextrema())
        scale = 255 / (hi - lo) if hi > lo else 1.0
        return im.point(lambda v: v * scale - lo * scale).convert("L")
    return im.convert("RGBA" if _has_alpha(im) else "RGB")


def _flatten_to_rgb(im: Image.Image) -> Image.Image:
    """An image JPEG can hold: grey or RGB, transparency composited onto white."""
    if im.mode in ("L", "RGB"):
        return im
    if not _has_alpha(im):
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def _has_alpha(im: Image.Image) -> bool:
    return "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info


def _encode(im: Image.Image, fmt: str, **params: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _describe_bytes(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MB" if n % mib == 0 else f"{n:,} bytes"


@contextmanager
def _encoding(shown: str, fmt: str, mode: str) -> Iterator[None]:
    """A decoded image Pillow cannot convert or write is unsupported, not corrupt."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise ImageError(
            f"cannot convert {fmt} image (mode {mode}) {shown} to a format the service accepts: {exc}",
            code="image_unsupported",
        ) from exc
