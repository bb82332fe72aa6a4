"""Turn one manifest row into a chat-completions request body and its token estimate.

The body follows the documented shape exactly: an optional system message, then one user message
whose content is ``[{"type": "text"}, {"type": "image_url", "image_url": {"url", "detail"}}]``.
Local files go as ``data:<mime>;base64,...``; http(s) and data URLs pass through untouched.
An inline image (megabytes of base64) is never run through the JSON encoder: the body is encoded
with a placeholder and the ASCII data URL spliced in: joined, never scanned for escapes or re-encoded.
``max_completion_tokens`` replaces ``max_tokens`` for o-series and gpt-5 models.
Everything that can be wrong with a single row raises RowError here, before any request is sent.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..core import DETAILS, Estimate, ImageError, JobSpec, ModelInfo, RowError, WorkItem
from ..inputs import data_url_bytes, load_image
from ..tokens import chat_prompt_tokens, get_encoding, image_tokens

# An http(s) image whose size we do not fetch is estimated as a 1024x1024 picture.
_UNKNOWN_SIZE = (1024, 1024)
_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.ASCII)
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


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What a row asks, checked: the settings every request made for it shares."""

    detail: str
    max_tokens: int
    user_text: str


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image as the request carries it: the URL (inline data URL or http(s)) and its size.

    A ``bytes`` URL is an inline ``data:`` URL in ASCII (:func:`batch.images.data_url_bytes`),
    spliced into the body as it is."""

    url: str | bytes
    size: tuple[int, int]


class RequestBuilder:
    """Builds request bodies for one job. Stateless per row; safe to call from worker threads."""

    def __init__(self, spec: JobSpec, model: ModelInfo, model_in_body: str | None) -> None:
        self._spec = spec
        self._model = model
        self._model_in_body = model_in_body
        self._base = spec.input.base_dir.resolve()
        # Rows share a few folders: each folder's real path is looked up once per run, not once a row.
        self._real_dir = lru_cache(maxsize=4096)(os.path.realpath)
        # Load the tokenizer now, before worker threads call build(): the first load sets up
        # its offline cache, and a bad install should fail the job here, not every row.
        get_encoding(model.tokenizer)

    def build(self, item: WorkItem) -> PreparedRequest:
        """The one request of an image row."""
        plan = self.plan(item)
        url, size, note = self._image_url(item)
        return self.compose(plan, [ImageRef(url, size)], note=note)

    def plan(self, item: WorkItem) -> RowPlan:
        """The row's detail, output limit and prompt; RowError when a value is not allowed."""
        spec = self._spec
        detail = item.detail if item.detail is not None else spec.prompt.detail
        if detail not in DETAILS:
            raise RowError(f"detail {detail!r} is not one of {', '.join(DETAILS)}", code="bad_detail")
        max_out = item.max_tokens if item.max_tokens is not None else spec.prompt.max_tokens
        if max_out < 1:
            raise RowError(f"max_tokens {max_out} must be at least 1", code="bad_max_tokens")
        return RowPlan(detail, max_out, item.prompt if item.prompt else spec.prompt.user)

    def compose(
        self,
        plan: RowPlan,
        images: list[ImageRef],
        *,
        extra_text: str | None = None,
        extra_body: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> PreparedRequest:
        """One request: the prompt (plus ``extra_text``, e.g. an OCR hint) as a single text part,
        then the images in order; ``extra_body`` adds top-level fields (the legacy enhancements)."""
        spec = self._spec
        if len(images) > self._model.max_images:
            raise RowError(
                f"{len(images)} images exceed the limit of {self._model.max_images} per request for {self._model.name}",
                code="too_many_images",
            )
        user_text = f"{plan.user_text}\n\n{extra_text}" if extra_text else plan.user_text
        content: list[dict[str, Any]] = [{"type": "text", "text": user_text}]
        inline = [im.url for im in images if isinstance(im.url, bytes)]
        content += [
            {
                "type": "image_url",
                "image_url": {"url": _SLOT if isinstance(im.url, bytes) else im.url, "detail": plan.detail},
            }
            for im in images
        ]
        messages: list[dict[str, Any]] = []
        if spec.prompt.system:
            messages.append({"role": "system", "content": spec.prompt.system})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {"messages": messages}
        if self._model_in_body is not None:
            body["model"] = self._model_in_body
        token_field = "max_completion_tokens" if self._model.uses_max_completion_tokens else "max_tokens"
        body[token_field] = plan.max_tokens
        if spec.prompt.temperature is not None:
            body["temperature"] = spec.prompt.temperature
        if extra_body:
            body.update(extra_body)

        # Exact text tokens with the model's tokenizer and OpenAI's chat framing (text parts only).
        text = chat_prompt_tokens(spec.prompt.system, user_text, self._model.tokenizer)
        pictures = sum(image_tokens(self._model, im.size[0], im.size[1], plan.detail) for im in images)
        est = Estimate(text, pictures, plan.max_tokens)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if inline:
            raw = _splice(raw, inline)
        return PreparedRequest(raw, est, plan.detail, note)

    def _image_url(self, item: WorkItem) -> tuple[str | bytes, tuple[int, int], str | None]:
        ref = (item.image or "").strip()
        if not ref:
            raise ImageError("the row has no image", code="image_missing")
        if ref.startswith(("http://", "https://")):
            return ref, _UNKNOWN_SIZE, None
        if ref.startswith("data:"):
            return ref, data_url_size(ref), None
        path = self.resolve_path(ref)
        img = load_image(path, verify=self._spec.input.verify_images)
        return data_url_bytes(img), (img.width, img.height), img.reencoded

    def resolve_path(self, ref: str) -> Path:
        p = Path(ref).expanduser()
        full = self._resolve(p if p.is_absolute() else self._base / p)
        if not self._spec.input.allow_outside_paths and not full.is_relative_to(self._base):
            raise ImageError(
                f"image path {ref!r} is outside the manifest folder {self._base}; "
                "set [input].allow_outside_paths = true to allow it",
                code="path_outside_base",
            )
        return full

    def _resolve(self, path: Path) -> Path:
        """``path.resolve()``, with the folder's real path cached: only the file itself is looked at."""
        name = path.name
        if name in ("", ".", ".."):
            return path.resolve()
        candidate = os.path.join(self._real_dir(os.fspath(path.parent)), name)
        if os.path.islink(candidate):
            return Path(os.path.realpath(candidate))
        return Path(candidate)


def _splice(raw: bytes, inline: list[bytes]) -> bytes:
    """Put each inline data URL (ASCII, nothing to escape) where its placeholder is in ``raw``."""
    pieces = raw.split(_SLOT_JSON)
    if len(pieces) != len(inline) + 1:  # cannot happen: the placeholder is random
        raise AssertionError("request body placeholder mismatch")
    out = [pieces[0]]
    for url, piece in zip(inline, pieces[1:], strict=True):
        out += (b'"', url, b'"', piece)
    return b"".join(out)


def data_url_size(url: str) -> tuple[int, int]:
    m = _DATA_URL.match(url)
    if not m:
        raise ImageError("data URL is not of the form data:<mime>;base64,<data>", code="bad_data_url")
    try:
        raw = base64.b64decode(url[m.end() :], validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            return im.size
    except (binascii.Error, ValueError):
        raise ImageError("data URL holds invalid base64", code="bad_data_url") from None
    except (UnidentifiedImageError, OSError):
        raise ImageError("data URL does not hold an image Pillow can read", code="image_corrupt") from None
