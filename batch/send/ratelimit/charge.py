"""Which measure of a request the server's token charge follows: our token estimate, or its size.

Azure's admission charge is "partly based on the request's character count" (azure-vision-api.md
§4.1), and a base64 image is hundreds of thousands of characters for a few hundred image tokens. A
single ratio on our token estimate cannot follow such a server: one large file costs 1-50x what a
small one does for the same estimate, and every surprise is a 429.

So each request has two measures: ``tokens`` (our estimate: prompt + images + max output) and
``chars`` (body bytes / 4 + max output, a character-based estimator's view). :class:`ChargeUnits`
keeps both over exactly one server window and, at every reading of the server's count
(``x-ratelimit-remaining-tokens``), compares each measure's window with it. The measure the server
follows gives a steady ratio; the other one wanders with the mix of requests. How much each ratio
wanders (squared log deviation from its running value) decides the measure, once enough readings
are in, only when the one in use is off by more than ~5 %, and only when the other tracks at least
twice as well.

The limiter books each request in one unit throughout a run: :meth:`ChargeUnits.booked` converts
the chosen measure into it, at the conversion the two running ratios gave when the measure was
chosen, so entries booked before a switch stay comparable with those booked after it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Protocol

__all__ = ["ChargeUnits"]

_WEIGHT = 0.1  # of a new reading in each measure's spread
_MIN_READINGS = 8
_SWITCH = 0.5  # the other measure must wander less than half as much
_GOOD_ENOUGH = 0.05**2  # a measure that tracks the server within ~5 % is kept (no switching on noise)
_RATIO_RANGE = (0.0001, 10_000.0)


class Sized(Protocol):
    sent_at: float
    tokens: int
    chars: int
    window_tokens: int
    window_chars: int
    refunded: bool


class ChargeUnits:
    """Both measures of the requests sent in the last ``window`` seconds, and which one to book."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.by_chars = False
        self._log: deque[Sized] = deque()
        self._tokens = 0  # unrefunded, in the log
        self._chars = 0
        self._horizon = -1e18  # every entry sent at or before this has left the log
        self._ratio = [1.0, 1.0]  # server units per token, per char (running)
        self._spread = [0.0, 0.0]
        self._readings = 0
        self.switches = 0
        self._conversion = 1.0  # book units per unit of the chosen measure

    def add(self, entry: Sized, now: float) -> None:
        """Record an admitted request and set its ``window_*`` (this one included)."""
        self._expire(now)
        self._log.append(entry)
        self._tokens += entry.tokens
        self._chars += entry.chars
        entry.window_tokens, entry.window_chars = self._tokens, self._chars

    def refund(self, entry: Sized) -> None:
        """``entry`` was just marked refunded (the server did not count it)."""
        if entry.sent_at > self._horizon:
            self._tokens -= entry.tokens
            self._chars -= entry.chars

    def booked(self, tokens: int, chars: int) -> int:
        """What the limiter books for a request of these measures."""
        measure = chars if self.by_chars else tokens
        return max(1, round(measure * self._conversion)) if measure else 0

    def reading(self, entry: Sized, server_used: int, book_scale: float, later: Sequence[Sized] = ()) -> bool:
        """Compare the server's count when ``entry`` arrived with both measures; True if the booked
        measure changed (``book_scale``: the limiter's server units per book unit, now; ``later``:
        requests in ``entry``'s window then, refunded since)."""
        later_tokens, later_chars = sum(p.tokens for p in later), sum(p.chars for p in later)
        ours = (entry.window_tokens - later_tokens, entry.window_chars - later_chars)
        own = (entry.tokens, entry.chars)
        if server_used <= 0 or any(o < 3 * size or o <= 0 for o, size in zip(ours, own, strict=True)):
            return False  # a window this empty says little about either ratio
        for i in (0, 1):
            ratio = min(max(server_used / ours[i], _RATIO_RANGE[0]), _RATIO_RANGE[1])
            if self._readings:
                self._spread[i] += _WEIGHT * (math.log(ratio / self._ratio[i]) ** 2 - self._spread[i])
                self._ratio[i] += 0.25 * (ratio - self._ratio[i])
            else:
                self._ratio[i] = ratio
        self._readings += 1
        active, other = (1, 0) if self.by_chars else (0, 1)
        spread = self._spread[active]
        if self._readings < _MIN_READINGS or spread <= _GOOD_ENOUGH or self._spread[other] >= _SWITCH * spread:
            return False
        self.by_chars = not self.by_chars
        self.switches += 1
        self._conversion = self._ratio[other] / max(book_scale, 1e-9)
        return True

    def _expire(self, now: float) -> None:
        horizon = self._horizon = max(self._horizon, now - self.window)
        log = self._log
        while log and log[0].sent_at <= horizon:
            entry = log.popleft()
            if not entry.refunded:
                self._tokens -= entry.tokens
                self._chars -= entry.chars
