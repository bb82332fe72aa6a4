"""Client-side pacing against a deployment's TPM and RPM, learning what the server really charges.

Azure charges each request an *estimated maximum* at admission (prompt + max output tokens) against a
per-minute token budget, and counts requests over 10-second windows (RPM/6 per window). We keep the
same books: a sliding log of what we sent in the last 60 s (tokens) and 10 s (requests), and admit a
request only when both have room. A sliding log never exceeds a fixed-window server either.

How the server counts images is undocumented, so our estimate is only a starting point. Each reply's
``x-ratelimit-remaining-tokens`` says what the server had used when it admitted that request;
against what our log held over the same 60 s then (less later refunds) it gives ``scale`` = server
charge / our estimate, applied to the whole log. Which measure the charge follows, our token
estimate or the request's size, is learned too (:mod:`batch.ratelimit_charge`). Limit headers
replace the configured limits; with none configured, the first request goes alone (a probe).

Each reading also *anchors* our books: the gap between the server's count and our scaled log at
that moment is carried as an offset (decaying over one window); a negative gap counts only beyond
what a request or two still on the way would explain. Until the first reply, the opening burst is
held to 90 % of the limit. A server whose window resets each minute shows itself when its count
falls by far more than what left our log; readings are then compared with what we sent since the
reset, and pacing stays the sliding log.

The server admits a request a little after we send it, and the opening burst arrives later still;
a sliding window replays that spread every minute. So bursts are smoothed (at most 5x the steady
rate in any second, :mod:`batch.ratelimit_burst`); entries sent before the first reply or in the
second after it stay in our log one second longer; and every entry stays ``skew`` seconds longer
than the window (one margin per window). A 429 asking for a short wait (≤ 1 s) is a timing miss:
its window's margin grows by that wait, unless the server still had the room we counted on. A
longer wait means our books were wrong: ``scale`` is nudged up when no readings correct it, and a
request capacity no header confirmed is cut by 5 %. A 429 sets one shared cool-down for every caller
and refunds the request's charge; corrections happen once per cool-down.

The clock and the sleep are parameters, so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import takewhile

from ...core import RowError, ThrottleKind
from .burst import BurstLog
from .charge import ChargeUnits
from .headers import header_int

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_MIN_SCALE, _MAX_SCALE = 0.02, 50.0
_OPENING_SHARE = 0.9
_OPENING_HOLD = 1.0  # extra seconds in our log for entries sent before the first reply
_PROBE_WAIT = 10.0  # limits unknown: how long the first request goes alone before we stop waiting for its reply
_BURST_SPAN = 1.0  # bursts are measured over one second
_MAX_SKEW = 3.0
_TIMING_MISS = 1.0  # a 429 asking for at most this wait is about timing, not about our books
_MAX_NAP = 1.0
_MAX_BLIND_COOLDOWN = 30.0


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


class RateLimiter:
    """Admit requests so that neither the token nor the request window of the deployment overflows.

    ``tpm``/``rpm`` may be None (unknown): that dimension is unlimited until headers reveal it.
    ``request_header_window`` is the period ``x-ratelimit-limit-requests`` refers to (10 s on
    Azure, 60 s on OpenAI).
    """

    def __init__(
        self,
        tpm: int | None,
        rpm: int | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        token_window: float = 60.0,
        request_window: float = 10.0,
        request_header_window: float = 10.0,
        utilisation: float = 0.99,
        skew: float = 0.1,
        burst_factor: float | None = 5.0,
        opening_hold: float = _OPENING_HOLD,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.token_window = token_window
        self.request_window = request_window
        self._request_header_window = request_header_window
        self._utilisation = utilisation
        self._burst_factor = burst_factor
        self._opening_hold = opening_hold
        # Our log frees a little later than the server's window: admission comes after sending.
        self._skew = skew
        self._request_skew = skew
        self.tpm: int | None = tpm
        self.request_capacity: float | None = rpm * request_window / 60.0 if rpm else None
        self._capacity_confirmed = False  # request_capacity came from a header
        self.scale = 1.0
        self._tokens: deque[Permit] = deque()
        self._token_sum = 0  # sum of unrefunded estimates in _tokens
        self._requests: deque[Permit] = deque()
        self._burst = BurstLog(_BURST_SPAN) if burst_factor is not None else None
        self._charge = ChargeUnits(token_window)
        self._refunds: deque[tuple[float, Permit]] = deque()  # (refunded at, the request), 3 windows
        self._hold_until = -1e18  # when the last opening entry's hold ends
        self._cum = 0  # our estimates admitted so far
        self._mean_estimate = 0.0
        self._last_reading: tuple[float, int, int, int] | None = None  # (sent at, server used, cum, ours)
        # A server whose token window resets (fixed windows): its latest reset, as the first send after
        # it, and our cumulative estimate at that moment (read off the server's count); readings are
        # compared with what we sent since, until the next reset may have come.
        self._reset_at: float | None = None
        self._reset_cum = 0.0
        self._reset_valid_until = 0.0
        self._cooldown_until = 0.0
        self._last_correction = -1e18
        self._calibrated = False  # no reply yet: the opening burst is held back
        self._calibrated_at = 0.0
        self._probe: Permit | None = None  # limits unknown: the request that goes alone
        self._readings = 0  # replies that carried x-ratelimit-remaining-tokens
        self._throttle_streak = 0  # 429s since the last success: sets the wait when the server gives none
        self._offset = 0.0  # server-counted tokens our books miss, as of _offset_at
        self._offset_at = -1e18
        self._lock = asyncio.Lock()
        self.admitted = 0
        self.throttled = 0

    # ---- admission ---------------------------------------------------------------------------

    async def acquire(self, estimate: int, chars: int | None = None) -> Permit:
        """Wait until a request of ``estimate`` tokens (our units) fits, then record it.

        ``chars``: the request's size as a character-based estimator sees it (body bytes / 4 + max
        output); booked instead of ``estimate`` once the server's count shows it follows size
        (:mod:`batch.ratelimit_charge`). Callers are served in arrival order. Raises RowError if the
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
        if self.tpm is None and self.request_capacity is None and not self._calibrated:
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
        if probe is not None and not self._calibrated and not probe.refunded and self.tpm is None:
            if self.request_capacity is None and now < probe.sent_at + _PROBE_WAIT:
                wait = max(wait, probe.sent_at + _PROBE_WAIT - now)
        cap = self.request_capacity
        if cap is not None and len(self._requests) >= max(1, int(cap)):
            p = self._requests[len(self._requests) - max(1, int(cap))]
            free_at = p.sent_at + p.hold
            if self._requests[0].hold:  # opening entries (a prefix of the log) may free later than p
                free_at = max(free_at, self._hold_until)
            wait = max(wait, free_at + self.request_window + self._request_skew - now)
        if self.tpm is not None:
            budget = self.tpm * (self._utilisation if self._calibrated else _OPENING_SHARE)
            need = min(self.scale * estimate, budget)
            if self._burst is not None and self._burst_factor is not None:
                cap = max(need, self._burst_factor * self.tpm * _BURST_SPAN / self.token_window)
                wait = max(wait, self._burst.wait(now, need, cap, self.scale))
            used = self.scale * self._token_sum + self._offset_now(now)
            if used + need > budget:
                free_at = -1e18  # entries free in log order, except the opening ones held longer
                for p in self._tokens:
                    if p.refunded:
                        continue
                    used -= self.scale * p.estimate
                    free_at = max(free_at, p.sent_at + p.hold)
                    if used + need <= budget:
                        wait = max(wait, free_at + self.token_window + self._skew - now)
                        break
                else:  # only the offset stands in the way: look again as it decays
                    wait = max(wait, min(1.0, self.token_window / 10))
        return wait

    def _offset_now(self, now: float) -> float:
        left = 1.0 - (now - self._offset_at) / self.token_window
        return self._offset * left if left > 0 else 0.0

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

    # ---- learning ------------------------------------------------------------------------------

    def _learn_limits(self, headers: Mapping[str, str]) -> None:
        limit_tokens = header_int(headers, "x-ratelimit-limit-tokens")
        if limit_tokens:
            self.tpm = limit_tokens
        limit_requests = header_int(headers, "x-ratelimit-limit-requests")
        if limit_requests:
            self.request_capacity = limit_requests * self.request_window / self._request_header_window
            self._capacity_confirmed = True

    def _ours_at(self, permit: Permit, later: list[Permit]) -> float | None:
        """Our tokens in the server's window when ``permit`` was admitted, less ``later`` refunds
        (None: a resetting window, and we cannot tell which of its windows the request fell in)."""
        hi = permit.sent_at
        if self._reset_at is not None:
            if not self._reset_at <= hi < self._reset_valid_until:
                return None
            refunded = sum(p.estimate for _at, p in self._refunds if self._reset_at < p.sent_at <= hi)
            return max(permit.estimate, permit.cum - self._reset_cum - refunded)
        return max(permit.estimate, permit.window_estimate - sum(p.estimate for p in later))

    def _detect_reset(self, permit: Permit, server_used: int) -> None:
        """Notice a server whose token window resets (fixed windows) rather than slides.

        Between two readings a sliding window can lose only what left our own log meanwhile (as the
        server counts it); a count that falls by half the limit more than that was reset.
        """
        last = self._last_reading
        if last is not None and permit.sent_at <= last[0]:
            return
        self._last_reading = (permit.sent_at, server_used, permit.cum, permit.window_estimate)
        if last is None or self.tpm is None:
            return
        sent_between = permit.cum - last[2]
        ours_left = last[3] + sent_between - permit.window_estimate
        server_left = last[1] + self.scale * sent_between - server_used
        if server_left - self.scale * ours_left > 0.5 * self.tpm:
            # The reset fell between the two sends: the server's count says how much of ours came after it.
            self._reset_at = permit.sent_at
            self._reset_cum = permit.cum - server_used / max(self.scale, _MIN_SCALE)
            self._reset_valid_until = last[0] + self.token_window

    def on_response(self, permit: Permit, headers: Mapping[str, str]) -> None:
        """Learn limits and the server's charge rule from a response's x-ratelimit-* headers."""
        self._learn_limits(headers)
        if not self._calibrated:
            self._calibrated, self._calibrated_at = True, self._clock()
        self._throttle_streak = 0
        remaining_requests = header_int(headers, "x-ratelimit-remaining-requests")
        if self.request_capacity is None and remaining_requests:
            # No limit known: what the server has left plus what we had in its window is the limit.
            per_header = permit.window_requests + remaining_requests
            self.request_capacity = per_header * self.request_window / self._request_header_window
        remaining = header_int(headers, "x-ratelimit-remaining-tokens")
        if remaining is None:
            return
        self._readings += 1
        if self.tpm is None:
            if remaining > 0:
                self.tpm = int(self.scale * permit.window_estimate + remaining)
            return
        server_used = self.tpm - remaining
        self._detect_reset(permit, server_used)
        hi = permit.sent_at  # requests in its window then, refunded since: in neither count
        later = [p for at, p in self._refunds if at > hi and hi - self.token_window < p.sent_at <= hi]
        ours = self._ours_at(permit, later)
        if ours is None:
            return
        if self._reset_at is None and self._charge.reading(permit, server_used, self.scale, later):
            self._offset = 0.0  # the books now follow the other measure: re-anchor from the next reading
        # Only readings taken with a well-filled window say much about the ratio.
        if server_used > 0 and ours >= max(3 * permit.estimate, 0.05 * self.tpm / max(self.scale, _MIN_SCALE)):
            ratio = min(max(server_used / ours, _MIN_SCALE), _MAX_SCALE)
            self.scale += 0.25 * (ratio - self.scale)
        if permit.sent_at >= self._offset_at:  # replies arrive out of order: keep the newest reading
            gap = server_used - self.scale * ours
            # Counting less than we think is believed only beyond what a request or two in flight
            # (sent before this one, admitted after it) explains: the window holds cheaper requests.
            self._offset = gap if gap >= 0 else min(0.0, gap + 2 * self.scale * self._mean_estimate)
            self._offset_at = permit.sent_at

    def on_throttle(
        self,
        permit: Permit | None,
        retry_after: float | None,
        kind: ThrottleKind = "unknown",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A 429: one cool-down shared by every caller, and a correction if our books were wrong.

        A 429 alone says nothing reliable about the limit (others may share the deployment, a
        proxy may throttle): limits are learned only from the x-ratelimit headers it carries.
        ``kind`` "requests" corrects the request window; "tokens" and "unknown" the token books
        (most 429s are about tokens).
        """
        now = self._clock()
        self.throttled += 1
        self._throttle_streak += 1
        if retry_after is not None and retry_after > 0:
            delay = retry_after
        else:  # no hint from the server: back off exponentially while the 429s keep coming
            delay = min(_MAX_BLIND_COOLDOWN, 0.5 * 2 ** min(self._throttle_streak, 10))
        self._cooldown_until = max(self._cooldown_until, now + delay)
        if headers:
            self._learn_limits(headers)
        if permit is not None:
            self.refund(permit)
        # Several in-flight requests are rejected by one overflow: correct once per cool-down.
        if now - self._last_correction < delay:
            return
        self._last_correction = now
        # A short wait: the server's window frees that much later than our log did (timing).
        late = retry_after if retry_after is not None and 0 < retry_after <= _TIMING_MISS else None
        if kind == "requests":
            if late is not None:
                self._request_skew = min(_MAX_SKEW, self._request_skew + late + 0.02)
            elif self.request_capacity is not None and self.request_capacity > 1 and not self._capacity_confirmed:
                self.request_capacity = max(1.0, self.request_capacity * 0.95)
        elif self.tpm is not None:
            remaining = header_int(headers, "x-ratelimit-remaining-tokens") if headers else None
            if permit is not None and remaining is not None and remaining >= self.scale * permit.estimate:
                # The room we counted on was there: this request costs more than we estimated, a
                # surprise no margin would have prevented (the cool-down waits for room).
                late = None
            elif late is not None:
                self._skew = min(_MAX_SKEW, self._skew + late + 0.02)
            elif retry_after is None:
                self._skew = min(_MAX_SKEW, self._skew * 1.5 + 0.1)
            if late is None and self._readings == 0:  # nothing else tells us the server charges more
                self.scale = min(self.scale * 1.05, _MAX_SCALE)

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
