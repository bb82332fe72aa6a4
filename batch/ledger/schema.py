"""The columns a run adds to the manifest's, and how one outcome becomes a row of them.

The same rows travel three ways: a journal line (JSON), a part file row (Parquet, with the
manifest position in ``_row``), and a row of the assembled result file. This module is the one
place that knows the columns.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..core import (
    Answer,
    Failure,
    GroundingLine,
    GroundingSpan,
    Outcome,
    Pages,
    PartAnswer,
    Point,
    Sent,
    Usage,
)

__all__ = [
    "PART_SCHEMA",
    "RESULT_COLUMNS",
    "RESULT_SCHEMA",
    "ROW",
    "ROW_FIELDS",
    "outcome_dict",
    "outcome_from_json",
    "outcomes_table",
]

ROW = "_row"

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
    ]
)
RESULT_COLUMNS = RESULT_SCHEMA.names
PART_SCHEMA = pa.schema([(ROW, pa.int64()), *RESULT_SCHEMA])
# A journal line holds a row as its result columns, plus its position.
ROW_FIELDS = frozenset(["index", *RESULT_COLUMNS])


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


def outcomes_table(rows: list[Outcome]) -> pa.Table:
    cols: dict[str, list[object]] = {name: [] for name in PART_SCHEMA.names}
    for o in rows:
        d = outcome_dict(o)
        cols[ROW].append(d.pop("index"))
        at = d.pop("completed_at")
        cols["completed_at"].append(None if at is None else round(at * 1000))
        for name in RESULT_COLUMNS:
            if name == "completed_at":
                continue
            cols[name].append(d[name])
    return pa.table(cols, schema=PART_SCHEMA)


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
        answered_by=d.get("answered_by"),  # absent from journals written before the pool
    )


def _answer_from(d: dict[str, Any]) -> Answer | None:
    if d["answer"] is None and d["finish_reason"] is None and d["prompt_tokens"] is None and not d["model"]:
        return None
    usage = None
    if d["prompt_tokens"] is not None or d["completion_tokens"] is not None:
        p, c = d["prompt_tokens"] or 0, d["completion_tokens"] or 0
        usage = Usage(p, c, d["total_tokens"] if d["total_tokens"] is not None else p + c)
    return Answer(d["answer"], d["finish_reason"], usage, d["model"])


def _line_from(line: dict[str, Any]) -> GroundingLine:
    spans = tuple(
        GroundingSpan(s["text"], s["offset"], s["length"], tuple(Point(q["x"], q["y"]) for q in s["polygon"]))
        for s in line["spans"]
    )
    return GroundingLine(line["text"], spans, line["page"])
