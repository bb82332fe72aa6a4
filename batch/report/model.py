"""The whole of ``batch report``'s numbers (:class:`Report`), with :meth:`Report.to_dict` for ``--json``.

Computed by :func:`batch.report.build_report`; laid out by :mod:`.render` (terminal) and
:mod:`.html` (the page). Its parts (lines, accuracy, costliest rows, timeline) are in :mod:`.parts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import FieldLine
from .parts import Accuracy, LengthShare, Line, ModelLine, RowCost, Timeline
from .streamstats import Histogram

__all__ = ["Report"]


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
    by_route: tuple[Line, ...]  # online, batch: rows, tokens and billed cost per route
    batches: int  # distinct batch ids among the batch rows
    error_codes: Mapping[str, int]
    length: LengthShare
    accuracy: Accuracy
    top: tuple[RowCost, ...]
    prompt_histogram: Histogram
    completion_histogram: Histogram
    timeline: Timeline
    notes: tuple[str, ...]
    fields: tuple[FieldLine, ...] = ()  # with [output].schema: how often each field is filled
    data_rows: int = 0  # rows with a structured answer (the ``data`` column not null)

    @property
    def rows(self) -> int:
        return self.total.rows

    @property
    def rows_without_usage(self) -> int:
        return self.total.rows - self.total.usage_rows

    def to_dict(self) -> dict[str, Any]:
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
            "by_route": [_line_dict(x) for x in self.by_route],
            "batches": self.batches,
            "error_codes": dict(self.error_codes),
            "length": _length_dict(self.length),
            "estimate": _accuracy_dict(self.accuracy),
            "top": [_row_cost_dict(r) for r in self.top],
            "histograms": {
                "prompt_tokens": _hist_dict(self.prompt_histogram),
                "completion_tokens": _hist_dict(self.completion_histogram),
            },
            "timeline": _timeline_dict(self.timeline),
            "notes": list(self.notes),
            "fields": {
                "rows_with_data": self.data_rows,
                "filled": [{"path": f.path, "filled": f.filled, "of": f.of, "share": f.share} for f in self.fields],
            },
        }


def _length_dict(length: LengthShare) -> dict[str, Any]:
    return {
        "rows": length.rows,
        "answered_rows": length.answered_rows,
        "share": length.share,
        "completion_tokens": length.completion_tokens,
        "cost_usd": _costs(length.cost_billed, length.cost_standard, length.cost_batch),
    }


def _accuracy_dict(a: Accuracy) -> dict[str, Any]:
    return {
        "estimate_made": "at send time, per request as sent (not the figure of `batch estimate`)",
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
    }


def _row_cost_dict(r: RowCost) -> dict[str, Any]:
    return {
        "row": r.row,
        "id": r.id,
        "model": r.model,
        "detail": r.detail,
        "status": r.status,
        "finish_reason": r.finish_reason,
        "route": r.route,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
        "cost_usd": _costs(r.cost_billed, r.cost_standard, r.cost_batch),
    }


def _timeline_dict(t: Timeline) -> dict[str, Any]:
    return {
        "available": t.available,
        "note": t.note,
        "tpm": t.tpm,
        "minutes": [{"minute": m, "tokens": tokens, "rows": rows} for m, tokens, rows in t.minutes],
    }


def _line_dict(x: Line, *, key: bool = True) -> dict[str, Any]:
    return {
        **({"key": x.key} if key else {}),
        "rows": x.rows,
        "rows_with_usage": x.usage_rows,
        "prompt_tokens": x.prompt_tokens,
        "completion_tokens": x.completion_tokens,
        "total_tokens": x.total_tokens,
        "cost_usd": _costs(x.cost_billed, x.cost_standard, x.cost_batch),
    }


def _costs(billed: float, standard: float, at_batch: float) -> dict[str, float]:
    """``billed``: each row at its route's prices; ``standard`` / ``batch``: all rows at one price (what-ifs)."""
    return {"billed": billed, "standard": standard, "batch": at_batch}


def _hist_dict(h: Histogram) -> dict[str, Any]:
    return {
        "rows": h.rows,
        "min": h.min,
        "max": h.max,
        "bin_width": h.width,
        "bins": [{"low": lo, "high": hi, "rows": n} for lo, hi, n in h.bins],
    }
