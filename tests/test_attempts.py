"""The one retry loop (``send.attempts``) on a fake clock: the exact delays it sleeps, the one 429
budget for chat and Vision read alike, the single 404 retry, and what is never retried.

Each attempt is a scripted reply: the real status-to-error mapping (``make_api_error``) turns a
status and headers into the error the HTTP client would raise. Pacing is the real limiter or call
pacer on the same fake clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from batch.core import ApiError, Completion, FatalApiError, RateLimitedError, RowError, TransientApiError
from batch.send import Attempts, CallPacing, Delivered, Failed, LimiterPacing, RateLimiter, Reply, RetryPolicy
from batch.send.ratelimit.calls import CallPacer
from batch.send.status import make_api_error

AZURE_TOKENS_429 = (
    "Requests to the ChatCompletions_Create Operation have exceeded token rate limit of your current "
    "OpenAI S0 pricing tier. Please retry after 2 seconds."
)


class Time:
    """One fake clock; each sleeper records what it was asked to sleep and moves the clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleeper(self, log: list[float]) -> Callable[[float], Awaitable[None]]:
        async def sleep(seconds: float) -> None:
            log.append(round(seconds, 6))
            self.t += max(seconds, 0.0)

        return sleep


class NoJitter(random.Random):
    def random(self) -> float:
        return 1.0


class Watch:
    def __init__(self, stop_on_connect_error: bool = False) -> None:
        self.attempts = self.throttled = 0
        self.transient: list[str] = []
        self.stop = False
        self._stop_on_connect_error = stop_on_connect_error

    def stopping(self) -> bool:
        return self.stop

    def on_attempt(self) -> None:
        self.attempts += 1

    def on_throttled(self) -> None:
        self.throttled += 1

    def on_transient(self, error: TransientApiError) -> None:
        self.transient.append(error.code)
        if self._stop_on_connect_error and error.code == "connect_error":
            self.stop = True


def error(status: int, code: str | None = None, message: str = "", **headers: str) -> ApiError:
    """The error the client raises for this reply."""
    return make_api_error(status, code, f"HTTP {status} from the test deployment: {message}", headers)


def reply(answer: str) -> Reply:
    return Reply(Completion(answer, "stop", None, None, None), {})


OK = reply("ok")
NEVER = reply("never reached")


class Script:
    """The server's replies in turn: an error is raised, a reply returned. Records send times."""

    def __init__(self, time: Time, *steps: ApiError | Reply) -> None:
        self.time = time
        self.steps = list(steps)
        self.sent_at: list[float] = []

    async def __call__(self) -> Reply:
        self.sent_at.append(self.time.t)
        step = self.steps.pop(0)
        if isinstance(step, ApiError):
            raise step
        return step


def loop(
    time: Time, slept: list[float], *, watch: Watch | None = None, not_found_retry_s: float | None = 3.0, **policy: int
) -> Attempts:
    return Attempts(
        RetryPolicy(**policy),  # type: ignore[arg-type]
        watch=watch,
        rng=NoJitter(0),
        clock=time,
        sleep=time.sleeper(slept),
        not_found_retry_s=not_found_retry_s,
    )


def call_pacing(time: Time, slept: list[float] | None = None) -> CallPacing:
    return CallPacing(CallPacer(1000, clock=time, sleep=time.sleeper([] if slept is None else slept)))


def limiter(time: Time, tpm: int | None = 1_000_000) -> RateLimiter:
    return RateLimiter(tpm, None, clock=time, sleep=time.sleeper([]), burst_factor=None, skew=0.0)


# ---- transient failures: backoff on the injected sleep -----------------------------------------


async def test_transient_failures_back_off_then_succeed() -> None:
    time, slept = Time(), []
    script = Script(time, error(503), error(502), error(500), OK)
    result = await loop(time, slept).run(script, call_pacing(time))
    assert slept == [0.5, 1.0, 2.0]  # base_delay 0.5, doubling, no jitter
    assert result == Delivered(OK, attempts=4, elapsed_s=3.5, wire_s=0.0)


