"""A batch job: its record as the service shows it, and the checks its input file must pass.

Job-level errors (``errors.data[]``) are what the service reports when a whole file is refused
during ``validating``: ``empty_file``, ``invalid_json_line``, ``too_many_tasks``,
``url_mismatch``, ``model_not_found``, ``duplicate_custom_id``, ``model_mismatch``, and the
misleading message a UTF-8 BOM earns on Azure.

Three URL styles share the logic and differ in a ``BatchStyle``: Azure classic
(``/openai/batches``, statuses capitalised and timestamps as ISO strings like the service's
examples, 100,000 lines per file, only Global-Batch deployments), Azure v1 and OpenAI (lower
case, unix seconds, 50,000 lines).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .state import EmulatorState

__all__ = ["BOM_MESSAGE", "AZURE_STYLE", "AZURE_V1_STYLE", "OPENAI_STYLE", "BatchJob", "BatchLine", "BatchStyle"]

BOM_MESSAGE = (
    "A valid model deployment name couldn't be extracted from the input file. Make sure every line "
    "names the same Global-Batch deployment in 'model'."
)


@dataclass(frozen=True, slots=True)
class BatchStyle:
    kind: str  # "azure" | "azure-v1" | "openai"
    endpoints: frozenset[str]
    max_lines: int
    needs_global_batch: bool
    capitalised: bool  # statuses as "Completed", timestamps as ISO strings
    always_error_file: bool  # Azure: a successful job still has an (empty) error file


AZURE_STYLE = BatchStyle("azure", frozenset({"/chat/completions"}), 100_000, True, True, True)
AZURE_V1_STYLE = BatchStyle(
    "azure-v1", frozenset({"/chat/completions", "/v1/chat/completions"}), 50_000, True, False, True
)
OPENAI_STYLE = BatchStyle("openai", frozenset({"/v1/chat/completions"}), 50_000, False, False, False)


@dataclass(frozen=True, slots=True)
class BatchLine:
    custom_id: str
    body: dict[str, Any]


@dataclass(slots=True)
class BatchJob:
    id: str
    style: BatchStyle
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    auth_headers: dict[str, str]
    origin: str
    created_at: float = field(default_factory=time.time)
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    lines: list[BatchLine] = field(default_factory=list)
    deployment: str | None = None
    enqueued_tokens: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, float] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0
    cancel_requested: bool = False

    @classmethod
    def new(cls, style: BatchStyle, endpoint: str, input_file_id: str, **kwargs: Any) -> BatchJob:
        return cls(
            id="batch_" + uuid.uuid4().hex, style=style, endpoint=endpoint, input_file_id=input_file_id, **kwargs
        )

    @property
    def active(self) -> bool:
        return self.status in ("validating", "in_progress", "finalizing", "cancelling")

    def to_json(self) -> dict[str, Any]:
        stamp = _iso if self.style.capitalised else _unix
        times: dict[str, str | int | None] = {f"{name}_at": None for name in _TIMES}
        times.update({f"{name}_at": stamp(t) for name, t in self.times.items()})
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status.capitalize() if self.style.capitalised else self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": stamp(self.created_at),
            "expires_at": stamp(self.created_at + 86400),
            **times,
            "request_counts": {"total": len(self.lines), "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


_TIMES = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unix(t: float) -> int:
    return int(t)


def validate(job: BatchJob, data: bytes, state: EmulatorState) -> None:
    """Parse the input file into ``job.lines`` or fill ``job.errors`` with the job-level codes."""
    if not data.strip():
        job.errors = [
            _error("empty_file", "The input file is empty. Please ensure that the batch contains at least one request.")
        ]
        return
    if data.startswith(b"\xef\xbb\xbf"):
        job.errors = [_error("model_not_found", BOM_MESSAGE, line=1)]
        return
    raw_lines = [line for line in data.split(b"\n") if line.strip()]
    if len(raw_lines) > job.style.max_lines:
        job.errors = [
            _error(
                "too_many_tasks", f"The input file has {len(raw_lines)} requests; the limit is {job.style.max_lines}."
            )
        ]
        return
    seen: set[str] = set()
    for number, raw in enumerate(raw_lines, start=1):
        problem = _check_line(job, raw, number, seen, state)
        if problem is not None:
            job.errors = [problem]
            job.lines = []
            return


def _check_line(job: BatchJob, raw: bytes, number: int, seen: set[str], state: EmulatorState) -> dict[str, Any] | None:
    try:
        line = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error("invalid_json_line", f"Line {number} is not valid JSON.", line=number)
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str) or not line["custom_id"]:
        return _error("invalid_json_line", f"Line {number} needs a non-empty string custom_id.", line=number)
    if line.get("method") != "POST" or not isinstance(line.get("body"), dict):
        return _error("invalid_json_line", f"Line {number} needs method POST and an object body.", line=number)
    if line.get("url") != job.endpoint:
        return _error(
            "url_mismatch", f"Line {number}'s url {line.get('url')!r} differs from the batch's endpoint.", line=number
        )
    custom_id: str = line["custom_id"]
    if custom_id in seen:
        return _error("duplicate_custom_id", f"The custom_id {custom_id!r} appears more than once.", line=number)
    seen.add(custom_id)
    model = line["body"].get("model")
    runtime = state.runtimes.get(model) if isinstance(model, str) else None
    if runtime is None or (job.style.needs_global_batch and not runtime.deployment.global_batch):
        return _error(
            "model_not_found",
            f"Line {number}: the model {model!r} is not a Global-Batch deployment of this resource.",
            line=number,
            param="body.model",
        )
    if job.deployment is not None and model != job.deployment:
        return _error(
            "model_mismatch", f"Line {number} names {model!r}; every line must name the same deployment.", line=number
        )
    job.deployment = model
    job.lines.append(BatchLine(custom_id, line["body"]))
    return None


def _error(code: str, message: str, *, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "line": line, "param": param}
