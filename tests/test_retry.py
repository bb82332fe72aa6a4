from __future__ import annotations

import asyncio
import random

import pytest

from batch.core.errors import (
    ApiError,
    ContentFilteredError,
    FatalApiError,
    ImageError,
    PermanentApiError,
    RateLimitedError,
    RowError,
    TransientApiError,
)
from batch.send import retry as retry_module
from batch.send.retry import RetryPolicy, parse_retry_after, retry_delay, should_retry
from batch.send.status import classify_status, make_api_error

# Wed, 21 Oct 2015 07:28:00 GMT
DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_TS = 1_445_412_480.0


# --- parse_retry_after --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({}, None, None),
        ({}, "", None),
        ({"x-ratelimit-remaining-tokens": "0"}, "Too many requests", None),
        # retry-after-ms first
        ({"retry-after-ms": "1500"}, None, 1.5),
        ({"Retry-After-Ms": "250.5"}, None, 0.2505),
        ({"retry-after-ms": "100", "retry-after": "7"}, None, 0.1),
        ({"retry-after-ms": "0"}, None, 0.0),
        # garbage or negative retry-after-ms falls through to retry-after
        ({"retry-after-ms": "abc", "retry-after": "7"}, None, 7.0),
        ({"retry-after-ms": "-5", "retry-after": "3"}, None, 3.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, None, 3.0),
        # retry-after as seconds
        ({"retry-after": "2.5"}, None, 2.5),
        ({"RETRY-AFTER": "10"}, None, 10.0),
        ({"retry-after": " 4 "}, None, 4.0),
        ({"retry-after": "86400"}, None, 86400.0),
        ({"retry-after": "0"}, None, 0.0),
        ({"retry-after": "-1"}, None, None),
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": "1e400"}, None, None),
        ({"retry-after": "soon"}, None, None),
        ({"retry-after": ""}, None, None),
        # retry-after as an HTTP date, measured from `now`
        ({"retry-after": DATE}, None, 30.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00"}, None, 30.0),  # no zone: GMT
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, None, 0.0),  # in the past
        ({"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"}, None, None),
        # the message, when no header gives a delay
        ({}, "Requests ... have exceeded token rate limit. Please retry after 6 seconds.", 6.0),
        ({}, "RETRY AFTER 1 second", 1.0),
        ({}, "Please retry after 2.5 seconds", 2.5),
        ({}, "Please retry after 86400 seconds.", 86400.0),
        ({}, "Rate limit reached for gpt-4o. Please try again in 1.5s.", 1.5),
        ({}, "Please try again in 20ms.", 0.02),
        ({}, "retry after soon", None),
        ({}, "retry after -3 seconds", None),
        ({"retry-after": "garbage"}, "Please retry after 4 seconds.", 4.0),
        ({"retry-after": "9"}, "Please retry after 4 seconds.", 9.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], message: str | None, expected: float | None) -> None:
    assert parse_retry_after(headers, message, now=DATE_TS - 30) == expected


def test_parse_retry_after_date_defaults_to_the_current_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_module.time, "time", lambda: DATE_TS - 45.5)
    assert parse_retry_after({"retry-after": DATE}, None) == 45.5
    monkeypatch.setattr(retry_module.time, "time", lambda: DATE_TS + 1)
    assert parse_retry_after({"retry-after": DATE}, None) == 0.0  # already past


