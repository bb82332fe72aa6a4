"""The request plan's types: what one manifest row sends, decided once, before anything is loaded.

A :class:`RequestPlan` lists the row's requests (an image row makes one; a document one per page,
or per group of pages when the job packs them), each with the pages it carries, their sizes (from
header probes: nothing decoded) and its :class:`~batch.core.Estimate`. A row that cannot be sent
is a :class:`Refusal` instead: the error code and message its result row gets.

The run materialises a plan (loads or renders each request's pages, reads them by OCR when asked,
composes the body); the estimate sums plans; a Batch-API route would write one JSONL line per
planned request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..core import Estimate, OcrMode, RowError

__all__ = ["PlannedImage", "PlannedRequest", "Refusal", "RequestPlan", "SourceKind", "TokenField"]

# remote: an http(s) URL (never downloaded); inline: a data: URL; image: a local image file
# (a one-page TIFF included); pdf / tiff: a local document of pages; video: sampled frames.
SourceKind = Literal["remote", "inline", "image", "pdf", "tiff", "video"]
TokenField = Literal["max_tokens", "max_completion_tokens"]


@dataclass(frozen=True, slots=True)
class PlannedImage:
    """One image of a request: its 1-based document page or video frame (None for an image row),
    its size in pixels as the plan knows it (header probe, video metadata; assumed for a remote
    image) and, for a video frame, its time in seconds (sent as a text part before it)."""

    page: int | None
    size: tuple[int, int]
    time_s: float | None = None


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request: its images in order, and its estimate before sending (text tokens exact for
    the prompt without any OCR hint, which only OCR can tell; image tokens from the sizes)."""

    images: tuple[PlannedImage, ...]
    estimate: Estimate

    @property
    def pages(self) -> tuple[int, ...]:
        return tuple(im.page for im in self.images if im.page is not None)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a row is not sent: its result row's ``error_code`` and ``error_message``."""

    index: int
    code: str
    message: str

    @classmethod
    def of(cls, index: int, exc: RowError) -> Refusal:
        return cls(index, exc.code, str(exc))

    def error(self) -> RowError:
        return RowError(self.message, code=self.code)


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Everything a row sends. ``ref`` is the image as the row gives it (URL or data URL), or the
    resolved file path for a local file (``path``). ``hint``: each request's text gets an OCR hint
    part at send time (local or azure-read OCR with ``[ocr].hint``)."""

    index: int
    source: SourceKind
    ref: str
    path: Path | None
    detail: str
    token_field: TokenField
    max_tokens: int
    user_text: str
    ocr: OcrMode
    hint: bool
    requests: tuple[PlannedRequest, ...]
    file_bytes: int | None = None  # a local file's size on disk

    @property
    def is_document(self) -> bool:
        """Sent as several requests merged into one result row (pages, or a video's frames)."""
        return self.source in ("pdf", "tiff", "video")

    @property
    def unit(self) -> str:
        """What a part's numbers count: a video's sampled frames, else a document's pages."""
        return "frames" if self.source == "video" else "page"

    @property
    def images(self) -> int:
        return sum(len(r.images) for r in self.requests)

    @property
    def image_tokens(self) -> int:
        return sum(r.estimate.image_tokens for r in self.requests)

    @property
    def text_tokens(self) -> int:
        return sum(r.estimate.text_tokens for r in self.requests)
