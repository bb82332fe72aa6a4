"""Retry decisions as pure functions: whether to try again, and how long to wait first.

Modelled on openai-python's ``_should_retry`` / ``_calculate_retry_timeout`` (azure-vision-api.md
§5, style-anchors.md §4), adapted to Azure's 429s:

* the server's delay comes from ``retry-after-ms``, then ``retry-after`` (seconds or an HTTP date),
  then the error message ("Please retry after 6 seconds.");
* otherwise exponential backoff ``base * 2**(attempt-1)``, capped, times a jitter in [0.75, 1].

Which status is which error (and so whether it is retried at all) is :mod:`.status`'s business;
the loop that applies these decisions is :mod:`.attempts`.

Only exceptions are ever retried: ``asyncio.CancelledError`` and ``KeyboardInterrupt`` derive from
``BaseException`` and are never retried.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from ..core import ApiError, PermanentApiError, RateLimitedError, RowError, TransientApiError

__all__ = [
    "RetryPolicy",
    "parse_retry_after",
    "retry_delay",
    "should_retry",
]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one request."""

    #: attempts in all, the first included
    max_attempts: int = 8
    #: backoff before the second attempt, in seconds; doubles per attempt
    base_delay: float = 0.5
    #: cap on the backoff
    max_delay: float = 30.0
    #: longest server-requested delay honoured; longer ones fall back to backoff
    max_server_delay: float = 120.0
    #: a server-requested delay this long or longer means the quota is exhausted (fatal)
    quota_exhausted_after: float = 3600.0
    #: 429s one request may take before it gives up. They are the limiter's pacing signal, not a
    #: fault of the row, so they have their own, larger budget and do not end the attempts early
    #: (they still count as attempts for ``max_attempts`` when a non-429 failure follows).
    max_throttled: int = 50

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.max_throttled < 1:
            raise ValueError(f"max_throttled must be at least 1, got {self.max_throttled}")
        for name in ("base_delay", "max_delay", "max_server_delay", "quota_exhausted_after"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


DEFAULT_POLICY = RetryPolicy()

# Azure: "Please retry after 6 seconds."; OpenAI: "Please try again in 1.5s." / "in 20ms".
_RETRY_AFTER_MSG = re.compile(r"retry after (\d+(?:\.\d+)?) ?seconds?\b", re.IGNORECASE)
_TRY_AGAIN_MSG = re.compile(r"try again in (\d+(?:\.\d+)?) ?(ms|s)\b", re.IGNORECASE)


def parse_retry_after(headers: Mapping[str, str], message: str | None = None, now: float | None = None) -> float | None:
    """The delay in seconds the server asked for, or None if it asked for none.

    Tries ``retry-after-ms`` (milliseconds), ``retry-after`` (seconds, or an HTTP date, measured
    from ``now``, default ``time.time()``), then the message. Header names are case-insensitive. A
    value that is not a finite number >= 0 is ignored and the next source tried; a date in the past
    gives 0.0.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    ms = _seconds(lower.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    raw = lower.get("retry-after")
    seconds = _seconds(raw)
    if seconds is not None:
        return seconds
    if raw is not None:
        when = _http_date(raw)
        if when is not None:
            return max(0.0, when - (time.time() if now is None else now))
    if message:
        m = _RETRY_AFTER_MSG.search(message)
        if m:
            return float(m.group(1))
        m = _TRY_AGAIN_MSG.search(message)
        if m:
            value = float(m.group(1))
            return value / 1000 if m.group(2).lower() == "ms" else value
    return None


def should_retry(error: BaseException, attempt: int, policy: RetryPolicy = DEFAULT_POLICY) -> bool:
    """Whether to make another attempt after ``attempt`` attempts (1-based) ended in ``error``."""
    if attempt >= policy.max_attempts or not isinstance(error, Exception):
        return False
    if isinstance(error, PermanentApiError | RowError):
        return False
    # The client maps transport failures to TransientApiError; bare timeouts and connection errors
    # (the built-in OSError subclasses) are retried too in case one slips through unmapped.
    return isinstance(error, TransientApiError | TimeoutError | ConnectionError)


def retry_delay(
    error: BaseException, attempt: int, policy: RetryPolicy = DEFAULT_POLICY, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based).

    The server's delay if it gave one in (0, ``max_server_delay``]; otherwise
    ``min(base_delay * 2**(attempt-1), max_delay)`` times a jitter factor in [0.75, 1.0] from ``rng``.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    server = _server_delay(error)
    if server is not None and 0 < server <= policy.max_server_delay:
        return server
    backoff = min(policy.base_delay * 2.0 ** min(attempt - 1, 64), policy.max_delay)
    return backoff * (rng or random).uniform(0.75, 1.0)


def _server_delay(error: BaseException) -> float | None:
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        return error.retry_after
    if isinstance(error, ApiError):
        return parse_retry_after(error.headers, str(error))
    return None


def _seconds(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _http_date(raw: str) -> float | None:
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
