"""The columns a run adds to the manifest's, and how one outcome becomes a row of them.

The same rows travel three ways: a journal line (JSON), a part file row (Parquet, with the
manifest position in ``_row``), and a row of the assembled result file. This module is the one
place that knows the columns.

The columns depend on the job: with ``[output].schema`` a typed ``data`` column holds the parsed
answer (its Arrow type from the schema, :mod:`.typed`), and ``[output].flatten`` adds one column
per top-level property. :func:`result_layout` gives a job's columns; parts, journal, state and
assembly all take them from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from ..core import (
    Answer,
    Failure,
    GroundingLine,
    GroundingSpan,
    Outcome,
    OutputFormat,
    Pages,
    PartAnswer,
    Point,
    Sent,
    Usage,
    Via,
)
from .typed import arrow_field, to_arrow_value

__all__ = [
    "DATA",
    "PART_SCHEMA",
    "RESULT_COLUMNS",
    "RESULT_SCHEMA",
    "ROW",
    "ROW_FIELDS",
    "ResultLayout",
    "TOOL_ERROR_CODES",
    "outcome_dict",
    "outcome_from_json",
    "outcomes_table",
    "result_layout",
]

ROW = "_row"

#: The ``error_code`` values the tool itself writes (tests/test_run_messages.py checks this list against
#: the source). A reply's own code (``content_filter``, ``429``, ``DeploymentNotFound``...) is the
#: service's and is recorded as it came.
TOOL_ERROR_CODES = frozenset(
    """bad_data_url bad_detail bad_max_tokens bad_ocr bad_pages client_error connect_error connection_reset
    document_corrupt document_empty document_encrypted document_too_large document_too_long document_unsupported
    image_corrupt image_empty image_error image_missing image_not_a_file image_not_found image_too_large
    image_unreadable image_unsupported internal_error malformed_response ocr_failed ocr_unavailable
    ocr_unconfigured ocr_unsupported path_outside_base request_too_large row_error timeout too_many_images
    transport_error
    invalid_json json_word_missing refused schema_mismatch truncated_json
    bad_video_sampling video_bad_range video_codec_unsupported video_corrupt video_empty video_enhancement_retired
    video_invalid video_no_stream video_remote video_too_long
    malformed not_reported stopped too_large_for_batch no_capable_deployment""".split()
)

_POINT = pa.struct([("x", pa.float64()), ("y", pa.float64())])
_SPAN = pa.struct(
    [("text", pa.string()), ("offset", pa.int32()), ("length", pa.int32()), ("polygon", pa.list_(_POINT))]
)
GROUNDING_TYPE = pa.list_(pa.struct([("page", pa.int32()), ("text", pa.string()), ("spans", pa.list_(_SPAN))]))

RESULT_SCHEMA = pa.schema(
    [
        ("answer", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("status", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("attempts", pa.int32()),
        ("latency_ms", pa.float64()),
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("answered_by", pa.string()),
        ("detail_used", pa.string()),
        ("estimated_image_tokens", pa.int64()),
        ("estimated_prompt_tokens", pa.int64()),
        ("image_note", pa.string()),
        ("pages_processed", pa.list_(pa.int32())),
        (
            "page_answers",
            pa.list_(
                pa.struct(
                    [
                        ("pages", pa.list_(pa.int32())),
                        ("status", pa.string()),
                        ("answer", pa.string()),
                        ("finish_reason", pa.string()),
                        ("prompt_tokens", pa.int64()),
                        ("completion_tokens", pa.int64()),
                        ("request_id", pa.string()),
                        ("ocr_text", pa.string()),
                        ("error_code", pa.string()),
                    ]
                )
            ),
        ),
        ("ocr_text", pa.string()),
        ("grounding", GROUNDING_TYPE),
        ("completed_at", pa.timestamp("ms", tz="UTC")),
        ("route", pa.string()),
        ("batch_id", pa.string()),
    ]
)
RESULT_COLUMNS = RESULT_SCHEMA.names
PART_SCHEMA = pa.schema([(ROW, pa.int64()), *RESULT_SCHEMA])
# A journal line holds a row as its result columns, plus its position (and "data", when parsed).
ROW_FIELDS = frozenset(["index", *RESULT_COLUMNS])
DATA = "data"


@dataclass(frozen=True, slots=True)
class ResultLayout:
    """A job's result columns: the fixed ones, then ``data`` and the flattened ones (``extra``)."""

    result: pa.Schema
    part: pa.Schema
    data: pa.Field | None = None  # the parsed answer's column, with a schema
    flattened: tuple[pa.Field, ...] = ()  # [output].flatten: the top-level properties

    @property
    def fingerprint(self) -> str | None:
        """What the saved parts' columns are, for a resume to compare; None without a schema."""
        if self.data is None:
            return None
        text = f"{self.data.type}|{[f.name for f in self.flattened]}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=16)
def result_layout(fmt: OutputFormat | None) -> ResultLayout:
    """The columns a job's result has (JSON mode and free text: the fixed ones)."""
    if fmt is None or fmt.schema is None:
        return ResultLayout(RESULT_SCHEMA, PART_SCHEMA)
    data = arrow_field(DATA, fmt.schema, fmt.schema).with_nullable(True)
    flat: tuple[pa.Field, ...] = ()
    if fmt.flatten and pa.types.is_struct(data.type):
        flat = tuple(f.with_nullable(True) for f in data.type)
    extra = [data, *flat]
    return ResultLayout(pa.schema([*RESULT_SCHEMA, *extra]), pa.schema([*PART_SCHEMA, *extra]), data, flat)


