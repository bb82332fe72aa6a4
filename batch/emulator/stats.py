"""What the emulator saw: per-deployment counters, a per-second timeline and a request log.

Benchmarks read the timeline (``[t, admitted, tokens_charged, throttled]`` per second since
the deployment's first event) to compute tokens per minute over the steady part of a run;
tests read the log to check what each request carried. Keys are never recorded: the log
holds only how the caller authenticated (``api-key`` or ``bearer``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .answers import ReceivedImage

__all__ = ["DeploymentStats", "LogEntry", "RequestLog", "UNROUTED", "VisionStats"]

#: The stats bucket for requests that never reached a known deployment (bad path, 401, ...).
UNROUTED = "_unrouted"


@dataclass(slots=True)
class DeploymentStats:
    """Counters for one deployment (or the unrouted bucket)."""

    received: int = 0
    admitted: int = 0
    throttled_tokens: int = 0
    throttled_requests: int = 0
    errors: dict[int, int] = field(default_factory=dict)  # status -> count, 429s excluded
    faults: dict[str, int] = field(default_factory=dict)  # injected fault kind -> count
    client_disconnects: int = 0  # clients that left before their reply was delivered
    tokens_charged: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    enhanced_calls: int = 0  # answers of the legacy extensions route with OCR/grounding on
    first_admission_at: float | None = None  # unix time
    last_admission_at: float | None = None
    _origin_mono: float | None = None  # monotonic time of the first admission or throttle
    _origin_wall: float | None = None
    _timeline: dict[int, list[int]] = field(default_factory=dict)

    def _bucket(self, now_mono: float) -> list[int]:
        if self._origin_mono is None:
            self._origin_mono = now_mono
            self._origin_wall = time.time()
        second = max(0, int(now_mono - self._origin_mono))
        row = self._timeline.get(second)
        if row is None:
            row = self._timeline[second] = [0, 0, 0]
        return row

    def record_admission(self, charge: int, now_mono: float) -> None:
        wall = time.time()
        self.admitted += 1
        self.tokens_charged += charge
        if self.first_admission_at is None:
            self.first_admission_at = wall
        self.last_admission_at = wall
        row = self._bucket(now_mono)
        row[0] += 1
        row[1] += charge

    def record_throttle(self, refused_by: str, now_mono: float) -> None:
        if refused_by == "token":
            self.throttled_tokens += 1
        else:
            self.throttled_requests += 1
        self._bucket(now_mono)[2] += 1

    def record_error(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1

    def record_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def timeline(self) -> list[list[int]]:
        """Dense per-second rows ``[t, admitted, tokens_charged, throttled]`` (gaps as zeros)."""
        if not self._timeline:
            return []
        last = max(self._timeline)
        zero = [0, 0, 0]
        return [[t, *self._timeline.get(t, zero)] for t in range(last + 1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "admitted": self.admitted,
            "throttled_tokens": self.throttled_tokens,
            "throttled_requests": self.throttled_requests,
            "errors": {str(status): count for status, count in sorted(self.errors.items())},
            "faults": dict(sorted(self.faults.items())),
            "client_disconnects": self.client_disconnects,
            "tokens_charged": self.tokens_charged,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "enhanced_calls": self.enhanced_calls,
            "first_admission_at": self.first_admission_at,
            "last_admission_at": self.last_admission_at,
            "timeline_origin_at": self._origin_wall,
            "timeline": self.timeline(),
        }


@dataclass(slots=True)
class VisionStats:
    """Counters for the Azure AI Vision read route (one resource)."""

    received: int = 0
    admitted: int = 0  # calls that passed the calls-per-second limit
    throttled: int = 0  # refused by that limit (injected 429s count as faults instead)
    errors: dict[int, int] = field(default_factory=dict)  # status -> count, 429s excluded
    faults: dict[str, int] = field(default_factory=dict)
    client_disconnects: int = 0
    pages_ocr: int = 0  # pages answered with a read result
    lines_ocr: int = 0
    words_ocr: int = 0

    def record_error(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1

    def record_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "admitted": self.admitted,
            "throttled": self.throttled,
            "errors": {str(status): count for status, count in sorted(self.errors.items())},
            "faults": dict(sorted(self.faults.items())),
            "client_disconnects": self.client_disconnects,
            "pages_ocr": self.pages_ocr,
            "lines_ocr": self.lines_ocr,
            "words_ocr": self.words_ocr,
        }


@dataclass(slots=True)
class LogEntry:
    """One received request. Mutable: the handler fills it in as it learns more."""

    seq: int
    time: float  # unix time received
    route: str  # "azure" | "azure-v1" | "openai" | "azure-extensions" | "vision-read"
    request_id: str
    deployment: str | None = None
    api_version: str | None = None
    status: int | None = None  # None while the request is still being handled
    error_code: str | None = None
    auth: str | None = None  # "api-key" | "bearer" | None; never the key itself
    max_tokens_field: str | None = None
    max_tokens: int | None = None
    texts: list[str] = field(default_factory=list)
    images: list[ReceivedImage] = field(default_factory=list)
    tokens_charged: int | None = None
    prompt_tokens: int | None = None
    image_tokens: int | None = None  # the part of prompt_tokens the images cost
    completion_tokens: int | None = None
    finish_reason: str | None = None
    fault: str | None = None  # the injected fault's kind, if any
    client_disconnected: bool = False  # the client left before the reply was delivered
    enhancements: list[str] | None = None  # extensions route: the enhancements enabled ("ocr", "grounding")
    features: list[str] | None = None  # vision-read route: the features asked for
    ocr_lines: int | None = None  # lines OCR read on the request's image (either OCR route)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "route": self.route,
            "request_id": self.request_id,
            "deployment": self.deployment,
            "api_version": self.api_version,
            "status": self.status,
            "error_code": self.error_code,
            "auth": self.auth,
            "max_tokens_field": self.max_tokens_field,
            "max_tokens": self.max_tokens,
            "texts": list(self.texts),
            "images": [
                {
                    "detail": im.detail,
                    "source": im.source,
                    "sha256": im.info.sha256,
                    "width": im.info.width,
                    "height": im.info.height,
                    "format": im.info.format,
                    "bytes": im.info.nbytes,
                }
                for im in self.images
            ],
            "tokens_charged": self.tokens_charged,
            "prompt_tokens": self.prompt_tokens,
            "image_tokens": self.image_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "fault": self.fault,
            "client_disconnected": self.client_disconnected,
            "enhancements": self.enhancements,
            "features": self.features,
            "ocr_lines": self.ocr_lines,
        }


class RequestLog:
    """The last ``limit`` requests received, oldest first."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=limit)
        self._seq = 0

    def start(self, route: str, request_id: str) -> LogEntry:
        self._seq += 1
        entry = LogEntry(seq=self._seq, time=time.time(), route=route, request_id=request_id)
        if self._entries.maxlen != 0:
            self._entries.append(entry)
        return entry

    @property
    def total(self) -> int:
        return self._seq

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self._entries]

    def clear(self) -> None:
        self._entries.clear()
        self._seq = 0
