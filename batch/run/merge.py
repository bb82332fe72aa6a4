"""A row's requests' outcomes merged into the row's one :class:`~batch.core.Outcome`.

A document (or an OCR-assisted row) makes several requests; the result keeps one row per manifest
row, with ``page_answers`` holding each request's answer, ``ocr_text`` what OCR read, and
``grounding`` the legacy enhancements' boxes per page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..core import Outcome, PartAnswer, Status

__all__ = ["PartResult", "merge_parts"]


@dataclass(frozen=True, slots=True)
class PartResult:
    """One request's outcome, with its pages and what OCR read on each (page None: an image row)."""

    pages: tuple[int, ...]
    outcome: Outcome
    ocr: tuple[tuple[int | None, str], ...] = ()


def merge_parts(index: int, parts: list[PartResult], detail: str, *, started: float, document: bool) -> Outcome:
    """One row's outcome from its requests' outcomes (see ``schemas/result.schema.json``)."""
    outs = [p.outcome for p in parts]
    failed = next((p for p in parts if p.outcome.status == "error"), None)
    status: Status = "error" if failed else ("filtered" if any(o.status == "filtered" for o in outs) else "ok")
    reasons = [o.finish_reason for o in outs if o.finish_reason is not None]
    groundings = [
        {"page": p.pages[0] if document and p.pages else None, **_grounding_obj(p.outcome.grounding)}
        for p in parts
        if p.outcome.grounding is not None
    ]
    if not document and len(parts) == 1:
        only = parts[0]
        answer, ocr_text, page_answers, pages = only.outcome.answer, _ocr_text(only.ocr), None, None
    else:
        answer = _join(parts, lambda p: p.outcome.answer)
        ocr_text = _ocr_text(tuple(page for p in parts for page in p.ocr))
        page_answers = tuple(_part_answer(p) for p in parts)
        pages = tuple(n for p in parts if p.outcome.status != "error" for n in p.pages)
    first_error = failed.outcome if failed else None
    where = f"page {_label(failed.pages)}: " if failed and failed.pages else ""
    return Outcome(
        index,
        status,
        answer=answer,
        finish_reason=next((r for r in reasons if r != "stop"), reasons[0] if reasons else None),
        prompt_tokens=_sum(o.prompt_tokens for o in outs),
        completion_tokens=_sum(o.completion_tokens for o in outs),
        total_tokens=_sum(o.total_tokens for o in outs),
        error_code=first_error.error_code if first_error else None,
        error_message=f"{where}{first_error.error_message}" if first_error and first_error.error_message else None,
        attempts=sum(o.attempts for o in outs),
        latency_ms=(time.monotonic() - started) * 1000,
        request_id=outs[-1].request_id if outs else None,
        model=next((o.model for o in outs if o.model), None),
        detail_used=detail,
        estimated_image_tokens=_sum(o.estimated_image_tokens for o in outs),
        estimated_prompt_tokens=_sum(o.estimated_prompt_tokens for o in outs),
        image_note="; ".join(dict.fromkeys(o.image_note for o in outs if o.image_note)) or None,
        pages_processed=pages,
        page_answers=page_answers,
        ocr_text=ocr_text,
        grounding=json.dumps(groundings, ensure_ascii=False) if groundings else None,
    )


def _part_answer(p: PartResult) -> PartAnswer:
    o = p.outcome
    return PartAnswer(
        pages=p.pages,
        status=o.status,
        answer=o.answer,
        finish_reason=o.finish_reason,
        prompt_tokens=o.prompt_tokens,
        completion_tokens=o.completion_tokens,
        request_id=o.request_id,
        ocr_text=_ocr_text(p.ocr, headers=len(p.ocr) > 1),
        error_code=o.error_code,
    )


def _grounding_obj(raw: str) -> dict[str, Any]:
    doc = json.loads(raw)
    return doc if isinstance(doc, dict) else {"lines": doc}


def _join(parts: list[PartResult], get: Callable[[PartResult], str | None]) -> str | None:
    chunks = [(p.pages, text) for p in parts if (text := get(p)) is not None]
    if not chunks:
        return None
    return "\n\n".join(f"--- page {_label(pages)} ---\n{text}" if pages else text for pages, text in chunks)


def _ocr_text(texts: tuple[tuple[int | None, str], ...], *, headers: bool = True) -> str | None:
    """Pages' OCR text under page headers; a lone image's (or a lone page's, without headers) as it is."""
    if not texts:
        return None
    if len(texts) == 1 and (texts[0][0] is None or not headers):
        return texts[0][1]
    return "\n\n".join(f"--- page {n} ---\n{t}" for n, t in texts)


def _label(pages: tuple[int, ...]) -> str:
    if len(pages) == 1:
        return str(pages[0])
    if list(pages) == list(range(pages[0], pages[-1] + 1)):
        return f"{pages[0]}-{pages[-1]}"
    return ",".join(str(n) for n in pages)


def _sum(values: Iterator[int | None] | Any) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None
