"""A row's requests' outcomes merged into the row's one :class:`~batch.core.Outcome`.

A document (or an OCR-assisted row) makes several requests; the result keeps one row per manifest
row, with ``page_answers`` holding each request's answer, ``ocr_text`` what OCR read, and
``grounding`` the legacy enhancements' boxes per page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..core import Answer, Failure, GroundingLine, Outcome, Pages, PartAnswer, Sent, Status, Usage

__all__ = ["PartResult", "merge_parts"]


@dataclass(frozen=True, slots=True)
class PartResult:
    """One request's outcome, with its pages and what OCR read on each (page None: an image row)."""

    pages: tuple[int, ...]
    outcome: Outcome
    ocr: tuple[tuple[int | None, str], ...] = ()


def merge_parts(
    index: int, parts: list[PartResult], detail: str, *, started: float, document: bool, unit: str = "page"
) -> Outcome:
    """One row's outcome from its requests' outcomes (see ``schemas/result.schema.json``).
    ``unit`` names what a part's numbers count in the joined answer and errors: a document's
    ``page``, a video's ``frames``."""
    outs = [p.outcome for p in parts]
    failed = next((p for p in parts if p.outcome.status in ("error", "refused")), None)
    status: Status = (
        failed.outcome.status if failed else ("filtered" if any(o.status == "filtered" for o in outs) else "ok")
    )
    if not document and len(parts) == 1:
        only = parts[0]
        text, ocr_text, pages = _text(only.outcome), _ocr_text(only.ocr), None
    else:
        text = _join(parts, lambda p: _text(p.outcome), unit)
        ocr_text = _ocr_text(tuple(page for p in parts for page in p.ocr))
        processed = tuple(n for p in parts if p.outcome.status != "error" for n in p.pages)
        pages = Pages(processed, tuple(_part_answer(p) for p in parts))
    error = None
    if failed is not None and failed.outcome.error is not None:
        where = f"{unit} {_label(failed.pages)}: " if failed.pages else ""
        e = failed.outcome.error
        error = Failure(e.code, f"{where}{e.message}" if e.message else None)
    sents = [o.sent for o in outs if o.sent is not None]
    answer = _merged_answer(text, outs)
    if answer is not None and len(outs) == 1 and outs[0].answer is not None and outs[0].answer.data is not None:
        answer = outs[0].answer  # a structured answer (one request by plan): its raw JSON and data, as sent
    return Outcome(
        index,
        status,
        answer=answer,
        error=error,
        sent=Sent(
            detail,
            _sum(s.image_tokens for s in sents),
            _sum(s.prompt_tokens for s in sents),
            "; ".join(dict.fromkeys(s.image_note for s in sents if s.image_note)) or None,
        ),
        pages=pages,
        ocr_text=ocr_text,
        grounding=_grounding(parts, document),
        attempts=sum(o.attempts for o in outs),
        latency_ms=(time.monotonic() - started) * 1000,
        request_id=outs[-1].request_id if outs else None,
    )


def _merged_answer(text: str | None, outs: list[Outcome]) -> Answer | None:
    answers = [o.answer for o in outs if o.answer is not None]
    if not answers:
        return None
    reasons = [a.finish_reason for a in answers if a.finish_reason is not None]
    usages = [a.usage for a in answers if a.usage is not None]
    usage = None
    if usages:
        usage = Usage(
            sum(u.prompt_tokens for u in usages),
            sum(u.completion_tokens for u in usages),
            sum(u.total_tokens for u in usages),
        )
    return Answer(
        text,
        next((r for r in reasons if r != "stop"), reasons[0] if reasons else None),
        usage,
        next((a.model for a in answers if a.model), None),
    )


def _grounding(parts: list[PartResult], document: bool) -> tuple[GroundingLine, ...] | None:
    """Every request's grounded lines, each tagged with its page in a document."""
    lines = tuple(
        replace(line, page=p.pages[0] if document and p.pages else None)
        for p in parts
        if p.outcome.grounding is not None
        for line in p.outcome.grounding
    )
    return lines if any(p.outcome.grounding is not None for p in parts) else None


def _text(o: Outcome) -> str | None:
    return o.answer.text if o.answer is not None else None


def _part_answer(p: PartResult) -> PartAnswer:
    o = p.outcome
    usage = o.usage
    return PartAnswer(
        pages=p.pages,
        status=o.status,
        answer=_text(o),
        finish_reason=o.answer.finish_reason if o.answer is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        request_id=o.request_id,
        ocr_text=_ocr_text(p.ocr, headers=len(p.ocr) > 1),
        error_code=o.error_code,
    )


def _is_document_row(parts: list[PartResult]) -> bool:
    return any(p.pages for p in parts)


def _join(parts: list[PartResult], get: Callable[[PartResult], str | None], unit: str) -> str | None:
    chunks = [(p.pages, text) for p in parts if (text := get(p)) is not None]
    if not chunks:
        return None
    return "\n\n".join(f"--- {unit} {_label(pages)} ---\n{text}" if pages else text for pages, text in chunks)


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
