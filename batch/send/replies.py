"""A 200 reply parsed into a typed :class:`~batch.core.Completion`: answer, finish reason, usage, grounding.

Tolerant of what servers actually send: content as parts, the legacy ``finish_details`` object,
missing usage; malformed grounding lines, spans or points are skipped rather than failing the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import Completion, GroundingLine, GroundingSpan, Point, Usage

__all__ = ["Reply", "normalize_finish_reason", "parse_completion", "parse_grounding"]


@dataclass(frozen=True, slots=True)
class Reply:
    completion: Completion
    headers: Mapping[str, str]


def normalize_finish_reason(choice: Mapping[str, Any]) -> str | None:
    """A string finish_reason as is; the legacy object form ({"type": "stop"|"max_tokens"}) mapped."""
    raw = choice.get("finish_reason")
    if raw is None:
        raw = choice.get("finish_details")
    if isinstance(raw, Mapping):
        raw = raw.get("type")
    if raw is None:
        return None
    text = str(raw)
    return "length" if text == "max_tokens" else text


def _answer_text(message: Mapping[str, Any] | None) -> str | None:
    if not message:
        return None
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)


def parse_completion(body: Mapping[str, Any], headers: Mapping[str, str]) -> Completion:
    choices = body.get("choices") or []
    choice: Mapping[str, Any] = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    u = body.get("usage")
    usage = None
    if isinstance(u, Mapping):
        p, c = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
        usage = Usage(p, c, int(u.get("total_tokens") or p + c))
    message = choice.get("message")
    refusal = message.get("refusal") if isinstance(message, Mapping) else None
    enhancements = choice.get("enhancements")
    grounding = enhancements.get("grounding") if isinstance(enhancements, Mapping) else None
    return Completion(
        answer=_answer_text(choice.get("message")),
        finish_reason=normalize_finish_reason(choice),
        usage=usage,
        request_id=headers.get("x-request-id") or headers.get("apim-request-id") or body.get("id"),
        model=body.get("model"),
        grounding=parse_grounding(grounding) if grounding is not None else None,
        refusal=str(refusal) if refusal else None,
    )


def parse_grounding(grounding: Any) -> tuple[GroundingLine, ...]:
    """``enhancements.grounding``'s lines, typed; malformed lines, spans or points are skipped."""
    lines = grounding.get("lines") if isinstance(grounding, Mapping) else grounding
    out: list[GroundingLine] = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, Mapping):
            continue
        spans = tuple(_span(s) for s in line.get("spans") or [] if isinstance(s, Mapping))
        out.append(GroundingLine(str(line.get("text") or ""), spans))
    return tuple(out)


def _span(s: Mapping[str, Any]) -> GroundingSpan:
    points = tuple(
        Point(float(q.get("x") or 0), float(q.get("y") or 0)) for q in s.get("polygon") or [] if isinstance(q, Mapping)
    )
    return GroundingSpan(str(s.get("text") or ""), int(s.get("offset") or 0), int(s.get("length") or 0), points)
