"""How much work is in flight: rows (a resizable window) and request bytes (a memory budget).

The row window sizes itself from the limits and observed latency (Little's law, see the runner);
the byte budget keeps large scans from piling up in memory: a 20 MB image is ~27 MB of base64
JSON, so 1,024 rows of them would be tens of GB. A body larger than the whole budget still goes,
alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

DEFAULT_BYTE_BUDGET = 512 * 1024 * 1024


class Window:
    """A resizable counting gate on rows in flight."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.active = 0
        self._cond = asyncio.Condition()

    async def enter(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < self.size)
            self.active += 1

    async def leave(self) -> None:
        async with self._cond:
            self.active -= 1
            self._cond.notify()

    async def resize(self, size: int) -> None:
        async with self._cond:
            self.size = size
            self._cond.notify_all()


@dataclass(slots=True)
class LiveStats:
    """Running averages the window sizing reads."""

    latency_s: float = 2.0
    estimate: float = 1000.0

    def observe(self, latency_s: float, estimate: int) -> None:
        self.latency_s += 0.1 * (latency_s - self.latency_s)
        self.estimate += 0.1 * (estimate - self.estimate)


class ByteBudget:
    """A cap on the bytes of request bodies held at once."""

    def __init__(self, limit: int = DEFAULT_BYTE_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n
        try:
            yield
        finally:
            async with self._cond:
                self.used -= n
                self._cond.notify_all()
