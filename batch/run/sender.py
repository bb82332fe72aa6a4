"""One built request, from the limiter to the row's outcome: the run's side of the retry loop.

The loop itself (pacing, 429s, backoff) is :class:`batch.send.Attempts`; this module decides what
the run does with each attempt and result: counts for the progress bar and summary, the in-flight
count the window sizes itself by, live latency, and when a failure stops the whole run instead of
costing one row (a fatal reply, an endpoint that never answered, an outage).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial

from ..core import ApiError, Failure, FatalApiError, JobSpec, Outcome, Sent, TransientApiError
from ..plan import PreparedRequest
from ..send import (
    Attempts,
    ByteBudget,
    ChatClient,
    Failed,
    LimiterPacing,
    LiveStats,
    RateLimiter,
    Reply,
    RetryPolicy,
    Target,
    answer_of,
    fatal_advice,
)
from .progress import Tally

__all__ = ["DOWN_AFTER", "DOWN_S", "OUTAGE_S", "UNREACHABLE_AFTER", "RequestSender"]

# A row that runs out of attempts while nothing has succeeded for this long is a victim of an
# outage, not a bad row: the run stops (resumable) instead of writing error rows for everything.
OUTAGE_S = 60.0
# Connection refusals before any request ever succeeded: the endpoint URL is wrong or down.
UNREACHABLE_AFTER = 3
# In a pool, a deployment whose attempts failed this many times in a row (5xx, resets, refusals,
# timeouts; no success between) over at least this many seconds is down: it leaves the pool.
DOWN_AFTER, DOWN_S = 6, 5.0


class RequestSender:
    """Sends built requests under one deployment's limiter and retry policy; implements ``send.Watch``.

    ``halt`` takes the deployment out of the run (the pool's ``leave``); ``stopping`` says whether
    the run stops or the deployment has left; ``can_leave`` whether another deployment could take
    its rows (then a deployment that stopped answering leaves at once, and a row that ran out of
    attempts here is handed back, None, to be sent elsewhere)."""

    def __init__(
        self,
        spec: JobSpec,
        target: Target,
        limiter: RateLimiter,
        tally: Tally,
        stopping: Callable[[], bool],
        halt: Callable[[str], None],
        *,
        rng: random.Random,
        can_leave: Callable[[], bool] = lambda: False,
    ) -> None:
        self.spec = spec
        self.target = target
        self.limiter = limiter
        self.tally = tally
        self.policy = RetryPolicy(max_attempts=spec.limits.max_attempts)
        self.attempts = Attempts(self.policy, watch=self, rng=rng)
        self.live = LiveStats()
        self.on_wire = 0  # attempts on the wire now (the window's sizing reads it)
        self._bytes = ByteBudget()
        self._stopping = stopping
        self._halt = halt
        self._can_leave = can_leave
        self._failing: tuple[int, float] | None = None  # attempts failed in a row, since when
        self._started = time.monotonic()
        self._last_success: float | None = None
        self._connect_errors = 0

    async def send(
        self, client: ChatClient, index: int, req: PreparedRequest, url: str | None = None, *, last_chance: bool = True
    ) -> Outcome | None:
        """Attempts for one built request, and its outcome; None when the run stops or the deployment
        leaves instead, or (not ``last_chance``) when the attempts ran out here."""
        async with self._bytes.hold(len(req.body)):
            pacing = LimiterPacing(self.limiter, req.estimate.admission, req.size_estimate)
            result = await self.attempts.run(partial(self._on_the_wire, client, req.body, url), pacing)
        if isinstance(result, Failed):
            return self._failed(index, req, result, last_chance)
        self._last_success = time.monotonic()
        self._failing = None
        self.live.observe(result.wire_s, req.estimate.admission)
        c = result.reply.completion
        status, answer, failure = answer_of(c, self.spec.output.format)
        return Outcome(
            index,
            status,
            answer=answer,
            error=failure,
            sent=_sent(req),
            grounding=c.grounding,
            attempts=result.attempts,
            latency_ms=result.elapsed_s * 1000,
            request_id=c.request_id,
        )

    def _failed(self, index: int, req: PreparedRequest, result: Failed, last_chance: bool) -> Outcome | None:
        """The row's outcome for a request that got no reply; None when the run stops instead."""
        exc = result.error
        if result.kind == "stopped":
            return None
        if result.kind == "fatal":
            assert isinstance(exc, FatalApiError)
            self._halt(fatal_advice(exc, self.spec.endpoint, self.target))
            return None
        assert exc is not None
        if result.kind == "exhausted":
            quiet = time.monotonic() - (self._last_success or self._started)
            if quiet >= OUTAGE_S:
                self._halt(f"no request has succeeded for {quiet:.0f} s; the last error: {exc}")
                return None
            if not last_chance:
                return None
        msg = str(exc)
        if result.kind == "exhausted" and msg:
            msg = f"gave up after {result.attempts} attempts; last: {msg}"
        return Outcome(
            index,
            "filtered" if result.kind == "filtered" else "error",
            error=Failure(exc.code, msg),
            sent=_sent(req),
            attempts=result.attempts,
            latency_ms=result.elapsed_s * 1000,
            request_id=exc.request_id if isinstance(exc, ApiError) else None,
        )

    async def _on_the_wire(self, client: ChatClient, body: bytes, url: str | None) -> Reply:
        """One attempt, counted while it is on the wire."""
        self.on_wire += 1
        try:
            return await client.send(body, url=url)
        finally:
            self.on_wire -= 1

    # ---- what the run hears of each attempt (send.Watch) ----------------------------------------

    def stopping(self) -> bool:
        return self._stopping()

    def on_attempt(self) -> None:
        self.tally.requests += 1

    def on_throttled(self) -> None:
        self.tally.throttled += 1

    def on_transient(self, error: TransientApiError) -> None:
        now = time.monotonic()
        n, since = self._failing or (0, now)
        self._failing = (n + 1, since)
        if n + 1 >= DOWN_AFTER and now - since >= DOWN_S and self._can_leave():
            self._halt(f"{n + 1} attempts in a row failed over {now - since:.0f} s; the last: {error}")
            return
        if error.code != "connect_error":
            return
        self._connect_errors += 1
        if self._last_success is None and self._connect_errors >= UNREACHABLE_AFTER:
            self._halt(f"{error}\n  what to fix: check [endpoint].url / --endpoint, or whether the service is up")


def _sent(req: PreparedRequest) -> Sent:
    return Sent(req.detail, req.estimate.image_tokens, req.estimate.prompt_tokens, req.image_note)
