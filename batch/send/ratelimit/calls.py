"""Pacing for a service limited in calls per second rather than tokens per minute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["CallPacer"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class CallPacer:
    """Even spacing for a service limited in calls per second (Azure AI Vision S1: 10 per second).

    Each ``acquire`` takes the next free slot, ``1 / per_second`` after the previous one, so
    callers never burst past the limit; a 429 pushes every later slot past its ``retry-after``.
    """

    def __init__(self, per_second: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if per_second <= 0:
            raise ValueError(f"per_second must be > 0, got {per_second}")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def acquire(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await self._sleep(slot - now)

    def on_throttle(self, retry_after: float | None) -> None:
        """The service said 429: no call before ``retry_after`` seconds (1 s when it did not say)."""
        self._next = max(self._next, self._clock() + (retry_after if retry_after is not None else 1.0))
