"""Typed values that flow through a run: manifest row in, one attempt's reply, the row's outcome out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# refused: the model declined (``message.refusal``), with structured outputs or JSON mode.
Status = Literal["ok", "filtered", "error", "refused"]
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
    # A video row's sampling, overriding [video]: start/end seconds, frames per second, frame count.
    video_start: float | None = None
    video_end: float | None = None
    video_fps: float | None = None
    video_frames: int | None = None


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
    grounding: tuple[GroundingLine, ...] | None = None  # the legacy enhancements.grounding.lines
    refusal: str | None = None  # message.refusal: the model declined (structured outputs)


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class GroundingSpan:
    """A word of the answer tied to the image: ``offset``/``length`` in code points of the answer."""

    text: str
    offset: int
    length: int
    polygon: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class GroundingLine:
    """One OCR line the legacy Vision enhancement grounded; ``page`` is set for a document's pages."""

    text: str
    spans: tuple[GroundingSpan, ...]
    page: int | None = None


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
class Answer:
    """What the service answered for a row, and what it billed (``usage``) under which model."""

    text: str | None
    finish_reason: str | None
    usage: Usage | None
    model: str | None
    data: Any = None  # with [output].schema or JSON mode: the answer parsed (and checked), else None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a row has no answer: an error code (``image_corrupt``, ``429``, ``timeout`` ...) and a message."""

    code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class Sent:
    """How a row was sent: the detail level and what its requests were estimated at before sending."""

    detail: str
    image_tokens: int | None
    prompt_tokens: int | None
    image_note: str | None = None


@dataclass(frozen=True, slots=True)
class Via:
    """How a row went: the ``online`` chat route, or the Batch API (``batch``) in batch ``batch_id``."""

    route: str
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pages:
    """A row sent as several requests (a document's pages): the pages answered and each request's part."""

    processed: tuple[int, ...]
    answers: tuple[PartAnswer, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final result of one row: exactly one per manifest row ends up in the result file.

    A small core (position, status, attempts, timing) plus typed parts: ``answer`` when the
    service answered, ``error`` when the row failed (always, for status ``error``), ``sent`` once
    a request was built, ``pages`` for a row of several requests, and what OCR read.
    """

    index: int
    status: Status
    answer: Answer | None = None
    error: Failure | None = None
    sent: Sent | None = None
    pages: Pages | None = None
    ocr_text: str | None = None
    grounding: tuple[GroundingLine, ...] | None = None
    attempts: int = 0
    latency_ms: float | None = None
    request_id: str | None = None
    completed_at: float | None = None  # Unix time the outcome was recorded (set by the result store)
    via: Via | None = None  # None: the online route
    answered_by: str | None = None  # "deployment @ endpoint URL" that the row's last request went to

    def __post_init__(self) -> None:
        if self.status in ("error", "refused") and self.error is None:
            raise ValueError(f"row {self.index}: an error outcome needs its Failure")

    @property
    def usage(self) -> Usage | None:
        return self.answer.usage if self.answer is not None else None

    @property
    def error_code(self) -> str | None:
        return self.error.code if self.error is not None else None
