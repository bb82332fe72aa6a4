"""Validating a chat-completions body the way the service does, without touching images.

``parse_chat_body`` checks the JSON structure and returns a ``ChatRequest``: the texts the
service tokenizes (roles, names, message texts), user texts, image references (URL + detail, not
yet fetched) and the max-tokens field. Counting needs the deployment's encoding, so it happens
later (``ChatRequest.text_tokens``).
Model-specific checks (image-count limit, ``max_tokens`` on o-series) need the deployment's
rules and live in ``check_against_model``. Error messages name the offending value and
parameter path, as the real service does (``messages[0].content[1].image_url.detail``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from .errors import bad_request
from .models import ModelRules
from .structured import ResponseFormat, parse_response_format
from .tokens import REPLY_PRIMING, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, Tokenizer

__all__ = ["ChatRequest", "ImageRef", "check_against_model", "parse_chat_body"]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
DETAILS = ("low", "high", "auto")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An ``image_url`` part as sent: where the image is and which detail was asked for."""

    url: str
    detail: str
    param: str  # JSON path of the part, for error messages

    @property
    def source(self) -> str:
        return "data" if self.url[:5].lower() == "data:" else "url"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str | None
    messages: int
    names: int  # messages carrying a ``name``
    counted_texts: list[str]  # every role, name and text the tokenizer sees, in order
    user_texts: list[str]
    images: list[ImageRef]
    max_tokens_field: str | None  # "max_tokens", "max_completion_tokens" or None
    max_tokens: int | None
    response_format: ResponseFormat | None = None

    def text_tokens(self, tokenizer: Tokenizer) -> int:
        """Prompt tokens of the text: framing per message and name, reply priming, every text, and
        a response_format's schema (its compact JSON; see ``structured``). Image parts are not
        included (they cost image tokens)."""
        framing = REPLY_PRIMING + TOKENS_PER_MESSAGE * self.messages + TOKENS_PER_NAME * self.names
        schema = tokenizer.count(self.response_format.schema_text) if self.response_format else 0
        return framing + sum(tokenizer.count(text) for text in self.counted_texts) + schema


def parse_chat_body(body: object) -> ChatRequest:
    """Validate the body's structure; raises a 400 ``ApiError`` naming what is wrong."""
    if not isinstance(body, dict):
        raise bad_request("invalid_type", "The request body must be a JSON object.")
    data = cast(dict[str, Any], body)
    if data.get("stream"):
        raise bad_request("unsupported_value", "The emulator does not support stream=true.", param="stream")
    n = data.get("n", 1)
    if n is not None and n != 1:
        raise bad_request("unsupported_value", f"The emulator only supports n=1, got {n!r}.", param="n")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request("invalid_type", "Invalid type for 'model': expected a string.", param="model")
    messages = data.get("messages")
    if messages is None:
        raise bad_request("missing_required_parameter", "Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "invalid_type", "Invalid 'messages': expected a non-empty array of messages.", param="messages"
        )
    counted: list[str] = []
    user_texts: list[str] = []
    images: list[ImageRef] = []
    names = 0
    for i, message in enumerate(cast(list[object], messages)):
        names += _parse_message(message, f"messages[{i}]", counted, user_texts, images)
    field, limit = _max_tokens(data)
    fmt = parse_response_format(data, counted)
    return ChatRequest(model, len(messages), names, counted, user_texts, images, field, limit, fmt)


