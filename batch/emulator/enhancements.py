"""The legacy gpt-4 ``vision-preview`` enhancement route: OCR and grounding on one image.

``POST /openai/deployments/{dep}/extensions/chat/completions?api-version=2023-12-01-preview``
takes a normal chat body plus::

    "enhancements": {"ocr": {"enabled": true}, "grounding": {"enabled": true}},
    "dataSources": [{"type": "AzureComputerVision", "parameters": {"endpoint": "...", "key": "..."}}]

and goes through the chat pipeline (``chat.py``: auth, parsing, faults, admission, billing,
latency) with three additions:

* ``parse_enhancements`` checks the extra fields before any image is fetched. Every one of
  these is a 400: a deployment whose model is not gpt-4 ``vision-preview`` (whatever the body
  holds), an enhancement enabled under an api-version outside 2023-12-01-preview ..
  2024-03-01-preview (2024-04-01-preview removed them), an enhancement enabled without an
  ``AzureComputerVision`` data source with a non-empty ``parameters.endpoint`` and
  ``parameters.key``, any other data source type, an unknown (or ``video``) enhancement, or an
  enhancement enabled on a request with more than one image;
* with an enhancement on, the image is OCR'd (``ocr.OcrEngine``) after admission, and the
  answer carries what was read: after the image fragment, ``"\\nText in the image:\\n"`` and
  every OCR line followed by ``"\\n"``, then the usual filler (``answers``);
* ``decorate`` gives the reply its legacy shape. ``finish_details`` is the object form,
  ``{"type": "stop", "stop": "<|fim_suffix|>"}`` or ``{"type": "max_tokens"}``, and
  ``finish_reason`` carries the same object, as Azure's enhanced-output example does. With
  grounding on, ``choices[0].enhancements.grounding.lines`` holds one ``{text, spans}`` per OCR
  line, one span per word: ``{text, offset, length, polygon}``, where ``offset`` and
  ``length`` count Unicode code points into ``choices[0].message.content`` and ``polygon`` is
  the word's box in the image's pixels, four ``{x, y}`` floats clockwise from the top-left.
  An answer cut by ``max_tokens`` keeps only the spans wholly inside it; a line left without
  spans is dropped.

The Computer Vision resource named in ``dataSources`` is never called (the emulator OCRs the
image itself), and the OCR text does not add to the prompt tokens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

from .errors import ApiError, bad_request
from .images import decode_data_url, fetch_image, invalid_image
from .models import ModelRules
from .ocr import OcrUnavailable, Page
from .parsing import ChatRequest, ImageRef
from .state import EmulatorState

__all__ = ["Enhancements", "answer_block", "decorate", "parse_enhancements", "read_image"]

VISION_PREVIEW = "gpt-4-vision-preview"
CV_SOURCE = "AzureComputerVision"
OCR_HEADING = "\nText in the image:\n"
NO_TEXT = "\nNo text found in the image.\n"
STOP_TOKEN = "<|fim_suffix|>"
_UNSUPPORTED = "Enhancements are not supported for this model/API version"
#: api-versions that carried enhancements: from 2023-12-01-preview until 2024-04-01-preview.
_FIRST, _REMOVED = "2023-12-01", "2024-04-01"


@dataclass(frozen=True, slots=True)
class Enhancements:
    ocr: bool = False
    grounding: bool = False

    @property
    def enabled(self) -> list[str]:
        return [name for name, on in (("ocr", self.ocr), ("grounding", self.grounding)) if on]

    @property
    def active(self) -> bool:
        return self.ocr or self.grounding


def parse_enhancements(body: object, rules: ModelRules, chat: ChatRequest, api_version: str | None) -> Enhancements:
    """Check the extensions route's extra fields (see the module docstring); raises a 400."""
    if rules.family != VISION_PREVIEW:
        raise bad_request(
            "BadRequest",
            f"{_UNSUPPORTED}: this deployment's model ({rules.family}) is not gpt-4 vision-preview, "
            "the only model that takes enhancements on the extensions route.",
        )
    data = cast(dict[str, Any], body)  # parse_chat_body has checked it is an object
    wanted = _flags(data.get("enhancements"))
    sources = _data_sources(data.get("dataSources"))
    if not wanted.active:
        return wanted
    version = api_version or ""
    if not (version.endswith("-preview") and _FIRST <= version[:10] < _REMOVED):
        raise bad_request(
            "BadRequest",
            f"{_UNSUPPORTED}: api-version {version} has no enhancements (they exist from "
            "2023-12-01-preview until 2024-04-01-preview removed them).",
            param="enhancements",
        )
    if CV_SOURCE not in sources:
        raise bad_request(
            "BadRequest",
            f"Enhancements require a dataSources entry of type '{CV_SOURCE}' with parameters.endpoint "
            "and parameters.key (an Azure AI Vision resource).",
            param="dataSources",
        )
    if len(chat.images) > 1:
        raise bad_request(
            "BadRequest",
            f"Enhancements can't be applied to more than one image; this request has {len(chat.images)}.",
            param="messages",
        )
    return wanted


