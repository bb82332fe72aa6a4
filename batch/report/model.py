"""The numbers of ``batch report``: typed, with :meth:`Report.to_dict` for ``--json``.

Computed by :func:`batch.report.build_report`; laid out by :mod:`batch.report_render` (terminal)
and :mod:`batch.report_html` (the page). Costs are USD; token counts are as billed (``usage``).
An estimate error is ``estimated - actual`` prompt tokens (positive: the estimate was high), in %
of the actual count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import Price, cost_json
from .streamstats import Histogram

__all__ = [
    "ACCURACY_BUCKETS",
    "NONE",
    "Accuracy",
    "AccuracyLine",
    "Histogram",
    "LengthShare",
    "Line",
    "ModelLine",
    "Report",
    "RowCost",
    "RowMiss",
    "SamplePoint",
    "Timeline",
]

#: Label of a null key (no finish reason on an error row, no detail on a refused one, ...).
NONE = "(none)"
#: Estimate error buckets, in % of the actual prompt tokens: [low, high) below zero, (low, high]
#: above, so that exactly -1% and +1% both fall in the buckets next to "exact".
ACCURACY_BUCKETS = (
    "< -10%",
    "-10% to -5%",
    "-5% to -1%",
    "-1% to 0%",
    "exact",
    "0% to +1%",
    "+1% to +5%",
    "+5% to +10%",
    "> +10%",
)


@dataclass(frozen=True, slots=True)
class Line:
    """Rows, billed tokens and cost of one breakdown key (or of the whole file)."""

    key: str
    rows: int
    usage_rows: int  # rows that carry usage (were billed)
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_standard: float
    cost_batch: float


@dataclass(frozen=True, slots=True)
class ModelLine:
    """One model as the service named it, and the price entry it resolved to."""

    model: str
    price: Price
    line: Line


@dataclass(frozen=True, slots=True)
class LengthShare:
    """Answers cut short by ``max_tokens`` (``finish_reason: length``): paid for, possibly useless."""

    rows: int
    answered_rows: int  # rows with any finish reason
    share: float  # rows / answered_rows (0 when nothing was answered)
    completion_tokens: int
    cost_standard: float
    cost_batch: float


@dataclass(frozen=True, slots=True)
class AccuracyLine:
    """Estimated against billed prompt tokens over the rows of one detail level that have both."""

    key: str
    rows: int
    estimated: int
    actual: int
    exact_rows: int

    @property
    def error_pct(self) -> float | None:
        return _pct(self.estimated - self.actual, self.actual)


@dataclass(frozen=True, slots=True)
class RowMiss:
    """One row's estimate against its billed prompt tokens."""

    row: int
    id: str
    detail: str
    estimated: int
    actual: int

    @property
    def error(self) -> int:
        return self.estimated - self.actual

    @property
    def error_pct(self) -> float | None:
        return _pct(self.error, self.actual)