async def test_the_servers_delay_beats_the_backoff() -> None:
    time, slept = Time(), []
    script = Script(time, error(503, **{"retry-after": "7"}), error(502, **{"retry-after-ms": "250"}), OK)
    assert isinstance(await loop(time, slept).run(script, call_pacing(time)), Delivered)
    assert slept == [7.0, 0.25]


async def test_out_of_attempts_the_last_error_is_kept() -> None:
    time, slept = Time(), []
    script = Script(time, *[error(500, "InternalServerError", "boom")] * 4)
    watch = Watch()
    result = await loop(time, slept, watch=watch, max_attempts=4).run(script, call_pacing(time))
    assert slept == [0.5, 1.0, 2.0]  # no sleep after the last attempt
    assert isinstance(result, Failed)
    assert (result.kind, result.attempts, result.throttled, result.elapsed_s) == ("exhausted", 4, 0, 3.5)
    assert isinstance(result.error, TransientApiError) and result.error.code == "InternalServerError"
    assert watch.attempts == 4 and watch.transient == ["InternalServerError"] * 4


# ---- 429s: the pacing's cool-down, and one budget -----------------------------------------------


async def test_a_429_waits_in_the_pacing_not_in_the_loop() -> None:
    time, slept, paced = Time(), [], []
    script = Script(time, error(429, "429", AZURE_TOKENS_429), OK)
    result = await loop(time, slept).run(script, call_pacing(time, paced))
    assert slept == []  # the loop itself never sleeps on a 429 ...
    assert paced == [2.0]  # ... the next acquire waits out the cool-down the 429 set
    assert script.sent_at == [1000.0, 1002.0]
    assert isinstance(result, Delivered) and result.attempts == 2


async def test_429s_do_not_use_up_the_attempts() -> None:
    time, slept = Time(), []
    script = Script(time, *[error(429, "429", **{"retry-after": "1"})] * 5, OK)
    watch = Watch()
    result = await loop(time, slept, watch=watch, max_attempts=2).run(script, call_pacing(time))
    assert isinstance(result, Delivered) and result.attempts == 6
    assert (watch.attempts, watch.throttled) == (6, 5)


@pytest.mark.parametrize("kind", ["chat", "vision"])
async def test_one_429_budget_for_chat_and_vision(kind: str) -> None:
    """RetryPolicy.max_throttled is the one budget: both pacings give up after the same number."""
    time, slept = Time(), []
    script = Script(time, *[error(429, "429", AZURE_TOKENS_429)] * 3, NEVER)
    attempts = loop(time, slept, max_throttled=3)
    if kind == "chat":
        result = await attempts.run(script, LimiterPacing(limiter(time), 1000))
    else:
        result = await attempts.run(script, call_pacing(time))
    assert isinstance(result, Failed)
    assert (result.kind, result.attempts, result.throttled) == ("exhausted", 3, 3)
    assert isinstance(result.error, RateLimitedError) and result.error.kind == "tokens"
    assert script.sent_at == [1000.0, 1002.0, 1004.0]  # each one waited for its retry-after
    assert slept == [] and script.steps == [NEVER]


async def test_a_chat_429_refunds_its_charge() -> None:
    time, slept = Time(), []
    lim = limiter(time)
    script = Script(time, error(429, "429", AZURE_TOKENS_429), OK)
    result = await loop(time, slept).run(script, LimiterPacing(lim, 1000))
    assert isinstance(result, Delivered) and script.sent_at == [1000.0, 1002.0]
    assert lim.throttled == 1
    # The 429's charge is refunded, the success's kept (at the scale the 429 nudged up).
    assert lim.charged_last_window() == pytest.approx(1000 * lim.scale)


async def test_one_429_cools_down_every_request_of_the_pacing() -> None:
    time, slept = Time(), []
    pacing, attempts = call_pacing(time), loop(time, slept)
    first = Script(time, error(429, "429", AZURE_TOKENS_429), OK)
    second = Script(time, OK)
    results = await asyncio.gather(attempts.run(first, pacing), attempts.run(second, pacing))
    assert all(isinstance(r, Delivered) for r in results)
    assert first.sent_at[0] == 1000.0
    assert min(first.sent_at[1], second.sent_at[0]) >= 1002.0  # neither went before the retry-after


# ---- 404, fatal, filtered, permanent ------------------------------------------------------------