def _parse_message(
    message: object, where: str, counted: list[str], user_texts: list[str], images: list[ImageRef]
) -> int:
    """Check one message, collecting its texts; returns 1 if it has a ``name``, else 0."""
    if not isinstance(message, dict):
        raise bad_request("invalid_type", f"Invalid type for '{where}': expected an object.", param=where)
    msg = cast(dict[str, Any], message)
    role = msg.get("role")
    if role not in ROLES:
        raise bad_request(
            "invalid_value",
            f"Invalid value: {role!r}. Supported values are: {', '.join(repr(r) for r in sorted(ROLES))}.",
            param=f"{where}.role",
        )
    counted.append(str(role))
    name = msg.get("name")
    has_name = isinstance(name, str)
    if isinstance(name, str):
        counted.append(name)
    content = msg.get("content")
    if content is None:
        if role != "assistant":
            raise bad_request(
                "invalid_type", f"Invalid 'content' in '{where}': expected a string or an array.",
                param=f"{where}.content",
            )  # fmt: skip
        return int(has_name)
    if isinstance(content, str):
        if role == "user":
            user_texts.append(content)
        counted.append(content)
        return int(has_name)
    if not isinstance(content, list):
        raise bad_request(
            "invalid_type",
            f"Invalid type for '{where}.content': expected a string or an array of content parts.",
            param=f"{where}.content",
        )
    for j, part in enumerate(cast(list[object], content)):
        _parse_part(part, f"{where}.content[{j}]", str(role), where, counted, user_texts, images)
    return int(has_name)


def _parse_part(
    part: object,
    where: str,
    role: str,
    message_where: str,
    counted: list[str],
    user_texts: list[str],
    images: list[ImageRef],
) -> None:
    if not isinstance(part, dict):
        raise bad_request("invalid_type", f"Invalid type for '{where}': expected an object.", param=where)
    p = cast(dict[str, Any], part)
    kind = p.get("type")
    if kind == "text":
        text = p.get("text")
        if not isinstance(text, str):
            raise bad_request(
                "invalid_type", f"Invalid type for '{where}.text': expected a string.", param=f"{where}.text"
            )
        if role == "user":
            user_texts.append(text)
        counted.append(text)
        return
    if kind == "image_url":
        if role != "user":
            raise bad_request(
                "invalid_value",
                f"Invalid '{message_where}'. Image URLs are only allowed for messages with role 'user', "
                f"but this message with role '{role}' contains an image URL.",
                param=message_where,
            )
        images.append(_parse_image_url(p.get("image_url"), f"{where}.image_url"))
        return
    raise bad_request(
        "invalid_value",
        f"Invalid value: {kind!r}. Supported values are: 'text' and 'image_url'.",
        param=f"{where}.type",
    )


def _parse_image_url(value: object, where: str) -> ImageRef:
    if not isinstance(value, dict):
        raise bad_request("invalid_type", f"Invalid type for '{where}': expected an object.", param=where)
    obj = cast(dict[str, Any], value)
    url = obj.get("url")
    if not isinstance(url, str) or not url:
        raise bad_request(
            "invalid_type",
            f"Invalid type for '{where}.url': expected a non-empty string.",
            param=f"{where}.url",
        )
    detail = obj.get("detail", "auto")
    if detail is None:
        detail = "auto"
    if detail not in DETAILS:
        raise bad_request(
            "invalid_value",
            f"Invalid value: {detail!r}. Supported values are: 'low', 'high', and 'auto'.",
            param=f"{where}.detail",
        )
    if not url[:8].lower().startswith(("data:", "http://", "https://")):
        raise bad_request(
            "invalid_image_url",
            "Invalid image URL: expected an http(s) URL or a data URL (data:<mime>;base64,<data>).",
            param=f"{where}.url",
        )
    return ImageRef(url=url, detail=str(detail), param=where)


def _max_tokens(data: dict[str, Any]) -> tuple[str | None, int | None]:
    present = [f for f in ("max_tokens", "max_completion_tokens") if data.get(f) is not None]
    if len(present) == 2:
        raise bad_request(
            "invalid_request_error",
            "max_tokens and max_completion_tokens cannot both be set; use max_completion_tokens.",
            param="max_tokens",
        )
    if not present:
        return None, None
    field = present[0]
    value = data[field]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("invalid_value", f"Invalid '{field}': expected an integer >= 1, got {value!r}.", param=field)
    return field, value


def check_against_model(request: ChatRequest, rules: ModelRules) -> None:
    """The per-model checks: ``max_tokens`` on o-series/gpt-5 and the image-count limit."""
    if rules.rejects_max_tokens and request.max_tokens_field == "max_tokens":
        raise bad_request(
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            param="max_tokens",
        )
    if len(request.images) > rules.max_images:
        raise bad_request(
            "BadRequest", f"Exceeded maximum number of images ({rules.max_images}) allowed in the request."
        )
