"""Reading an Azure AI Vision Image Analysis 4.0 request: query, body and image checks.

Errors are the Vision service's 400s, ``{"error": {"code": "InvalidRequest", "message",
"innererror": {"code", "message"}}}``, with these inner codes:

* ``InvalidArgument``: ``features`` missing or empty, or a multipart body without a part;
* ``NotSupportedFeature``: a feature other than ``read`` (the emulator implements only that one);
* ``NotSupportedLanguage``: a ``language`` without installed Tesseract data (``en`` always works);
* ``InvalidContentType``: a body that is not ``application/octet-stream``, ``multipart/form-data``
  or ``application/json`` (a request without a Content-Type counts as raw bytes);
* ``InvalidImageUrl``: a JSON body without a ``url``, a URL that is neither a data URL nor
  http(s), or an http(s) URL that cannot be downloaded (it is fetched as the service would, with
  the app's shared session: on these machines only loopback servers answer);
* ``InvalidImageSize``: zero bytes, more than 20,971,520 bytes, or a side outside 50..16000 px;
* ``InvalidImageFormat``: not an image, or a format the service does not take (it takes JPEG,
  PNG, GIF, BMP, WEBP, ICO, TIFF and MPO; only the first frame is read).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import BodyPartReader, ClientSession, web
from PIL import Image, UnidentifiedImageError

from .errors import ApiError
from .images import ImageInfo, decode_data_url, fetch_image
from .ocr import LANGUAGES, find_tessdata

__all__ = [
    "API_VERSIONS",
    "MAX_IMAGE_BYTES",
    "VisionQuery",
    "identify",
    "invalid",
    "parse_query",
    "read_body",
]

#: The Image Analysis 4.0 GA versions served.
API_VERSIONS = frozenset({"2023-10-01", "2024-02-01"})
#: The service's documented maximum: 20 MB.
MAX_IMAGE_BYTES = 20_971_520
MIN_SIDE, MAX_SIDE = 50, 16000
FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"})
#: Every Image Analysis 4.0 feature; only ``read`` is implemented.
KNOWN_FEATURES = ("tags", "caption", "denseCaptions", "objects", "read", "smartCrops", "people")


def invalid(inner_code: str, message: str) -> ApiError:
    """A Vision 400: ``InvalidRequest`` with the specific reason in ``innererror``."""
    return ApiError(400, "InvalidRequest", message, extra={"innererror": {"code": inner_code, "message": message}})


@dataclass(frozen=True, slots=True)
class VisionQuery:
    features: list[str]
    language: str  # ISO 639-1, as asked (default "en")
    tess_lang: str  # Tesseract's name for it


def parse_query(query: Mapping[str, str]) -> VisionQuery:
    """Check ``features`` and ``language``; raises a Vision 400."""
    raw = query.get("features", "")
    features = [f.strip() for f in raw.split(",") if f.strip()]
    if not features:
        raise invalid("InvalidArgument", "The 'features' query parameter is required, e.g. features=read.")
    known = {f.lower(): f for f in KNOWN_FEATURES}
    for feature in features:
        name = known.get(feature.lower())
        if name is None:
            raise invalid(
                "NotSupportedFeature",
                f"Feature '{feature}' is not supported; features: {', '.join(KNOWN_FEATURES)}.",
            )
        if name != "read":
            raise invalid(
                "NotSupportedFeature",
                f"Feature '{name}' is not supported by the emulator, which implements only 'read'.",
            )
    language = query.get("language", "en").strip() or "en"
    tess_lang = LANGUAGES.get(language.lower())
    if tess_lang is None or find_tessdata(tess_lang) is None:
        installed = sorted(code for code, name in LANGUAGES.items() if find_tessdata(name) is not None)
        raise invalid(
            "NotSupportedLanguage",
            f"Language '{language}' is not supported; supported: {', '.join(installed) or 'none'}.",
        )
    return VisionQuery(["read"], language.lower(), tess_lang)


async def read_body(request: web.Request, http: Callable[[], Awaitable[ClientSession]]) -> tuple[bytes, str]:
    """The image bytes and where they came from: ``octet-stream``, ``multipart``, ``data`` or ``url``
    (``http`` gives the session an http(s) image URL is downloaded with)."""
    content_type = request.content_type  # aiohttp reports application/octet-stream when absent
    if content_type == "application/octet-stream":
        return await request.read(), "octet-stream"
    if content_type == "multipart/form-data":
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader):
            raise invalid("InvalidArgument", "The multipart body holds no image part.")
        return bytes(await part.read(decode=True)), "multipart"
    if content_type == "application/json":
        url = _url(await request.read())
        if url[:8].lower().startswith(("http://", "https://")):
            try:
                return await fetch_image(await http(), url), "url"
            except ApiError as exc:  # the chat side's error, in the Vision service's shape
                raise invalid("InvalidImageUrl", exc.message) from exc
        return _from_data_url(url), "data"
    raise invalid(
        "InvalidContentType",
        f"Content type '{content_type}' is not supported; send application/octet-stream, "
        "multipart/form-data or application/json with a url.",
    )


def _url(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("InvalidImageUrl", 'The JSON body could not be parsed; expected {"url": "..."}.') from exc
    url = cast(dict[str, Any], body).get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise invalid("InvalidImageUrl", "The JSON body must be an object with a non-empty 'url' string.")
    return url


def _from_data_url(url: str) -> bytes:
    if not url[:5].lower().startswith("data:"):
        raise invalid("InvalidImageUrl", "Image URL is badly formatted.")
    if len(url) > (MAX_IMAGE_BYTES * 4) // 3 + 1024:
        raise _size(f"The image is larger than the maximum of {MAX_IMAGE_BYTES:,} bytes.")
    try:
        return decode_data_url(url)
    except ApiError as exc:
        raise invalid("InvalidImageUrl", "The data URL is malformed; expected data:<mime>;base64,<data>.") from exc


def identify(data: bytes) -> ImageInfo:
    """Size, format and digest of an image the service would take; raises a Vision 400."""
    if not data:
        raise _size("The image is empty (0 bytes).")
    if len(data) > MAX_IMAGE_BYTES:
        raise _size(f"The image is {len(data):,} bytes; the maximum is {MAX_IMAGE_BYTES:,} bytes.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = (img.format or "").upper()
                width, height = img.size
    except Image.DecompressionBombError as exc:
        raise _size("The image has too many pixels to be decoded.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _format("The input data is not a valid image.") from exc
    if fmt not in FORMATS:
        raise _format(f"Image format {fmt or 'unknown'} is not supported; use JPEG, PNG, GIF, BMP, WEBP, ICO or TIFF.")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise _size(
            f"The image is {width}x{height} pixels; both sides must be between {MIN_SIDE} and {MAX_SIDE:,} pixels."
        )
    return ImageInfo(hashlib.sha256(data).hexdigest(), width, height, fmt, len(data))


def _size(message: str) -> ApiError:
    return invalid("InvalidImageSize", message)


def _format(message: str) -> ApiError:
    return invalid("InvalidImageFormat", message)