# --- classify_status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "headers", "expected"),
    [
        (400, None, "bad request", {}, PermanentApiError),
        (400, "content_filter", "The response was filtered", {}, ContentFilteredError),
        (400, "Content_Filter", "filtered", {}, ContentFilteredError),
        (400, "BadRequest", "Exceeded maximum number of images (50)", {}, PermanentApiError),
        (401, "401", "Access denied due to invalid subscription key", {}, FatalApiError),
        (403, None, "forbidden", {}, PermanentApiError),
        (404, "DeploymentNotFound", "The API deployment for this resource does not exist.", {}, FatalApiError),
        (404, None, "not found", {}, FatalApiError),
        (408, None, "timeout", {}, TransientApiError),
        (409, None, "conflict", {}, TransientApiError),
        (413, None, "too large", {}, PermanentApiError),
        (418, None, "teapot", {}, PermanentApiError),
        (422, None, "unprocessable", {}, PermanentApiError),
        (429, "429", "Please retry after 6 seconds.", {"retry-after": "6"}, RateLimitedError),
        (429, None, "", {}, RateLimitedError),
        (429, "insufficient_quota", "You exceeded your current quota", {}, FatalApiError),
        (429, "429", "Please retry after 86400 seconds.", {}, FatalApiError),
        (429, "429", "", {"retry-after": "3600"}, FatalApiError),
        (429, "429", "", {"retry-after": "3599"}, RateLimitedError),
        (429, "429", "", {"retry-after-ms": "3600000"}, FatalApiError),
        (500, None, "server error", {}, TransientApiError),
        (502, None, "bad gateway", {}, TransientApiError),
        (503, None, "overloaded", {}, TransientApiError),
        (504, None, "gateway timeout", {}, TransientApiError),
        (599, None, "", {}, TransientApiError),
        (302, None, "redirect", {}, PermanentApiError),
        # x-should-retry overrides every non-fatal case
        (400, None, "", {"x-should-retry": "true"}, TransientApiError),
        (403, None, "", {"X-Should-Retry": " TRUE "}, TransientApiError),
        (503, None, "", {"x-should-retry": "false"}, PermanentApiError),
        (429, None, "", {"x-should-retry": "false"}, PermanentApiError),
        (429, None, "", {"x-should-retry": "true"}, RateLimitedError),
        (400, "content_filter", "", {"x-should-retry": "false"}, ContentFilteredError),
        (500, None, "", {"x-should-retry": "maybe"}, TransientApiError),
        # ... but not fatal ones
        (401, None, "", {"x-should-retry": "true"}, FatalApiError),
        (404, "DeploymentNotFound", "", {"x-should-retry": "true"}, FatalApiError),
        (429, "insufficient_quota", "", {"x-should-retry": "true"}, FatalApiError),
    ],
)
def test_classify_status(
    status: int, code: str | None, message: str, headers: dict[str, str], expected: type[ApiError]
) -> None:
    assert classify_status(status, code, message, headers) is expected


def test_quota_threshold_comes_from_the_policy() -> None:
    headers = {"retry-after": "120"}
    assert classify_status(429, None, "", headers) is RateLimitedError
    assert classify_status(429, None, "", headers, RetryPolicy(quota_exhausted_after=60)) is FatalApiError


def test_make_api_error_builds_the_classified_error() -> None:
    headers = {"retry-after-ms": "2500", "x-request-id": "req-1"}
    err = make_api_error(429, "429", "HTTP 429: slow down", headers, request_id="req-1")
    assert isinstance(err, RateLimitedError)
    assert (err.retry_after, err.status, err.code, err.request_id) == (2.5, 429, "429", "req-1")
    assert err.kind == "unknown"  # the message names neither limit
    assert err.headers == headers
    assert str(err) == "HTTP 429: slow down"

    fatal = make_api_error(404, "DeploymentNotFound", "no such deployment", {})
    assert type(fatal) is FatalApiError
    assert (fatal.status, fatal.code) == (404, "DeploymentNotFound")


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Requests to ChatCompletions_Create ... have exceeded call rate limit of your tier.", "requests"),
        ("Requests to ChatCompletions_Create ... have exceeded token rate limit of your tier.", "tokens"),
        ("Rate limit reached for gpt-4o on requests per min (RPM): Limit 500.", "requests"),
        ("Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000.", "tokens"),
        ("Too Many Requests", "unknown"),
        ("", "unknown"),
    ],
)
def test_a_429_knows_its_kind_from_the_reply(message: str, kind: str) -> None:
    err = make_api_error(429, "429", f"HTTP 429 from azure deployment 'd': {message}", {"retry-after": "1"})
    assert isinstance(err, RateLimitedError)
    assert err.kind == kind


