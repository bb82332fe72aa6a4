"""A structured answer judged: parsed, checked against the job's schema, or why it is not usable.

Each failure is the row's outcome, never retried automatically (a new attempt would be billed
again); all are re-sent on a rerun with ``--retry-errors`` (their codes, or ``*``):

- ``message.refusal`` set: status ``refused``, the refusal text as the message (code ``refused``);
- not JSON and ``finish_reason`` ``length``: ``truncated_json`` (cut short by max_tokens);
- not JSON otherwise: ``invalid_json``;
- JSON that the schema rejects: ``schema_mismatch``, naming the first failing path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from ..core import Answer, Completion, Failure, OutputFormat, Status

__all__ = ["Judged", "answer_of", "judge"]


@dataclass(frozen=True, slots=True)
class Judged:
    """The row's status, its parsed data (status ok), or its failure."""

    status: Status
    data: Any = None
    failure: Failure | None = None


def judge(c: Completion, fmt: OutputFormat) -> Judged:
    """What a 200 reply's answer is worth under the job's answer format."""
    if c.refusal:
        return Judged("refused", failure=Failure("refused", c.refusal))
    if c.answer is None:  # e.g. content_filter: the caller's status stands
        return Judged("ok")
    try:
        data = json.loads(c.answer)
    except ValueError as exc:
        if c.finish_reason == "length":
            return Judged(
                "error", failure=Failure("truncated_json", f"the JSON answer was cut off at max_tokens ({exc})")
            )
        return Judged("error", failure=Failure("invalid_json", f"the answer is not valid JSON: {exc}"))
    if fmt.schema is None:
        return Judged("ok", data)
    error = next(iter(_validator(fmt).iter_errors(data)), None)
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        where = f"/{path}" if path else "(the root)"
        return Judged("error", failure=Failure("schema_mismatch", f"at {where}: {error.message}"[:500]))
    return Judged("ok", data)


@lru_cache(maxsize=8)
def _validator(fmt: OutputFormat) -> Any:
    return jsonschema.Draft202012Validator(fmt.schema or {})


def answer_of(c: Completion, fmt: OutputFormat | None) -> tuple[Status, Answer, Failure | None]:
    """A 200 reply as a row's status, answer and failure, whichever route it came by: filtered when
    the completion was, and under an answer format (schema, JSON mode) parsed and judged."""
    status: Status = "filtered" if c.finish_reason == "content_filter" else "ok"
    data, failure = None, None
    if fmt is not None and status == "ok":  # parsed and checked; failures are never retried here
        judged = judge(c, fmt)
        status, data, failure = judged.status, judged.data, judged.failure
    return status, Answer(c.answer, c.finish_reason, c.usage, c.model, data), failure
