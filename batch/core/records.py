"""Typed values that flow through a run: manifest row in, one attempt's reply, the row's outcome out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "filtered", "error"]
DETAILS = ("low", "high", "auto")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One manifest row, as read. ``index`` is its 0-based position in the manifest: its identity on disk."""

    index: int
    id: str
    image: str | None
    prompt: str | None = None
    detail: str | None = None
    max_tokens: int | None = None
    pages: str | None = None  # which pages of a PDF/TIFF, e.g. "1-3,7"; all when None
    ocr: str | None = None  # the row's OCR mode, overriding the job's


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    """A parsed 200 reply: the first choice's answer and the usage the service billed."""

    answer: str | None
    finish_reason: str | None
    usage: Usage | None
    request_id: str | None
    model: str | None
    grounding: str | None = None  # JSON of the legacy enhancements.grounding, when the reply has one


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request should cost, computed before sending it.

    ``admission`` is what Azure charges against TPM when the request arrives (prompt + max output);
    the limiter starts from it and learns the server's real rule from the rate-limit headers.
    """

    text_tokens: int
    image_tokens: int
    max_output_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.text_tokens + self.image_tokens

    @property
    def admission(self) -> int:
        return self.prompt_tokens + self.max_output_tokens


@dataclass(frozen=True, slots=True)
class PartAnswer:
    """One request's share of a row sent as several (a document's pages): what it answered."""

    pages: tuple[int, ...]
    status: Status
    answer: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    request_id: str | None = None
    ocr_text: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final result of one row: exactly one per manifest row ends up in the result file."""

    index: int
    status: Status
    answer: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    request_id: str | None = None
    model: str | None = None
    detail_used: str | None = None
    estimated_image_tokens: int | None = None
    estimated_prompt_tokens: int | None = None
    image_note: str | None = None
    pages_processed: tuple[int, ...] | None = None  # 1-based pages a document row was answered for
    page_answers: tuple[PartAnswer, ...] | None = None  # one per request, when a row took several
    ocr_text: str | None = None
    grounding: str | None = None
    completed_at: float | None = None  # Unix time the outcome was recorded (set by the result store)