# --- should_retry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "attempt", "expected"),
    [
        (TransientApiError("502", status=502), 1, True),
        (TransientApiError("502", status=502), 7, True),
        (TransientApiError("502", status=502), 8, False),  # attempts exhausted
        (TransientApiError("502", status=502), 100, False),
        (TransientApiError("connection reset", code="connection_reset"), 1, True),
        (RateLimitedError("429", retry_after=2.0, status=429), 3, True),
        (RateLimitedError("429", retry_after=2.0, status=429), 8, False),
        (PermanentApiError("400", status=400), 1, False),
        (ContentFilteredError("filtered", status=400), 1, False),
        (FatalApiError("401", status=401), 1, False),
        (RowError("bad row"), 1, False),
        (ImageError("missing", code="image_not_found"), 1, False),
        (TimeoutError(), 1, True),
        (ConnectionResetError(), 1, True),
        (TimeoutError(), 8, False),
        (ValueError("bug"), 1, False),
        (FileNotFoundError(), 1, False),
        (asyncio.CancelledError(), 1, False),
        (KeyboardInterrupt(), 1, False),
        (SystemExit(1), 1, False),
    ],
)
def test_should_retry(error: BaseException, attempt: int, expected: bool) -> None:
    assert should_retry(error, attempt, RetryPolicy()) is expected


def test_single_attempt_policy_never_retries() -> None:
    assert should_retry(TransientApiError("x"), 1, RetryPolicy(max_attempts=1)) is False


# --- retry_delay --------------------------------------------------------------------------------


class FixedRandom(random.Random):
    """``uniform(a, b)`` is ``a + (b - a) * random()``: pin ``random()`` to pin the jitter."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


POLICY = RetryPolicy()
NO_JITTER = FixedRandom(1.0)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitedError("429", retry_after=6.0, status=429), 6.0),
        (RateLimitedError("429", retry_after=0.25, status=429), 0.25),
        (RateLimitedError("429", retry_after=120.0, status=429), 120.0),
        (RateLimitedError("429", retry_after=120.5, status=429), 2.0),  # over max_server_delay: backoff
        (RateLimitedError("429", retry_after=0.0, status=429), 2.0),
        (RateLimitedError("429", retry_after=-3.0, status=429), 2.0),
        (RateLimitedError("429", status=429, headers={"retry-after-ms": "2500"}), 2.5),
        (RateLimitedError("429", status=429), 2.0),
        (TransientApiError("503", status=503, headers={"retry-after": "3"}), 3.0),
        (TransientApiError("HTTP 503: Please retry after 4 seconds.", status=503), 4.0),
        (TransientApiError("503", status=503, headers={"retry-after": "1000"}), 2.0),
        (TransientApiError("timed out", code="timeout"), 2.0),
        (TimeoutError(), 2.0),
    ],
)
def test_retry_delay_prefers_the_server_delay(error: BaseException, expected: float) -> None:
    assert retry_delay(error, 3, POLICY, NO_JITTER) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("attempt", "backoff"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (8, 30.0), (1000, 30.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, backoff: float) -> None:
    error = TransientApiError("502", status=502)
    assert retry_delay(error, attempt, POLICY, FixedRandom(1.0)) == pytest.approx(backoff)
    assert retry_delay(error, attempt, POLICY, FixedRandom(0.0)) == pytest.approx(0.75 * backoff)
    assert retry_delay(error, attempt, POLICY, FixedRandom(0.5)) == pytest.approx(0.875 * backoff)


def test_jitter_stays_in_bounds_with_a_seeded_random() -> None:
    rng = random.Random(1234)
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    delays = [retry_delay(TransientApiError("x"), attempt, policy, rng) for attempt in range(1, 9) for _ in range(50)]
    for i, delay in enumerate(delays):
        cap = min(2.0 ** (i // 50), 10.0)
        assert 0.75 * cap <= delay <= cap
    assert len(set(delays)) > 300  # jittered, not constant


def test_same_seed_same_delays() -> None:
    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [retry_delay(TransientApiError("x"), a, POLICY, rng) for a in range(1, 6)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_retry_delay_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="1-based"):
        retry_delay(TransientApiError("x"), 0, POLICY, random.Random(0))


# --- the policy ---------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(
        max_attempts=8,
        base_delay=0.5,
        max_delay=30.0,
        max_server_delay=120.0,
        quota_exhausted_after=3600.0,
        max_throttled=50,
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_throttled": 0}, "max_throttled must be at least 1"),
        ({"base_delay": -1.0}, "base_delay must be >= 0"),
        ({"max_delay": float("nan")}, "max_delay must be >= 0"),
        ({"max_server_delay": -0.1}, "max_server_delay must be >= 0"),
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
