"""The two pacers as the retry loop sees them (:class:`~batch.send.attempts.Pacing`).

Chat calls are paced by a :class:`RateLimiter` (token and request windows, learning from headers):
one :class:`LimiterPacing` per request carries its size. Azure AI Vision read is paced by a
:class:`CallPacer` (calls per second): one :class:`CallPacing` serves every call.
"""

from __future__ import annotations

from ..core import RateLimitedError, TransientApiError
from .ratelimit.calls import CallPacer
from .ratelimit.limiter import Permit, RateLimiter
from .replies import Reply

__all__ = ["CallPacing", "LimiterPacing"]


class LimiterPacing:
    """One chat request's pacing: admitted by its estimate, books corrected by each reply."""

    __slots__ = ("_limiter", "_estimate", "_size")

    def __init__(self, limiter: RateLimiter, estimate: int, size: int | None = None) -> None:
        self._limiter = limiter
        self._estimate = estimate
        self._size = size

    async def acquire(self) -> Permit:
        return await self._limiter.acquire(self._estimate, self._size)

    def on_success(self, permit: Permit, reply: Reply) -> None:
        self._limiter.on_response(permit, reply.headers)

    def on_throttle(self, permit: Permit, error: RateLimitedError) -> None:
        self._limiter.on_throttle(permit, error.retry_after, error.kind, error.headers)

    def on_transient(self, permit: Permit, error: TransientApiError) -> None:
        if error.code == "connect_error":  # never reached the server: nothing was charged
            self._limiter.refund(permit)
        elif error.headers:  # a 5xx still says what the server has counted
            self._limiter.on_response(permit, error.headers)

    def refund(self, permit: Permit) -> None:
        self._limiter.refund(permit)


class CallPacing:
    """Calls evenly spaced; a 429 pushes every later call past its ``retry-after``."""

    __slots__ = ("_pacer",)

    def __init__(self, pacer: CallPacer) -> None:
        self._pacer = pacer

    async def acquire(self) -> None:
        await self._pacer.acquire()

    def on_success(self, permit: None, reply: object) -> None:
        pass

    def on_throttle(self, permit: None, error: RateLimitedError) -> None:
        self._pacer.on_throttle(error.retry_after)

    def on_transient(self, permit: None, error: TransientApiError) -> None:
        pass

    def refund(self, permit: None) -> None:
        pass
