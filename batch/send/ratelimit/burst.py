"""The last second of a rate limiter's log, kept as a running sum: how long a request waits so that
no second carries more than a set share of the minute's tokens.

A sliding window replays every burst a minute later, and a burst reaches the server spread out (new
connections, a cold server), so :class:`~batch.send.ratelimit.limiter.RateLimiter` smooths bursts: at most
``factor`` times the steady token rate in any second. This is asked at every admission; walking the
second's entries each time cost a quarter of the client's CPU at 800 requests/s, so the sum is kept
as entries come, leave and are refunded, and the entries are walked only when a request must wait.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["BurstLog"]


class Entry(Protocol):
    sent_at: float
    estimate: int
    refunded: bool


class BurstLog:
    """Entries sent in the last ``span`` seconds, with the sum of their unrefunded estimates."""

    def __init__(self, span: float = 1.0) -> None:
        self.span = span
        self._log: deque[Entry] = deque()
        self._sum = 0
        self._horizon = -1e18  # every entry sent at or before this has left the log

    def add(self, entry: Entry) -> None:
        """Record an admitted entry (entries come in the order they were sent)."""
        self._log.append(entry)
        self._sum += entry.estimate

    def refund(self, entry: Entry) -> None:
        """``entry`` was just marked refunded: it no longer counts, if it still is in the log."""
        if entry.sent_at > self._horizon:
            self._sum -= entry.estimate

    def recent(self, now: float) -> int:
        """Unrefunded estimates sent in the ``span`` seconds before ``now``."""
        self._horizon = horizon = max(self._horizon, now - self.span)
        log = self._log
        while log and log[0].sent_at <= horizon:
            entry = log.popleft()
            if not entry.refunded:
                self._sum -= entry.estimate
        return self._sum

    def wait(self, now: float, need: float, cap: float, scale: float) -> float:
        """Seconds until ``need`` more (server units; the log's estimates times ``scale``) fits
        under ``cap`` for the last ``span`` seconds. ``need <= cap``: a request alone always fits."""
        recent = scale * self.recent(now)
        if recent + need <= cap:  # the common case, in O(1)
            return 0.0
        for entry in self._log:  # the oldest leave first: wait until enough have left
            if not entry.refunded:
                recent -= scale * entry.estimate
                if recent + need <= cap:
                    return entry.sent_at + self.span - now
        return 0.0
