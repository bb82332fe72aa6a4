"""From a non-2xx reply to the error class that says what the caller does next, parsed once.

:func:`make_api_error` is the one place a reply's status, code, message and headers are read: it
picks the class (:func:`classify_status`), and for a 429 also the server's delay and which limit the
429 is about (tokens or requests), so nothing downstream parses message text again.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core import (
    ApiError,
    ContentFilteredError,
    FatalApiError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
)
from .ratelimit.headers import throttle_kind
from .retry import DEFAULT_POLICY, RetryPolicy, parse_retry_after

__all__ = ["classify_status", "make_api_error"]


def classify_status(
    status: int,
    code: str | None,
    message: str | None,
    headers: Mapping[str, str],
    policy: RetryPolicy = DEFAULT_POLICY,
) -> type[ApiError]:
    """The error class for a non-2xx reply: what the caller should do next.

    401, 404 and an exhausted quota (429 with ``insufficient_quota`` or a wait of at least
    ``policy.quota_exhausted_after``) are fatal for the run. Otherwise 408, 409, 429 and 5xx are
    transient, 400 ``content_filter`` is a filtered row and everything else (other 4xx, and any
    unexpected non-error status) is permanent. As in openai-python, an ``x-should-retry`` header
    overrides that: ``true`` makes a permanent class transient, ``false`` a transient one permanent.
    """
    if status in (401, 404):
        return FatalApiError
    if status == 429:
        if (code or "").lower() == "insufficient_quota":
            return FatalApiError
        delay = parse_retry_after(headers, message)
        if delay is not None and delay >= policy.quota_exhausted_after:
            return FatalApiError
    natural = _natural_class(status, code)
    override = {k.lower(): v for k, v in headers.items()}.get("x-should-retry", "").strip().lower()
    if override == "true" and not issubclass(natural, TransientApiError):
        return TransientApiError
    if override == "false" and issubclass(natural, TransientApiError):
        return PermanentApiError
    return natural


def _natural_class(status: int, code: str | None) -> type[ApiError]:
    if status == 429:
        return RateLimitedError
    if status in (408, 409) or status >= 500:
        return TransientApiError
    if status == 400 and (code or "").lower() == "content_filter":
        return ContentFilteredError
    return PermanentApiError


def make_api_error(
    status: int,
    code: str | None,
    message: str,
    headers: Mapping[str, str],
    *,
    request_id: str | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> ApiError:
    """The classified error instance for a reply; a 429 carries the server's delay and its kind."""
    cls = classify_status(status, code, message, headers, policy)
    if cls is RateLimitedError:
        return RateLimitedError(
            message,
            retry_after=parse_retry_after(headers, message),
            kind=throttle_kind(message),
            status=status,
            code=code,
            headers=headers,
            request_id=request_id,
        )
    return cls(message, status=status, code=code, headers=headers, request_id=request_id)