def _flags(value: object) -> Enhancements:
    if value is None:
        return Enhancements()
    if not isinstance(value, dict):
        raise bad_request("invalid_type", "Invalid type for 'enhancements': expected an object.", param="enhancements")
    table = cast(dict[str, Any], value)
    flags: dict[str, bool] = {}
    for name, setting in table.items():
        where = f"enhancements.{name}"
        if name == "video":
            raise bad_request(
                "BadRequest",
                "The video enhancement needs an AzureComputerVisionVideoIndex data source, which the "
                "emulator does not support.",
                param=where,
            )
        if name not in ("ocr", "grounding"):
            raise bad_request(
                "invalid_value", f"Unrecognized enhancement {name!r}; supported: 'ocr', 'grounding'.", param=where
            )
        if not isinstance(setting, dict):
            raise bad_request("invalid_type", f"Invalid type for '{where}': expected an object.", param=where)
        enabled = cast(dict[str, Any], setting).get("enabled", False)
        if not isinstance(enabled, bool):
            raise bad_request(
                "invalid_type", f"Invalid type for '{where}.enabled': expected a boolean.", param=f"{where}.enabled"
            )
        flags[name] = enabled
    return Enhancements(**flags)


def _data_sources(value: object) -> list[str]:
    """The types of valid data sources (400 for a malformed or unsupported one)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("invalid_type", "Invalid type for 'dataSources': expected an array.", param="dataSources")
    types: list[str] = []
    for i, source in enumerate(cast(list[object], value)):
        where = f"dataSources[{i}]"
        if not isinstance(source, dict):
            raise bad_request("invalid_type", f"Invalid type for '{where}': expected an object.", param=where)
        table = cast(dict[str, Any], source)
        kind = table.get("type")
        if kind != CV_SOURCE:
            raise bad_request(
                "BadRequest",
                f"Unsupported data source type {kind!r}: the emulator's extensions route supports only '{CV_SOURCE}'.",
                param=f"{where}.type",
            )
        params = table.get("parameters")
        if not isinstance(params, dict):
            raise bad_request(
                "missing_required_parameter",
                f"Missing required parameter: '{where}.parameters' (endpoint and key).",
                param=f"{where}.parameters",
            )
        for name in ("endpoint", "key"):
            field = cast(dict[str, Any], params).get(name)
            if not isinstance(field, str) or not field.strip():
                raise bad_request(
                    "missing_required_parameter",
                    f"Missing required parameter: '{where}.parameters.{name}' (a non-empty string).",
                    param=f"{where}.parameters.{name}",
                )
        types.append(kind)
    return types


async def read_image(state: EmulatorState, ref: ImageRef) -> Page:
    """OCR the request's image (decoded again, or fetched again: the pipeline keeps no bytes)."""
    param = f"{ref.param}.url"
    if ref.source == "data":
        data = decode_data_url(ref.url, param=param)
    else:
        data = await fetch_image(await state.http(), ref.url, param=param)
    try:
        return await state.ocr().read(data, digest=hashlib.sha256(data).hexdigest())
    except ValueError as exc:
        raise invalid_image(param=param) from exc
    except OcrUnavailable as exc:
        raise ApiError(500, "InternalServerError", f"The emulator cannot run OCR: {exc}") from exc


def answer_block(page: Page | None) -> str:
    """What the answer says about the image's text (``""`` when there is no image)."""
    if page is None:
        return ""
    lines = page.lines
    if not lines:
        return NO_TEXT
    return OCR_HEADING + "".join(line.text + "\n" for line in lines)


def decorate(body: dict[str, Any], wanted: Enhancements, page: Page | None, full_text: str, finish_reason: str) -> None:
    """Give a completion body the legacy shape: object ``finish_details`` (and ``finish_reason``),
    and grounding lines when asked for. ``full_text`` is the untruncated answer."""
    choice = body["choices"][0]
    details: dict[str, str] = (
        {"type": "stop", "stop": STOP_TOKEN} if finish_reason == "stop" else {"type": "max_tokens"}
    )
    choice["finish_details"] = details
    choice["finish_reason"] = dict(details)
    if wanted.grounding:
        content = choice["message"]["content"]
        choice["enhancements"] = {"grounding": {"lines": _grounding(page, full_text, content)}}


def _grounding(page: Page | None, full_text: str, content: str) -> list[dict[str, Any]]:
    if page is None or not page.lines:
        return []
    start = full_text.find(OCR_HEADING)
    if start < 0:  # cannot happen: the block is always in the answer
        return []
    offset = start + len(OCR_HEADING)
    grounded: list[dict[str, Any]] = []
    for line in page.lines:
        spans: list[dict[str, Any]] = []
        cursor = offset
        for word in line.words:
            if cursor + len(word.text) <= len(content):
                polygon = [{"x": float(x), "y": float(y)} for x, y in word.box.corners()]
                spans.append({"text": word.text, "offset": cursor, "length": len(word.text), "polygon": polygon})
            cursor += len(word.text) + 1  # the words of a line are joined by one space
        if spans:
            grounded.append({"text": line.text, "spans": spans})
        offset += len(line.text) + 1  # and each line ends with "\n"
    return grounded
