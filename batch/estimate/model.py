"""The numbers of ``batch estimate``: typed, with :meth:`EstimateReport.to_dict` for ``--json``.

Computed by :func:`batch.estimate.job.estimate_job`; laid out by :mod:`batch.estimate.render`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..core import Price
from ..plan import REMOTE_IMAGE_SIZE
from .hint import HintEstimate
from .shards import BatchShards
from .video import VideoTotals

#: Models the what-if table compares with by default (the job's own model is left out of them).
DEFAULT_COMPARE = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")
#: Share of ``max_tokens`` a reply is assumed to use: an assumption, shown as one.
DEFAULT_EXPECTED_OUTPUT = 0.6
#: The size an http(s) image is assumed to have (the run's limiter assumes the same).
DEFAULT_REMOTE_SIZE = REMOTE_IMAGE_SIZE  # the run's own assumption, unless the estimate is told otherwise
#: What-if detail settings: ``job`` keeps each row's own detail (else the job's default).
DETAIL_MODES = ("job", "low", "high", "auto")

ImageSource = Literal["local", "inline", "remote"]


@dataclass(frozen=True, slots=True)
class Costs:
    """USD at standard and at Batch prices: expected (assumed output share) and upper bound (max output)."""

    standard_expected: float
    standard_max: float
    batch_expected: float
    batch_max: float


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over the rows that would be sent: one request and one image per image row, one per
    page (or packed pages) for documents."""

    rows: int
    images: int
    image_tokens: int
    text_tokens: int
    max_completion_tokens: int
    expected_completion_tokens: int
    costs: Costs
    minutes: float | None  # at the job's TPM/RPM; None when the job sets neither
    bound_by: Literal["tokens", "requests"] | None
    requests: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.image_tokens + self.text_tokens

    @property
    def admission_tokens(self) -> int:
        """What Azure charges against TPM when the requests arrive: prompt plus max output."""
        return self.prompt_tokens + self.max_completion_tokens


@dataclass(frozen=True, slots=True)
class Scenario:
    """One what-if line: the same rows on ``model`` at ``detail`` (``job`` = each row's own)."""

    model: str
    detail: str
    price: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class ImageSources:
    local: int = 0  # files: size read from the header
    inline: int = 0  # data: URLs: size read from the decoded header bytes
    remote: int = 0  # http(s) URLs: not downloaded, estimated at the assumed size
    oversize: int = 0  # local files over the service's byte limit: the run downscales them
    checked: int = 0  # local files sent as they are whose structure was walked, as the run does


@dataclass(frozen=True, slots=True)
class SkippedRow:
    id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class EstimateReport:
    """Everything ``batch estimate`` shows; :meth:`to_dict` gives the same numbers for ``--json``."""

    job: str
    manifest: str
    deployment: str
    model: str
    catalogue_model: str
    tokenizer: str
    price: Price
    expected_output: float
    tpm: int | None
    rpm: int | None
    remote_size: tuple[int, int]
    rows_read: int
    total: Totals
    by_detail: Mapping[str, Totals]
    images: ImageSources
    skipped: Mapping[str, int]
    skipped_examples: tuple[SkippedRow, ...]
    what_if: tuple[Scenario, ...]
    addons_if_enabled: Mapping[str, float]
    notes: tuple[str, ...]
    video: VideoTotals | None = None  # the video rows' share of the totals, when there are any
    ocr_hint: HintEstimate | None = None  # the OCR hint's tokens, measured on a sample (an estimate)
    batch_route: BatchShards | None = None

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "manifest": self.manifest,
            "deployment": self.deployment,
            "model": self.model,
            "catalogue_model": self.catalogue_model,
            "tokenizer": self.tokenizer,
            "price": self.price.as_json(),
            "assumptions": {
                "expected_output_share": self.expected_output,
                "auto_detail_estimated_as": "high",
                "remote_image_size": list(self.remote_size),
            },
            "limits": {"tpm": self.tpm, "rpm": self.rpm},
            "rows_read": self.rows_read,
            "rows_skipped": self.rows_skipped,
            "total": _totals_dict(self.total),
            "by_detail": {d: _totals_dict(t) for d, t in self.by_detail.items()},
            "images": {
                "local": self.images.local,
                "inline": self.images.inline,
                "remote": self.images.remote,
                "oversize": self.images.oversize,
                "structure_checked": self.images.checked,
            },
            "skipped": dict(self.skipped),
            "skipped_examples": [{"id": s.id, "code": s.code, "message": s.message} for s in self.skipped_examples],
            "what_if": [
                {"model": s.model, "detail": s.detail, "price": s.price, **_totals_dict(s.totals)} for s in self.what_if
            ],
            "addons_if_enabled": dict(self.addons_if_enabled),
            "notes": [*self.notes, *([self.ocr_hint.note()] if self.ocr_hint else [])],
            "video": self.video.to_dict() if self.video is not None else None,
            "ocr_hint": self.ocr_hint.to_dict() if self.ocr_hint else None,
            "batch_route": self.batch_route.to_dict() if self.batch_route is not None else None,
        }


def _totals_dict(t: Totals) -> dict[str, Any]:
    return {
        "rows": t.rows,
        "requests": t.requests,
        "images": t.images,
        "image_tokens": t.image_tokens,
        "text_tokens": t.text_tokens,
        "prompt_tokens": t.prompt_tokens,
        "max_completion_tokens": t.max_completion_tokens,
        "expected_completion_tokens": t.expected_completion_tokens,
        "admission_tokens": t.admission_tokens,
        "cost_usd": {
            "standard_expected": t.costs.standard_expected,
            "standard_max": t.costs.standard_max,
            "batch_expected": t.costs.batch_expected,
            "batch_max": t.costs.batch_max,
        },
        "minutes": t.minutes,
        "bound_by": t.bound_by,
    }