def outcome_dict(o: Outcome) -> dict[str, Any]:
    """A row as the result columns hold it (and the journal line, with its ``index``)."""
    a, e, s, pages = o.answer, o.error, o.sent, o.pages
    usage = a.usage if a is not None else None
    return {
        "index": o.index,
        "answer": a.text if a else None,
        "finish_reason": a.finish_reason if a else None,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "status": o.status,
        "error_code": e.code if e else None,
        "error_message": e.message if e else None,
        "attempts": o.attempts,
        "latency_ms": o.latency_ms,
        "request_id": o.request_id,
        "model": a.model if a else None,
        "answered_by": o.answered_by,
        "detail_used": s.detail if s else None,
        "estimated_image_tokens": s.image_tokens if s else None,
        "estimated_prompt_tokens": s.prompt_tokens if s else None,
        "image_note": s.image_note if s else None,
        "pages_processed": list(pages.processed) if pages else None,
        "page_answers": [_part_dict(pa_) for pa_ in pages.answers] if pages else None,
        "ocr_text": o.ocr_text,
        "grounding": [_line_dict(line) for line in o.grounding] if o.grounding is not None else None,
        "completed_at": o.completed_at,
        "route": o.via.route if o.via is not None else "online",
        "batch_id": o.via.batch_id if o.via is not None else None,
        **({DATA: a.data} if a is not None and a.data is not None else {}),
    }


def _part_dict(p: PartAnswer) -> dict[str, Any]:
    return {
        "pages": list(p.pages),
        "status": p.status,
        "answer": p.answer,
        "finish_reason": p.finish_reason,
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "request_id": p.request_id,
        "ocr_text": p.ocr_text,
        "error_code": p.error_code,
    }


def _line_dict(line: GroundingLine) -> dict[str, Any]:
    spans = [
        {"text": s.text, "offset": s.offset, "length": s.length, "polygon": [{"x": p.x, "y": p.y} for p in s.polygon]}
        for s in line.spans
    ]
    return {"page": line.page, "text": line.text, "spans": spans}


def outcomes_table(rows: list[Outcome], layout: ResultLayout | None = None) -> pa.Table:
    layout = layout or result_layout(None)
    cols: dict[str, list[object]] = {name: [] for name in layout.part.names}
    for o in rows:
        d = outcome_dict(o)
        cols[ROW].append(d.pop("index"))
        at = d.pop("completed_at")
        cols["completed_at"].append(None if at is None else round(at * 1000))
        for name in RESULT_COLUMNS:
            if name == "completed_at":
                continue
            cols[name].append(d[name])
        if layout.data is not None:
            data = to_arrow_value(d.get(DATA), layout.data.type)
            cols[DATA].append(data)
            for f in layout.flattened:
                cols[f.name].append(data.get(f.name) if data is not None else None)
    return pa.table(cols, schema=layout.part)


def outcome_from_json(d: dict[str, Any]) -> Outcome:
    """An Outcome from its journal line (the row's columns): the typed parts rebuilt."""
    status = d["status"]
    error = None
    if status == "error" or d["error_code"] is not None or d["error_message"] is not None:
        error = Failure(d["error_code"], d["error_message"])
    sent = None
    if d["detail_used"] is not None:
        sent = Sent(d["detail_used"], d["estimated_image_tokens"], d["estimated_prompt_tokens"], d["image_note"])
    pages = None
    if d["page_answers"] is not None:
        parts = tuple(PartAnswer(**{**p, "pages": tuple(p["pages"])}) for p in d["page_answers"])
        pages = Pages(tuple(d["pages_processed"] or ()), parts)
    grounding = None
    if d["grounding"] is not None:
        grounding = tuple(_line_from(line) for line in d["grounding"])
    return Outcome(
        d["index"],
        status,
        answer=_answer_from(d),
        error=error,
        sent=sent,
        pages=pages,
        ocr_text=d["ocr_text"],
        grounding=grounding,
        attempts=d["attempts"],
        latency_ms=d["latency_ms"],
        request_id=d["request_id"],
        completed_at=d["completed_at"],
        via=Via(d["route"], d.get("batch_id")) if d.get("route", "online") != "online" else None,
        answered_by=d.get("answered_by"),  # absent from journals written before the pool
    )


def _answer_from(d: dict[str, Any]) -> Answer | None:
    if d["answer"] is None and d["finish_reason"] is None and d["prompt_tokens"] is None and not d["model"]:
        return None
    usage = None
    if d["prompt_tokens"] is not None or d["completion_tokens"] is not None:
        p, c = d["prompt_tokens"] or 0, d["completion_tokens"] or 0
        usage = Usage(p, c, d["total_tokens"] if d["total_tokens"] is not None else p + c)
    return Answer(d["answer"], d["finish_reason"], usage, d["model"], d.get(DATA))


def _line_from(line: dict[str, Any]) -> GroundingLine:
    spans = tuple(
        GroundingSpan(s["text"], s["offset"], s["length"], tuple(Point(q["x"], q["y"]) for q in s["polygon"]))
        for s in line["spans"]
    )
    return GroundingLine(line["text"], spans, line["page"])
