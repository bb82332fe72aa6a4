"""The books of a client-side rate limiter: what we sent, and when the next request fits.

Azure charges each request an *estimated maximum* at admission (prompt + max output tokens) against a
per-minute token budget, and counts requests over 10-second windows (RPM/6 per window). We keep the
same books: a sliding log of what we sent in the last 60 s (tokens) and 10 s (requests), and admit a
request only when both have room. A sliding log never exceeds a fixed-window server either.

The server admits a request a little after we send it, and the opening burst arrives later still;
a sliding window replays that spread every minute. So bursts are smoothed (at most 5x the steady
rate in any second, :mod:`.burst`); entries sent before the first reply or in the second after it
stay in our log one second longer; and every entry stays ``skew`` seconds longer than the window
(one margin per window). The first request goes alone (a probe): its reply says what the windows
already hold (a killed run's traffic, another job's) before an opening burst collides with it; it
waits 2 s for that reply with limits configured, 10 s without. Until the first reply, the opening
burst is held to 90 % of the limit. A 429's cool-down holds every caller back.

What the books learn from replies and 429s (limits, the server's charge ``scale``, the offset, the
margins) is :mod:`.limiter`'s :class:`RateLimiter`, built on :class:`Books`. The clock and the sleep
are parameters, so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import takewhile

from ...core import RowError
from .burst import BurstLog
from .charge import ChargeUnits

__all__ = ["OPENING_HOLD", "Books", "Clock", "Permit", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_OPENING_SHARE = 0.9
OPENING_HOLD = 1.0  # extra seconds in our log for entries sent before the first reply
_PROBE_WAIT = 10.0  # limits unknown: how long the first request goes alone before we stop waiting for its reply
_PROBE_WAIT_KNOWN = 2.0  # the same with limits configured (a slow first reply costs at most this)
_BURST_SPAN = 1.0  # bursts are measured over one second
_MAX_NAP = 1.0
_SHARED_SHARE = 0.96  # of the deployment's limit that we fill while others use it too
_OFFSET_HOLD = 5.0  # blocked only by others' traffic this long with no reading: one request goes to read it


@dataclass(slots=True, eq=False)
class Permit:
    """One admitted request's entry in the books."""

    sent_at: float
    estimate: int
    window_estimate: int  # our estimated tokens in the last token_window seconds, this request included
    window_requests: int = 1  # our requests in the last request_window seconds, this one included
    hold: float = 0.0  # extra seconds this entry stays in our log
    cum: int = 0  # our estimates admitted so far, this one included (refunds not deducted)
    refunded: bool = field(default=False)
    expired: bool = field(default=False)
    tokens: int = 0  # the request's two measures (see ratelimit_charge), and theirs over the window
    chars: int = 0
    window_tokens: int = 0
    window_chars: int = 0


