"""Every exception the tool raises on purpose, arranged by what the caller does next.

    BatchError                      base: a message fit to show the user (never a secret)
    ├── SpecError                   fix the job file or the command line (exit 2, nothing sent)
    ├── ManifestError               fix the manifest (exit 2, nothing sent)
    ├── UnknownModelError           name a model the tool knows, or add it (exit 2)
    ├── RowError                    this row cannot be sent: recorded as the row's error, run goes on
    │   └── ImageError              missing/corrupt/unsupported/oversized image
    ├── ApiError                    one HTTP attempt failed; carries status, code, headers
    │   ├── TransientApiError       retry: transport error, timeout, 408, 409, 429, 5xx
    │   │   └── RateLimitedError    429 (delay from retry-after-ms / retry-after / message)
    │   └── PermanentApiError       do not retry: 400, 403, 413, 422, ...
    │       ├── ContentFilteredError  400 content_filter: the row's terminal outcome is `filtered`
    │       └── FatalApiError       401, 404 DeploymentNotFound, quota exhausted: stop the run
    ├── LedgerError                 the result/state files are inconsistent with this job
    └── RunStopped                  the run stopped early (fatal API error, signal): state kept, resumable

The split follows dlt's terminal/transient markers: the retry loop asks ``isinstance(exc,
TransientApiError)`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

#: Which of a deployment's limits a 429 is about; "unknown" when the reply does not say.
ThrottleKind = Literal["tokens", "requests", "unknown"]


class BatchError(Exception):
    """Base class. ``str(exc)`` is shown to the user; it must never contain a secret."""


class SpecError(BatchError):
    """The job spec or a command-line override is invalid."""


class ManifestError(BatchError):
    """The manifest as a whole is unusable (not Parquet, missing column, wrong type, duplicate ids)."""


class UnknownModelError(BatchError):
    """A model name the tool has no image-token/pricing rules for."""


class RowError(BatchError):
    """One row cannot be turned into a request; becomes that row's error."""

    code = "row_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ImageError(RowError):
    """The row's image is missing, unreadable, unsupported or too large to repair."""

    code = "image_error"


class ApiError(BatchError):
    """One attempt against the endpoint failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or (str(status) if status is not None else "transport_error")
        self.headers: Mapping[str, str] = headers or {}
        self.request_id = request_id


class TransientApiError(ApiError):
    """Worth retrying after a delay."""


class RateLimitedError(TransientApiError):
    """HTTP 429 with a delay the server asked for (seconds), if it gave one, and the limit it is
    about (read once, from the reply, where the error is made)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, kind: ThrottleKind = "unknown", **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.kind: ThrottleKind = kind


class PermanentApiError(ApiError):
    """Retrying the same request cannot succeed."""


class ContentFilteredError(PermanentApiError):
    """Azure's content filter rejected the prompt (400 content_filter)."""


class FatalApiError(PermanentApiError):
    """Every further request would fail the same way (bad key, wrong deployment, quota gone)."""


class LedgerError(BatchError):
    """The output/state on disk does not belong to this job or is damaged."""


class RunStopped(BatchError):
    """The run stopped before every row had an outcome; running the job again resumes it."""
