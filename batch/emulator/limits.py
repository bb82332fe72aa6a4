"""Azure-like rate-limit windows, one token window and one request window per deployment.

Azure charges each request an estimated token count at admission, before the model runs,
and never refunds it; requests are counted over short (10 s) periods so bursts are refused
below the per-minute total. Both windows come in two flavours:

* ``sliding``: a charge stays in the window for exactly ``length`` seconds after admission;
  the wait for a refused request is the real time until enough old charges expire;
* ``fixed``: counters reset at window boundaries (aligned to the limiter's creation); the
  wait is the time to the next boundary.

A refused request charges nothing. The clock is a parameter so tests can drive it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Admission", "DeploymentLimiter", "FixedWindow", "SlidingWindow", "Window", "make_window"]

# Float slack so a charge admitted at t expires at exactly t + length despite rounding.
_EPS = 1e-9


class Window(Protocol):
    capacity: int

    def used(self, now: float) -> int: ...

    def wait_for(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` more would fit (0 if it fits now, inf if never)."""
        ...

    def take(self, amount: int, now: float) -> None: ...

    def reset(self, now: float) -> None: ...


class SlidingWindow:
    """Sum of the charges admitted within the last ``length`` seconds."""

    def __init__(self, capacity: int, length: float) -> None:
        self.capacity = capacity
        self.length = length
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self, now: float) -> None:
        horizon = now - self.length + _EPS
        entries = self._entries
        while entries and entries[0][0] <= horizon:
            self._total -= entries.popleft()[1]

    def used(self, now: float) -> int:
        self._expire(now)
        return self._total

    def wait_for(self, amount: int, now: float) -> float:
        if amount > self.capacity:
            return math.inf
        self._expire(now)
        excess = self._total + amount - self.capacity
        if excess <= 0:
            return 0.0
        freed = 0
        for admitted_at, charge in self._entries:
            freed += charge
            if freed >= excess:
                return max(0.0, admitted_at + self.length - now)
        return self.length  # unreachable: the entries sum to more than the excess

    def take(self, amount: int, now: float) -> None:
        self._expire(now)
        self._entries.append((now, amount))
        self._total += amount

    def reset(self, now: float) -> None:
        self._entries.clear()
        self._total = 0


class FixedWindow:
    """A counter that resets every ``length`` seconds, counted from ``origin``."""

    def __init__(self, capacity: int, length: float, origin: float) -> None:
        self.capacity = capacity
        self.length = length
        self._origin = origin
        self._index = 0
        self._total = 0

    def _roll(self, now: float) -> None:
        index = math.floor((now - self._origin + _EPS) / self.length)
        if index != self._index:
            self._index = index
            self._total = 0

    def used(self, now: float) -> int:
        self._roll(now)
        return self._total

    def wait_for(self, amount: int, now: float) -> float:
        if amount > self.capacity:
            return math.inf
        self._roll(now)
        if self._total + amount <= self.capacity:
            return 0.0
        return max(0.0, self._origin + (self._index + 1) * self.length - now)

    def take(self, amount: int, now: float) -> None:
        self._roll(now)
        self._total += amount

    def reset(self, now: float) -> None:
        self._origin = now
        self._index = 0
        self._total = 0


def make_window(mode: str, capacity: int, length: float, now: float) -> Window:
    if mode == "fixed":
        return FixedWindow(capacity, length, now)
    return SlidingWindow(capacity, length)


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of one admission attempt and the figures for the rate-limit headers."""

    admitted: bool
    #: ``"token"`` or ``"call"`` when refused (the window that needs the longer wait).
    refused_by: str | None
    retry_after_s: float
    remaining_tokens: int
    remaining_requests: int


class DeploymentLimiter:
    """A deployment's token window (capacity TPM) and request window (capacity RPM/6)."""

    def __init__(
        self,
        *,
        tpm: int,
        request_capacity: int,
        token_window_s: float,
        request_window_s: float,
        mode: str,
        now: float,
    ) -> None:
        self.tokens = make_window(mode, tpm, token_window_s, now)
        self.requests = make_window(mode, request_capacity, request_window_s, now)

    def admit(self, charge: int, now: float) -> Admission:
        """Charge ``charge`` tokens and one request if both fit; otherwise charge nothing."""
        token_wait = self.tokens.wait_for(charge, now)
        call_wait = self.requests.wait_for(1, now)
        if token_wait == 0.0 and call_wait == 0.0:
            self.tokens.take(charge, now)
            self.requests.take(1, now)
            return Admission(True, None, 0.0, *self._remaining(now))
        refused_by = "token" if token_wait >= call_wait else "call"
        return Admission(False, refused_by, max(token_wait, call_wait), *self._remaining(now))

    def remaining(self, now: float) -> tuple[int, int]:
        return self._remaining(now)

    def _remaining(self, now: float) -> tuple[int, int]:
        return (
            max(0, self.tokens.capacity - self.tokens.used(now)),
            max(0, self.requests.capacity - self.requests.used(now)),
        )

    def reset(self, now: float) -> None:
        self.tokens.reset(now)
        self.requests.reset(now)
