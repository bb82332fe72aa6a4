"""Compose one planned request's chat-completions body and its token estimate.

The body follows the documented shape exactly: an optional system message, then one user message
whose content is ``[{"type": "text"}, {"type": "image_url", "image_url": {"url", "detail"}}]``; an
image with a label (a video frame's ``t=12.0s``) has its own text part just before it.
Local files go as ``data:<mime>;base64,...``; http(s) and data URLs pass through untouched.
An inline image (megabytes of base64) is never run through the JSON encoder: the body is encoded
with a placeholder and the ASCII data URL spliced in: joined, never scanned for escapes or re-encoded.
``max_completion_tokens`` replaces ``max_tokens`` for o-series and gpt-5 models. With a schema or
JSON mode the body carries ``response_format`` (:func:`~.schema_check.response_format`), and the
schema's tokens count as prompt text in the estimate, as in the plan's.
What a row sends is decided by the plan (:mod:`.planner`); this module only writes it down.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..core import Estimate, JobSpec, ModelInfo, RowError, WorkItem
from ..tokens import chat_prompt_tokens, count_text
from .load import ImageRef, load_requests
from .planner import Planner, image_token_counter
from .request import Refusal, RequestPlan
from .schema_check import format_tokens, response_format

# Stands in for an inline image while the body is JSON-encoded (random: no prompt can contain it).
_SLOT = f"\x00image-{secrets.token_hex(8)}\x00"
_SLOT_JSON = json.dumps(_SLOT).encode("ascii")


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    body: bytes
    estimate: Estimate
    detail: str
    image_note: str | None

    @property
    def size_estimate(self) -> int:
        """The request as a character-based admission estimator sees it: body bytes / 4 + max output."""
        return len(self.body) // 4 + self.estimate.max_output_tokens


class RequestBuilder:
    """Builds request bodies for one job. Stateless per row; safe to call from worker threads."""

    def __init__(self, spec: JobSpec, model: ModelInfo, model_in_body: str | None) -> None:
        self._spec = spec
        self._model = model
        self._model_in_body = model_in_body
        self._planner = Planner(spec, model)
        self._image_tokens = image_token_counter(model)
        fmt = spec.output.format
        self._response_format = response_format(fmt) if fmt is not None else None
        self._format_tokens = format_tokens(fmt, model.tokenizer)

    def build(self, item: WorkItem) -> PreparedRequest:
        """The one request of an image row (no OCR), planned and loaded here; RowError if refused."""
        plan, data = self._planner.plan_and_read(item)
        if isinstance(plan, Refusal):
            raise plan.error()
        pages = next(load_requests(plan, self._spec, data))
        return self.compose(plan, [p.ref for p in pages], note=pages[0].note)

    def compose(
        self,
        plan: RequestPlan,
        images: list[ImageRef],
        *,
        extra_text: str | None = None,
        extra_body: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> PreparedRequest:
        """One request: the prompt (plus ``extra_text``, e.g. an OCR hint) as a single text part,
        then the images in order; ``extra_body`` adds top-level fields (the legacy enhancements).
        The estimate is the request's as sent: the images' actual sizes, the hint's text."""
        spec = self._spec
        if len(images) > self._model.max_images:
            raise RowError(
                f"{len(images)} images exceed the limit of {self._model.max_images} per request for {self._model.name}",
                code="too_many_images",
            )
        user_text = f"{plan.user_text}\n\n{extra_text}" if extra_text else plan.user_text
        content: list[dict[str, Any]] = [{"type": "text", "text": user_text}]
        inline = [im.url for im in images if isinstance(im.url, bytes)]
        for im in images:
            if im.label is not None:  # a video frame's time, as its own text part just before it
                content.append({"type": "text", "text": im.label})
            url = _SLOT if isinstance(im.url, bytes) else im.url
            content.append({"type": "image_url", "image_url": {"url": url, "detail": plan.detail}})
        messages: list[dict[str, Any]] = []
        if spec.prompt.system:
            messages.append({"role": "system", "content": spec.prompt.system})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {"messages": messages}
        if self._model_in_body is not None:
            body["model"] = self._model_in_body
        body[plan.token_field] = plan.max_tokens
        if spec.prompt.temperature is not None:
            body["temperature"] = spec.prompt.temperature
        if self._response_format is not None:
            body["response_format"] = self._response_format
        if extra_body:
            body.update(extra_body)

        # Exact text tokens with the model's tokenizer and OpenAI's chat framing (text parts only).
        text = chat_prompt_tokens(spec.prompt.system, user_text, self._model.tokenizer) + self._format_tokens
        text += sum(count_text(im.label, self._model.tokenizer) for im in images if im.label is not None)
        pictures = sum(self._image_tokens(im.size[0], im.size[1], plan.detail) for im in images)
        est = Estimate(text, pictures, plan.max_tokens)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if inline:
            raw = _splice(raw, inline)
        return PreparedRequest(raw, est, plan.detail, note)


def _splice(raw: bytes, inline: list[bytes]) -> bytes:
    """Put each inline data URL (ASCII, nothing to escape) where its placeholder is in ``raw``."""
    pieces = raw.split(_SLOT_JSON)
    if len(pieces) != len(inline) + 1:  # cannot happen: the placeholder is random
        raise AssertionError("request body placeholder mismatch")
    out = [pieces[0]]
    for url, piece in zip(inline, pieces[1:], strict=True):
        out += (b'"', url, b'"', piece)
    return b"".join(out)