@dataclass(frozen=True, slots=True)
class SamplePoint:
    estimated: int
    actual: int
    detail: str


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Estimate against actual prompt tokens, over rows with both (``rows``)."""

    rows: int
    estimated: int
    actual: int
    exact_rows: int
    within_1pct_rows: int
    mean_abs_pct_error: float | None  # over rows with actual > 0
    buckets: Mapping[str, int]  # ACCURACY_BUCKETS -> rows
    by_detail: tuple[AccuracyLine, ...]
    largest: tuple[RowMiss, ...]  # largest absolute differences, largest first
    sample: tuple[SamplePoint, ...]  # thinned, for the scatter plot
    sample_stride: int  # the sample holds the rows whose position is a multiple of this

    @property
    def error(self) -> int:
        return self.estimated - self.actual

    @property
    def error_pct(self) -> float | None:
        return _pct(self.error, self.actual) if self.rows else None

    @property
    def exact_share(self) -> float | None:
        return self.exact_rows / self.rows if self.rows else None


@dataclass(frozen=True, slots=True)
class RowCost:
    """One of the most expensive rows."""

    row: int
    id: str
    model: str
    detail: str
    status: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_standard: float
    cost_batch: float


@dataclass(frozen=True, slots=True)
class Timeline:
    """Billed tokens per minute of the run, when the file says when rows finished."""

    available: bool
    note: str
    tpm: int | None
    minutes: tuple[tuple[int, int, int], ...] = ()  # (minute from the first completion, tokens, rows)

    @property
    def peak(self) -> int:
        return max((t for _, t, _ in self.minutes), default=0)


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``batch report`` shows; :meth:`to_dict` gives the same numbers for ``--json``."""

    source: str
    id_column: str | None
    total: Line
    models: tuple[ModelLine, ...]
    by_detail: tuple[Line, ...]
    by_finish_reason: tuple[Line, ...]
    by_status: tuple[Line, ...]
    error_codes: Mapping[str, int]
    length: LengthShare
    accuracy: Accuracy
    top: tuple[RowCost, ...]
    prompt_histogram: Histogram
    completion_histogram: Histogram
    timeline: Timeline
    notes: tuple[str, ...]

    @property
    def rows(self) -> int:
        return self.total.rows

    @property
    def rows_without_usage(self) -> int:
        return self.total.rows - self.total.usage_rows

    def to_dict(self) -> dict[str, Any]:
        a = self.accuracy
        return {
            "source": self.source,
            "id_column": self.id_column,
            "rows": self.rows,
            "rows_with_usage": self.total.usage_rows,
            "rows_without_usage": self.rows_without_usage,
            "total": _line_dict(self.total),
            "models": [
                {"model": m.model, "price": m.price.as_json(), **_line_dict(m.line, key=False)} for m in self.models
            ],
            "by_detail": [_line_dict(x) for x in self.by_detail],
            "by_finish_reason": [_line_dict(x) for x in self.by_finish_reason],
            "by_status": [_line_dict(x) for x in self.by_status],
            "error_codes": dict(self.error_codes),
            "length": {
                "rows": self.length.rows,
                "answered_rows": self.length.answered_rows,
                "share": self.length.share,
                "completion_tokens": self.length.completion_tokens,
                "cost_usd": cost_json(self.length.cost_standard, self.length.cost_batch),
            },
            "estimate": {
                "rows": a.rows,
                "estimated_prompt_tokens": a.estimated,
                "actual_prompt_tokens": a.actual,
                "error_tokens": a.error,
                "error_pct": a.error_pct,
                "mean_abs_pct_error": a.mean_abs_pct_error,
                "exact_rows": a.exact_rows,
                "exact_share": a.exact_share,
                "within_1pct_rows": a.within_1pct_rows,
                "buckets": dict(a.buckets),
                "by_detail": [
                    {
                        "key": x.key,
                        "rows": x.rows,
                        "estimated_prompt_tokens": x.estimated,
                        "actual_prompt_tokens": x.actual,
                        "error_pct": x.error_pct,
                        "exact_rows": x.exact_rows,
                    }
                    for x in a.by_detail
                ],
                "largest_errors": [
                    {
                        "row": m.row,
                        "id": m.id,
                        "detail": m.detail,
                        "estimated_prompt_tokens": m.estimated,
                        "actual_prompt_tokens": m.actual,
                        "error_tokens": m.error,
                        "error_pct": m.error_pct,
                    }
                    for m in a.largest
                ],
                "sample_points": len(a.sample),
                "sample_stride": a.sample_stride,
            },
            "top": [
                {
                    "row": r.row,
                    "id": r.id,
                    "model": r.model,
                    "detail": r.detail,
                    "status": r.status,
                    "finish_reason": r.finish_reason,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "total_tokens": r.total_tokens,
                    "cost_usd": cost_json(r.cost_standard, r.cost_batch),
                }
                for r in self.top
            ],
            "histograms": {
                "prompt_tokens": _hist_dict(self.prompt_histogram),
                "completion_tokens": _hist_dict(self.completion_histogram),
            },
            "timeline": {
                "available": self.timeline.available,
                "note": self.timeline.note,
                "tpm": self.timeline.tpm,
                "minutes": [{"minute": m, "tokens": t, "rows": r} for m, t, r in self.timeline.minutes],
            },
            "notes": list(self.notes),
        }


def _pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None if part else 0.0
    return part * 100.0 / whole


def _line_dict(x: Line, *, key: bool = True) -> dict[str, Any]:
    return {
        **({"key": x.key} if key else {}),
        "rows": x.rows,
        "rows_with_usage": x.usage_rows,
        "prompt_tokens": x.prompt_tokens,
        "completion_tokens": x.completion_tokens,
        "total_tokens": x.total_tokens,
        "cost_usd": cost_json(x.cost_standard, x.cost_batch),
    }


def _hist_dict(h: Histogram) -> dict[str, Any]:
    return {
        "rows": h.rows,
        "min": h.min,
        "max": h.max,
        "bin_width": h.width,
        "bins": [{"low": lo, "high": hi, "rows": n} for lo, hi, n in h.bins],
    }
