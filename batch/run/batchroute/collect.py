"""Output and error lines joined on ``custom_id`` into the same result rows the online route writes.

A line's verdict, from the same classification the online route uses
(:func:`~batch.send.status` via the error classes):

* ``response.status_code`` 200: the answer (``filtered`` when the completion was filtered);
* 400 ``content_filter``: ``filtered``, never resubmitted;
* 429, 408, 5xx, ``request_timeout``, ``batch_expired``, ``batch_cancelled`` and a line the
  batch never reported: resubmitted in a new shard while the row has tries left, else an error
  row with that last code;
* anything else: an error row with the service's code.

A row of several requests is merged like the online route merges it; if any of its requests is
to be resubmitted, the whole row goes again (its parts stay in one shard).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ...core import ApiError, ContentFilteredError, Failure, Outcome, OutputFormat, Sent, Status, TransientApiError, Via
from ...ledger import LineMeta
from ...send import answer_of, make_api_error, parse_completion
from ..merge import PartResult, merge_parts

__all__ = ["RETRYABLE_LINE_CODES", "LineVerdict", "collect_rows", "parse_lines"]

RETRYABLE_LINE_CODES = frozenset(
    {"request_timeout", "batch_expired", "batch_cancelled", "not_reported", "token_limit_exceeded"}
)


@dataclass(frozen=True, slots=True)
class LineVerdict:
    """One line's outcome, and whether it is worth another try."""

    outcome: Outcome
    retry: bool


def parse_lines(data: bytes) -> dict[str, dict[str, Any]]:
    """Lines of an output or error file by custom_id (a zero-byte file is simply empty)."""
    lines: dict[str, dict[str, Any]] = {}
    for raw in data.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            lines[line["custom_id"]] = line
    return lines


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sent(meta: LineMeta) -> Sent:
    return Sent(meta.detail, meta.image_tokens, meta.prompt_tokens, meta.note)


def judge(meta: LineMeta, line: Mapping[str, Any] | None, batch_id: str, fmt: OutputFormat | None) -> LineVerdict:
    via, sent = Via("batch", batch_id), _sent(meta)
    if line is None:
        failure = Failure("not_reported", f"batch {batch_id} did not report this request")
        return LineVerdict(Outcome(meta.row, "error", error=failure, sent=sent, attempts=meta.tries, via=via), True)
    response = line.get("response")
    if isinstance(response, Mapping):
        status = int(response.get("status_code") or 0)
        body: Mapping[str, Any] = _mapping(response.get("body"))
        request_id = response.get("request_id")
        if status == 200:
            c = parse_completion(body, {"x-request-id": request_id} if request_id else {})
            verdict, answer, judged = answer_of(c, fmt)
            o = Outcome(
                meta.row, verdict, answer=answer, error=judged, sent=sent, attempts=meta.tries, request_id=c.request_id
            )
            return LineVerdict(replace(o, via=via), False)
        err = _mapping(body.get("error"))
        error = make_api_error(status, err.get("code"), str(err.get("message") or f"HTTP {status}"), {})
        return _from_error(meta, error, request_id, via, sent)
    err = _mapping(line.get("error"))
    code = str(err.get("code") or "batch_line_error")
    failure = Failure(code, str(err.get("message") or ""))
    o = Outcome(meta.row, "error", error=failure, sent=sent, attempts=meta.tries, via=via)
    return LineVerdict(o, code in RETRYABLE_LINE_CODES)


def _from_error(meta: LineMeta, error: ApiError, request_id: Any, via: Via, sent: Sent) -> LineVerdict:
    status: Status = "filtered" if isinstance(error, ContentFilteredError) else "error"
    code = error.code or (str(error.status) if error.status else "batch_line_error")
    o = Outcome(
        meta.row,
        status,
        error=Failure(code, str(error)),
        sent=sent,
        attempts=meta.tries,
        request_id=str(request_id) if request_id else None,
        via=via,
    )
    return LineVerdict(o, isinstance(error, TransientApiError))


def collect_rows(
    metas: Iterable[LineMeta],
    lines: Mapping[str, Mapping[str, Any]],
    batch_id: str,
    *,
    max_tries: int,
    fmt: OutputFormat | None = None,
) -> tuple[list[Outcome], list[LineMeta]]:
    """Each row's outcome, and the lines to resubmit (every line of a row that goes again)."""
    by_row: dict[int, list[LineMeta]] = {}
    for meta in metas:
        by_row.setdefault(meta.row, []).append(meta)
    outcomes: list[Outcome] = []
    again: list[LineMeta] = []
    for row, parts in by_row.items():
        parts.sort(key=lambda m: m.part)
        verdicts = [judge(m, lines.get(m.custom_id), batch_id, fmt) for m in parts]
        if any(v.retry for v in verdicts) and parts[0].tries < max_tries:
            again += [replace(m, tries=m.tries + 1) for m in parts]
            continue
        outcomes.append(_row_outcome(row, parts, verdicts, batch_id))
    return outcomes, again


def _row_outcome(row: int, parts: list[LineMeta], verdicts: list[LineVerdict], batch_id: str) -> Outcome:
    first = parts[0]
    if len(parts) == 1 and not first.document and not first.ocr:
        return _final(verdicts[0].outcome, first)
    results = [PartResult(m.pages, _final(v.outcome, m), m.ocr) for m, v in zip(parts, verdicts, strict=True)]
    merged = merge_parts(row, results, first.detail, started=time.monotonic(), document=first.document)
    return replace(merged, latency_ms=None, attempts=first.tries, via=Via("batch", batch_id))


def _final(o: Outcome, meta: LineMeta) -> Outcome:
    """A line still failing after its last try says so."""
    if o.status == "error" and o.error is not None and meta.tries > 1:
        message = f"gave up after {meta.tries} batch submissions; last: {o.error.message or o.error.code}"
        return replace(o, error=Failure(o.error.code, message))
    return o
