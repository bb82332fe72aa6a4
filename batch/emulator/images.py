"""Turning an ``image_url`` into facts: raw bytes -> size, format, identity.

The emulator never decodes pixels: Pillow's ``Image.open`` reads only the header, and
``verify()`` walks the file's structure (chunk CRCs for PNG) without decoding it. Results are
cached by the bytes' sha256, so a benchmark that sends the same few images thousands of times
pays for Pillow once per image. Data URLs are decoded here; http(s) URLs are fetched through
the app's shared ``aiohttp.ClientSession``.
"""

from __future__ import annotations

import binascii
import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
from PIL import Image, UnidentifiedImageError

from .errors import ApiError, bad_request

__all__ = ["ImageInfo", "ImageInspector", "MAX_IMAGE_BYTES", "SUPPORTED_FORMATS", "decode_data_url"]

#: Largest accepted image (raw bytes), as the service documents: 20 MB.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Pillow format names accepted: PNG, JPEG, WEBP and non-animated GIF.
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF"})
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=10.0)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the emulator knows about one received image."""

    sha256: str
    width: int
    height: int
    format: str
    nbytes: int


def invalid_image(message: str = "Invalid image data", *, param: str | None = None) -> ApiError:
    return bad_request("invalid_image", message, param=param)


def decode_data_url(url: str, *, param: str | None = None) -> bytes:
    """Bytes of a ``data:<mime>;base64,<payload>`` URL; malformed -> 400 ``invalid_image``."""
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise invalid_image(
            "Invalid image data: expected a data URL of the form data:<mime>;base64,<data>", param=param
        )
    if len(payload) > (MAX_IMAGE_BYTES * 4) // 3 + 8:
        raise _too_large(param)
    try:
        # Strict: characters outside the base64 alphabet (newlines included) are an error.
        return binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_image(param=param) from exc


def _too_large(param: str | None) -> ApiError:
    return bad_request(
        "image_too_large",
        f"Image exceeds the maximum size of {MAX_IMAGE_BYTES // (1024 * 1024)} MB.",
        param=param,
    )


class ImageInspector:
    """Identifies images, with two small LRU caches.

    ``by_digest`` (sha256 of the bytes -> facts or error) saves Pillow work on repeated images.
    ``by_url`` (the whole data URL string -> facts) also saves the base64 decode and the hash,
    the two biggest per-request costs of a data URL; it is bounded by total characters so it
    never pins more than ``url_cache_chars`` of strings.
    """

    def __init__(self, cache_size: int = 1024, url_cache_chars: int = 32 * 1024 * 1024) -> None:
        self._cache: OrderedDict[str, ImageInfo | ApiError] = OrderedDict()
        self._cache_size = cache_size
        self._by_url: OrderedDict[str, ImageInfo] = OrderedDict()
        self._by_url_chars = 0
        self._url_cache_chars = url_cache_chars

    def inspect_data_url(self, url: str, *, param: str | None = None) -> ImageInfo:
        """Facts about a data URL's image (decoding it only on a cache miss)."""
        info = self._by_url.get(url)
        if info is not None:
            self._by_url.move_to_end(url)
            return info
        info = self.inspect(decode_data_url(url, param=param), param=param)
        if len(url) <= self._url_cache_chars // 4:
            self._by_url[url] = info
            self._by_url_chars += len(url)
            while self._by_url_chars > self._url_cache_chars:
                evicted, _ = self._by_url.popitem(last=False)
                self._by_url_chars -= len(evicted)
        return info

    def inspect(self, data: bytes, *, param: str | None = None) -> ImageInfo:
        """Size/format/digest of ``data``; raises a 400 ``ApiError`` for bad or unsupported bytes."""
        if len(data) > MAX_IMAGE_BYTES:
            raise _too_large(param)
        if not data:
            raise invalid_image(param=param)
        digest = hashlib.sha256(data).hexdigest()
        cached = self._cache.get(digest)
        if cached is None:
            cached = self._identify(data, digest)
            self._cache[digest] = cached
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(digest)
        if isinstance(cached, ApiError):
            # A fresh error each time: ApiError objects carry per-request state when raised.
            raise ApiError(cached.status, cached.code, cached.message, extra={**cached.extra, "param": param})
        return cached

    @staticmethod
    def _identify(data: bytes, digest: str) -> ImageInfo | ApiError:
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = (img.format or "").upper()
                width, height = img.size
                animated = False
                if fmt == "GIF":
                    # Counting frames moves the file pointer; verify on a fresh handle below.
                    animated = bool(getattr(img, "is_animated", False))
                elif fmt in SUPPORTED_FORMATS:
                    img.verify()  # header and size reads do not load pixels, so verify still may run
            if fmt == "GIF" and not animated:
                with Image.open(io.BytesIO(data)) as img:
                    img.verify()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # The warning only arrives here when warnings are errors (as under pytest).
            return invalid_image("Invalid image data: image dimensions are too large")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            return invalid_image()
        if fmt not in SUPPORTED_FORMATS or animated:
            what = "animated GIF" if animated else (fmt or "unknown")
            return bad_request(
                "invalid_image_format",
                f"Unsupported image format ({what}). Supported formats are PNG, JPEG, WEBP and non-animated GIF.",
            )
        return ImageInfo(sha256=digest, width=width, height=height, format=fmt, nbytes=len(data))


async def fetch_image(session: aiohttp.ClientSession, url: str, *, param: str | None = None) -> bytes:
    """GET an http(s) image URL; any failure -> 400 ``invalid_image_url``, >20 MB -> 400."""
    try:
        async with session.get(url, timeout=_FETCH_TIMEOUT, allow_redirects=True) as resp:
            if resp.status != 200:
                raise _fetch_failed(url, f"HTTP {resp.status}", param)
            if resp.content_length is not None and resp.content_length > MAX_IMAGE_BYTES:
                raise _too_large(param)
            chunks: list[bytes] = []
            total = 0
            async for chunk in resp.content.iter_chunked(256 * 1024):
                total += len(chunk)
                if total > MAX_IMAGE_BYTES:
                    raise _too_large(param)
                chunks.append(chunk)
            return b"".join(chunks)
    except ApiError:
        raise
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise _fetch_failed(url, type(exc).__name__, param) from exc


def _fetch_failed(url: str, reason: str, param: str | None) -> ApiError:
    # Drop the query string: it may hold a SAS token, which must not be echoed back.
    shown = url.split("?", 1)[0]
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return bad_request("invalid_image_url", f"Error while downloading {shown} ({reason}).", param=param)