class Books:
    """The token and request windows of a deployment: admission, expiry, refunds, and how full they are."""

    def __init__(
        self,
        tpm: int | None,
        rpm: int | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        token_window: float = 60.0,
        request_window: float = 10.0,
        utilisation: float = 0.99,
        skew: float = 0.1,
        burst_factor: float | None = 5.0,
        opening_hold: float = OPENING_HOLD,
        probe_first: bool = True,
    ) -> None:
        self._clock = clock
        self._probe_first = probe_first
        self._sleep = sleep
        self.token_window = token_window
        self.request_window = request_window
        self._utilisation = utilisation
        self._burst_factor = burst_factor
        self._opening_hold = opening_hold
        # Our log frees a little later than the server's window: admission comes after sending.
        self._skew = skew
        self._request_skew = skew
        self.tpm: int | None = tpm  # our budget: the job's ceiling, lowered by the deployment's limit
        self.server_tpm: int | None = None  # the deployment's own limit, once a header says it
        self.request_capacity: float | None = rpm * request_window / 60.0 if rpm else None
        self.scale = 1.0  # server units per unit of our books (learned from replies)
        self._tokens: deque[Permit] = deque()
        self._token_sum = 0  # sum of unrefunded estimates in _tokens
        self._requests: deque[Permit] = deque()
        self._burst = BurstLog(_BURST_SPAN) if burst_factor is not None else None
        self._charge = ChargeUnits(token_window)
        self._refunds: deque[tuple[float, Permit]] = deque()  # (refunded at, the request), 3 windows
        self._hold_until = -1e18  # when the last opening entry's hold ends
        self._cum = 0  # our estimates admitted so far
        self._mean_estimate = 0.0
        self._cooldown_until = 0.0
        self._calibrated = False  # no reply yet: the opening burst is held back
        self._calibrated_at = 0.0
        self._probe: Permit | None = None  # the run's first request, which goes alone
        self._offset = 0.0  # server-counted tokens our books miss, as of _offset_at
        self._offset_at = -1e18
        self._offset_probe_at = -1e18  # when a request last went only to read the offset anew
        self.shared_until = -1e18  # others were seen: the whole window is filled only to _SHARED_SHARE
        self._others_requests = 0.0  # others' requests in the server's request window, as last read
        self._others_requests_at = -1e18
        self._lock = asyncio.Lock()
        self.admitted = 0

    async def acquire(self, estimate: int, chars: int | None = None) -> Permit:
        """Wait until a request of ``estimate`` tokens (our units) fits, then record it.

        ``chars``: the request's size as a character-based estimator sees it (body bytes / 4 + max
        output); booked instead of ``estimate`` once the server's count shows it follows size
        (:mod:`batch.send.ratelimit.charge`). Callers are served in arrival order. Raises RowError if the
        request could never fit.
        """
        chars = estimate if chars is None else chars
        if self.tpm is not None and estimate > self.tpm:
            raise RowError(
                f"request needs an estimated {estimate} tokens, more than the deployment's whole "
                f"limit of {self.tpm} tokens per minute; lower max_tokens or the image detail",
                code="request_too_large",
            )
        async with self._lock:
            while True:
                now = self._clock()
                booked = self._charge.booked(estimate, chars)
                wait = self._wait_time(now, booked)
                if wait <= 0:
                    break
                # Short naps: a reply arriving meanwhile may change the limits or refund a charge.
                await self._sleep(min(wait, _MAX_NAP))
            permit = self._admit(now, booked)
            permit.tokens, permit.chars = estimate, chars
            self._charge.add(permit, now)
            return permit

    def _admit(self, now: float, estimate: int) -> Permit:
        self._token_sum += estimate
        self._cum += estimate
        weight = 0.05 if self.admitted else 1.0
        self._mean_estimate += weight * (estimate - self._mean_estimate)
        # What our log holds over exactly one server window (not the margin beyond it), for readings.
        in_window = self._token_sum - sum(
            p.estimate for p in self._front(self._tokens, now - self.token_window) if not p.refunded
        )
        requests = 1 + len(self._requests) - len(self._front(self._requests, now - self.request_window))
        opening = not self._calibrated or now < self._calibrated_at + self._opening_hold
        permit = Permit(now, estimate, in_window, requests, self._opening_hold if opening else 0.0)
        if permit.hold:
            self._hold_until = now + permit.hold
        permit.cum = self._cum
        self._tokens.append(permit)
        self._requests.append(permit)
        if self._burst is not None:
            self._burst.add(permit)
        if self._probe_first and not self._calibrated and self._probe is None:
            self._probe = permit
        self.admitted += 1
        return permit

    @staticmethod
    def _front(log: deque[Permit], horizon: float) -> list[Permit]:
        """The oldest entries of ``log`` sent at or before ``horizon`` (the margin beyond a window)."""
        return list(takewhile(lambda p: p.sent_at <= horizon, log))

    def _expire(self, now: float) -> None:
        horizon = now - self.token_window - self._skew
        while self._tokens and self._tokens[0].sent_at + self._tokens[0].hold <= horizon:
            p = self._tokens.popleft()
            p.expired = True
            if not p.refunded:
                self._token_sum -= p.estimate
        rhorizon = now - self.request_window - self._request_skew
        while self._requests and self._requests[0].sent_at + self._requests[0].hold <= rhorizon:
            self._requests.popleft()

    def _wait_time(self, now: float, estimate: int) -> float:
        self._expire(now)
        wait = self._cooldown_until - now
        probe = self._probe
        if probe is not None and not self._calibrated and not probe.refunded:
            # The first request goes alone: its reply says what the windows already hold (a killed
            # run's, another job's), before an opening burst can collide with them.
            unknown = self.tpm is None and self.request_capacity is None
            wait = max(wait, probe.sent_at + (_PROBE_WAIT if unknown else _PROBE_WAIT_KNOWN) - now)
        cap = self.request_capacity
        if cap is not None and now - self._others_requests_at < self.request_window:
            cap -= self._others_requests  # others' requests, held until a window without a reading
        if cap is not None and len(self._requests) >= max(1, int(cap)):
            p = self._requests[len(self._requests) - max(1, int(cap))]
            free_at = p.sent_at + p.hold
            if self._requests[0].hold:  # opening entries (a prefix of the log) may free later than p
                free_at = max(free_at, self._hold_until)
            wait = max(wait, free_at + self.request_window + self._request_skew - now)
        if self.tpm is not None:
            share = self._utilisation if self._calibrated else _OPENING_SHARE
            budget = self.tpm * share
            need = min(self.scale * estimate, budget)
            if self._burst is not None and self._burst_factor is not None:
                cap = max(need, self._burst_factor * self.tpm * _BURST_SPAN / self.token_window)
                wait = max(wait, self._burst.wait(now, need, cap, self.scale))
            wait = max(wait, self._token_wait(now, need, self.tpm, share))
        return wait

    def _token_wait(self, now: float, need: float, tpm: int, share: float) -> float:
        """How long until ``need`` fits our own budget (``tpm``) and, with others' traffic, the deployment's."""
        own = self.scale * self._token_sum
        server = self.server_tpm or tpm
        whole = server * share
        others = self._offset_now(now)
        if now < self.shared_until:  # others about: leave their next requests a little room,
            whole = min(whole, server * _SHARED_SHARE)
            # and as much of the room as we took since the last reading (two clients that each fill
            # all the room they read overfill it together)
            for p in reversed(self._tokens):
                if p.sent_at <= self._offset_at:
                    break
                if not p.refunded:
                    others += self.scale * p.estimate
        excess = own + others + need - whole
        if server > tpm:  # a ceiling below the deployment's limit
            excess = max(excess, own + need - tpm * share)
        if excess <= 0:
            return 0.0
        free_at = -1e18  # entries free in log order, except the opening ones held longer
        for p in self._tokens:
            if p.refunded:
                continue
            excess -= self.scale * p.estimate
            free_at = max(free_at, p.sent_at + p.hold)
            if excess <= 0:
                return free_at + self.token_window + self._skew - now
        # Only others' traffic stands in the way: after a while with no reading, one goes to read it anew.
        if now - max(self._offset_at, self._offset_probe_at) >= _OFFSET_HOLD:
            self._offset_probe_at = now
            return 0.0
        return min(1.0, self.token_window / 10)

    def _offset_now(self, now: float) -> float:
        """Others' tokens in the server's window as last read; held (what of a steady client's leaves
        is replaced), gone after a whole window without a reading."""
        return self._offset if now - self._offset_at < self.token_window else 0.0

    def refund(self, permit: Permit) -> None:
        """The server did not count this request (429, or it never reached the server)."""
        if permit.refunded:
            return
        permit.refunded = True
        if not permit.expired:
            self._token_sum -= permit.estimate
        if self._burst is not None:
            self._burst.refund(permit)
        with suppress(ValueError):
            self._requests.remove(permit)
        now = self._clock()
        self._charge.refund(permit)
        self._refunds.append((now, permit))
        while self._refunds and self._refunds[0][0] < now - 3 * self.token_window:
            self._refunds.popleft()

    # ---- observation ---------------------------------------------------------------------------

    @property
    def skew(self) -> float:
        return self._skew

    @property
    def request_skew(self) -> float:
        return self._request_skew

    @property
    def cooling_down(self) -> bool:
        return self._clock() < self._cooldown_until

    def charged_last_window(self) -> float:
        """Tokens (server units, as far as we know them) charged in the last token window."""
        self._expire(self._clock())
        return self.scale * self._token_sum

    def free_requests(self, mean_estimate: float) -> int | None:
        """How many more requests of ``mean_estimate`` tokens the windows admit right now (None: no limit)."""
        self._expire(self._clock())
        mean_estimate = self._mean_booked(mean_estimate)
        room: list[float] = []
        if self.request_capacity is not None:
            room.append(max(1, int(self.request_capacity)) - len(self._requests))
        if self.tpm is not None and mean_estimate > 0:
            free = self.tpm * self._utilisation - self.scale * self._token_sum
            room.append(free / (self.scale * mean_estimate))
        return max(0, int(min(room))) if room else None

    def max_request_rate(self, mean_estimate: float) -> float | None:
        """Requests per second the limits allow for requests of ``mean_estimate`` tokens (None: unlimited)."""
        mean_estimate = self._mean_booked(mean_estimate)
        rates = []
        if self.request_capacity is not None:
            rates.append(self.request_capacity / self.request_window)
        if self.tpm is not None and mean_estimate > 0:
            rates.append(self.tpm / (self.scale * mean_estimate) / self.token_window)
        return min(rates) if rates else None

    def _mean_booked(self, mean_estimate: float) -> float:
        # Books that follow request size: the caller's mean token estimate says nothing of it.
        return self._mean_estimate if self._charge.by_chars else mean_estimate
