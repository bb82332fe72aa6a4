"""The columns a run adds to the manifest's, and how one outcome becomes a row of them.

The same rows travel three ways: a journal line (JSON), a part file row (Parquet, with the
manifest position in ``_row``), and a row of the assembled result file. This module is the one
place that knows the columns.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import pyarrow as pa

from ..core import Outcome, PartAnswer

__all__ = [
    "PART_SCHEMA",
    "RESULT_COLUMNS",
    "RESULT_SCHEMA",
    "ROW",
    "OUTCOME_FIELDS",
    "outcome_dict",
    "outcome_from_json",
    "outcomes_table",
]

ROW = "_row"

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
        ("grounding", pa.string()),
        ("completed_at", pa.timestamp("ms", tz="UTC")),
    ]
)
RESULT_COLUMNS = RESULT_SCHEMA.names
PART_SCHEMA = pa.schema([(ROW, pa.int64()), *RESULT_SCHEMA])
_OUTCOME_NAMES = tuple(f.name for f in fields(Outcome))
OUTCOME_FIELDS = set(_OUTCOME_NAMES)


def outcome_dict(o: Outcome) -> dict[str, Any]:
    """``dataclasses.asdict(o)`` without its recursive deep copy of every field (a row's fields are
    scalars but for the rare page answers): about 9 µs a row instead of 34."""
    d = {name: getattr(o, name) for name in _OUTCOME_NAMES}
    if o.page_answers is not None:
        d["page_answers"] = [asdict(a) for a in o.page_answers]
    return d


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
    """An Outcome from its journal line: JSON lists back into the tuples and records they were."""
    if d["pages_processed"] is not None:
        d["pages_processed"] = tuple(d["pages_processed"])
    if d["page_answers"] is not None:
        d["page_answers"] = tuple(PartAnswer(**{**p, "pages": tuple(p["pages"])}) for p in d["page_answers"])
    return Outcome(**d)