async def test_a_404_is_retried_once_after_a_delay() -> None:
    time, slept = Time(), []
    not_found = error(404, "DeploymentNotFound", "The API deployment for this resource does not exist.")
    script = Script(time, not_found, OK)
    result = await loop(time, slept).run(script, call_pacing(time))
    assert slept == [3.0]
    assert isinstance(result, Delivered) and result.attempts == 2


async def test_a_second_404_is_fatal() -> None:
    time, slept = Time(), []
    not_found = error(404, "DeploymentNotFound")
    script = Script(time, not_found, not_found, NEVER)
    result = await loop(time, slept).run(script, call_pacing(time))
    assert slept == [3.0]
    assert isinstance(result, Failed) and (result.kind, result.attempts) == ("fatal", 2)
    assert isinstance(result.error, FatalApiError) and result.error.code == "DeploymentNotFound"


async def test_no_404_retry_when_the_caller_wants_none() -> None:
    time, slept = Time(), []
    script = Script(time, error(404), NEVER)
    result = await loop(time, slept, not_found_retry_s=None).run(script, call_pacing(time))
    assert slept == [] and isinstance(result, Failed) and (result.kind, result.attempts) == ("fatal", 1)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "401", "fatal"),
        (429, "insufficient_quota", "fatal"),
        (400, "content_filter", "filtered"),
        (413, "request_too_large", "error"),
        (400, None, "error"),
    ],
)
async def test_never_retried(status: int, code: str | None, kind: str) -> None:
    time, slept = Time(), []
    lim = limiter(time)
    script = Script(time, error(status, code), NEVER)
    result = await loop(time, slept).run(script, LimiterPacing(lim, 1000))
    assert isinstance(result, Failed) and (result.kind, result.attempts) == (kind, 1)
    assert slept == [] and len(script.sent_at) == 1
    assert isinstance(result.error, ApiError) and result.error.status == status
    # A fatal error is refunded (the run stops); a filtered or refused prompt was charged.
    assert lim.charged_last_window() == (0 if kind == "fatal" else 1000)


async def test_a_request_that_can_never_fit_is_an_error_without_attempts() -> None:
    time, slept = Time(), []
    script = Script(time, NEVER)
    result = await loop(time, slept).run(script, LimiterPacing(limiter(time, tpm=500), 1000))
    assert isinstance(result, Failed) and (result.kind, result.attempts) == ("error", 0)
    assert isinstance(result.error, RowError) and result.error.code == "request_too_large"
    assert script.sent_at == []


async def test_a_bug_in_send_is_not_retried_or_wrapped() -> None:
    time, slept = Time(), []

    async def broken() -> Reply:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await loop(time, slept).run(broken, call_pacing(time))


# ---- the run stopping ---------------------------------------------------------------------------


async def test_no_attempt_once_the_run_is_stopping() -> None:
    time, slept = Time(), []
    watch = Watch()
    watch.stop = True
    script = Script(time, NEVER)
    result = await loop(time, slept, watch=watch).run(script, call_pacing(time))
    assert result == Failed("stopped", None, attempts=0, throttled=0, elapsed_s=0.0)
    assert script.sent_at == [] and watch.attempts == 0


async def test_the_watch_can_stop_the_run_after_a_transient_failure() -> None:
    """The runner stops on connection refusals before any success: no backoff sleep first."""
    time, slept = Time(), []
    watch = Watch(stop_on_connect_error=True)
    refused = TransientApiError("cannot connect to the test deployment", code="connect_error")
    script = Script(time, refused, NEVER)
    result = await loop(time, slept, watch=watch).run(script, LimiterPacing(limiter(time), 1000))
    assert isinstance(result, Failed) and (result.kind, result.attempts) == ("stopped", 1)
    assert result.error is refused and slept == []


async def test_a_request_exhausted_while_the_run_stops_is_stopped_not_failed() -> None:
    time, slept = Time(), []
    watch = Watch()
    script = Script(time, error(500))

    async def send() -> Reply:
        watch.stop = True  # another worker halted the run while this attempt was on the wire
        return await script()

    result = await loop(time, slept, watch=watch, max_attempts=1).run(send, call_pacing(time))
    assert isinstance(result, Failed) and result.kind == "stopped" and result.attempts == 1
