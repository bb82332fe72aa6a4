"""Client-side pacing against a deployment's TPM and RPM, learning what the server really charges.

Azure charges each request an *estimated maximum* at admission (prompt + max output tokens) against a
per-minute token budget, and counts requests over 10-second windows (RPM/6 per window). We keep the
same books on our side: a sliding log of what we sent in the last 60 s (tokens) and 10 s (requests),
and admit a request only when both logs have room. A sliding log never exceeds a fixed-window server
either, so one model serves both.

How the server counts images and ``max_completion_tokens`` is undocumented, so our per-request
estimate is only a starting point. Every response's ``x-ratelimit-remaining-tokens`` tells us what
the server thinks is used in the window; comparing it with our own log at the moment we sent that
request gives the ratio ``scale`` = server charge / our estimate, which we then apply to everything
in our log. ``x-ratelimit-limit-*`` headers, when present, replace the configured limits; without
them and without a configured limit, the limit is inferred from remaining-tokens readings.

An average ratio cannot see per-request noise, so each reading also *anchors* our books: the gap
between what the server said it had used when that request arrived and what our scaled log said
at that moment is carried as an offset (decaying over one window) on top of our log. Until the
first reply arrives, the opening burst is held to 90 % of the limit.

A request is admitted by the server a little after we send it, more so when many large bodies
arrive at once; a sliding window then replays that spread every minute, and our log would free
tokens before the server does. So bursts are smoothed (at most 5x the steady token rate in any
second), and our log keeps each entry ``skew`` seconds longer than the window, a margin that grows
whenever a 429 arrives that our books did not foresee.

A 429 sets one shared cool-down for every caller (no retry storm), refunds the rejected request's
charge (the server did not count it), and nudges ``scale`` and ``skew`` up once per cool-down.

The clock and the sleep are parameters, so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from .errors import RowError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_MIN_SCALE, _MAX_SCALE = 0.02, 50.0
_OPENING_SHARE = 0.9
_BURST_SPAN = 1.0  # bursts are measured over one second
_MAX_SKEW = 3.0
_MAX_NAP = 1.0
_MAX_BLIND_COOLDOWN = 30.0


@dataclass(slots=True, eq=False)
class Permit:
    """One admitted request's entry in the books."""

    sent_at: float
    estimate: int
    window_estimate: int  # our estimated tokens in the window right after this request was admitted
    refunded: bool = field(default=False)
    expired: bool = field(default=False)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(float(raw))
    except ValueError:
        return None
    return value if value >= 0 else None


def throttle_kind(message: str) -> str:
    """Which window a 429 is about: Azure says "call rate limit" for requests, "token rate limit" else."""
    m = message.lower()
    if "call rate limit" in m or "request rate limit" in m or re.search(r"\brequests? per", m):
        return "requests"
    return "tokens"


class RateLimiter:
    """Admit requests so that neither the token nor the request window of the deployment overflows.

    ``tpm``/``rpm`` may be None (unknown): that dimension is unlimited until headers or 429s
    reveal it. ``request_header_window`` is the period ``x-ratelimit-limit-requests`` refers to
    (10 s on Azure, 60 s on OpenAI).
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
        utilisation: float = 0.985,
        skew: float = 0.1,
        burst_factor: float | None = 5.0,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.token_window = token_window
        self.request_window = request_window
        self._request_header_window = request_header_window
        self._utilisation = utilisation
        self._burst_factor = burst_factor
        self._skew = skew  # our log frees a little later than the server's window: admission is after send
        self.tpm: int | None = tpm
        self.request_capacity: float | None = rpm * request_window / 60.0 if rpm else None
        self.scale = 1.0
        self._tokens: deque[Permit] = deque()
        self._token_sum = 0  # sum of unrefunded estimates in _tokens
        self._requests: deque[float] = deque()
        self._cooldown_until = 0.0
        self._last_scale_bump = -1e18
        self._calibrated = False  # no reply yet: the opening burst is held back
        self._throttle_streak = 0  # 429s since the last success: sets the wait when the server gives none
        self._offset = 0.0  # server-counted tokens our books miss, as of _offset_at
        self._offset_at = -1e18
        self._lock = asyncio.Lock()
        self.admitted = 0
        self.throttled = 0

    # ---- admission ---------------------------------------------------------------------------

    async def acquire(self, estimate: int) -> Permit:
        """Wait until a request of ``estimate`` tokens (our units) fits, then record it.

        Callers are served in arrival order. Raises RowError if the request could never fit.
        """
        if self.tpm is not None and estimate > self.tpm:
            raise RowError(
                f"request needs an estimated {estimate} tokens, more than the deployment's whole "
                f"limit of {self.tpm} tokens per minute; lower max_tokens or the image detail",
                code="request_too_large",
            )
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_time(now, estimate)
                if wait <= 0:
                    break
                # Short naps: a reply arriving meanwhile may change the limits or refund a charge.
                await self._sleep(min(wait, _MAX_NAP))
            self._token_sum += estimate
            permit = Permit(now, estimate, self._token_sum)
            self._tokens.append(permit)
            self._requests.append(now)
            self.admitted += 1
            return permit

    def _expire(self, now: float) -> None:
        horizon = now - self.token_window - self._skew
        while self._tokens and self._tokens[0].sent_at <= horizon:
            p = self._tokens.popleft()
            p.expired = True
            if not p.refunded:
                self._token_sum -= p.estimate
        rhorizon = now - self.request_window - self._skew
        while self._requests and self._requests[0] <= rhorizon:
            self._requests.popleft()

    def _wait_time(self, now: float, estimate: int) -> float:
        self._expire(now)
        wait = self._cooldown_until - now
        cap = self.request_capacity
        if cap is not None and len(self._requests) >= max(1, int(cap)):
            idx = len(self._requests) - max(1, int(cap))
            wait = max(wait, self._requests[idx] + self.request_window + self._skew - now)
        if self.tpm is not None:
            budget = self.tpm * (self._utilisation if self._calibrated else _OPENING_SHARE)
            need = min(self.scale * estimate, budget)
            if self._burst_factor is not None:
                wait = max(wait, self._burst_wait(now, need, self._burst_factor))
            used = self.scale * self._token_sum + self._offset_now(now)
            if used + need > budget:
                for p in self._tokens:
                    if p.refunded:
                        continue
                    used -= self.scale * p.estimate
                    if used + need <= budget:
                        wait = max(wait, p.sent_at + self.token_window + self._skew - now)
                        break
                else:  # only the offset stands in the way: look again as it decays
                    wait = max(wait, min(1.0, self.token_window / 10))
        return wait

    def _burst_wait(self, now: float, need: float, factor: float) -> float:
        assert self.tpm is not None
        cap = max(need, factor * self.tpm * _BURST_SPAN / self.token_window)
        recent = 0.0
        for p in reversed(self._tokens):
            if p.sent_at <= now - _BURST_SPAN:
                break
            if not p.refunded:
                recent += self.scale * p.estimate
                if recent + need > cap:
                    return p.sent_at + _BURST_SPAN - now
        return 0.0

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
        try:
            self._requests.remove(permit.sent_at)
        except ValueError:
            pass

    # ---- learning ------------------------------------------------------------------------------

    def _learn_limits(self, headers: Mapping[str, str]) -> None:
        limit_tokens = _header_int(headers, "x-ratelimit-limit-tokens")
        if limit_tokens:
            self.tpm = limit_tokens
        limit_requests = _header_int(headers, "x-ratelimit-limit-requests")
        if limit_requests:
            self.request_capacity = limit_requests * self.request_window / self._request_header_window

    def on_response(self, permit: Permit, headers: Mapping[str, str]) -> None:
        """Learn limits and the server's charge rule from a response's x-ratelimit-* headers."""
        self._learn_limits(headers)
        self._calibrated = True
        self._throttle_streak = 0
        remaining = _header_int(headers, "x-ratelimit-remaining-tokens")
        if remaining is None:
            return
        ours = permit.window_estimate
        if self.tpm is None:
            # No limit known: the server's remaining plus what we put in the window is the limit.
            self.tpm = int(self.scale * ours + remaining)
            return
        server_used = self.tpm - remaining
        # Only readings taken with a well-filled window say much about the ratio.
        if server_used > 0 and ours >= max(3 * permit.estimate, 0.05 * self.tpm / max(self.scale, _MIN_SCALE)):
            ratio = min(max(server_used / ours, _MIN_SCALE), _MAX_SCALE)
            self.scale += 0.25 * (ratio - self.scale)
        if permit.sent_at >= self._offset_at:  # replies arrive out of order: keep the newest reading
            self._offset = max(0.0, server_used - self.scale * ours)
            self._offset_at = permit.sent_at

    def on_throttle(
        self,
        permit: Permit | None,
        retry_after: float | None,
        kind: str = "tokens",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A 429: one cool-down shared by every caller, and a correction if our books were wrong.

        A 429 alone says nothing reliable about the limit (others may share the deployment, a
        proxy may throttle): limits are learned only from the x-ratelimit headers it carries.
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
        if now - self._last_scale_bump < delay:
            return
        self._last_scale_bump = now
        if kind == "requests":
            if self.request_capacity is not None and self.request_capacity > 1:
                self.request_capacity = max(1.0, self.request_capacity * 0.95)
        elif self.tpm is not None:
            self.scale = min(self.scale * 1.05, _MAX_SCALE)
            self._skew = min(_MAX_SKEW, self._skew * 1.5 + 0.1)

    # ---- observation ---------------------------------------------------------------------------

    @property
    def skew(self) -> float:
        return self._skew

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
        room: list[float] = []
        if self.request_capacity is not None:
            room.append(max(1, int(self.request_capacity)) - len(self._requests))
        if self.tpm is not None and mean_estimate > 0:
            free = self.tpm * self._utilisation - self.scale * self._token_sum
            room.append(free / (self.scale * mean_estimate))
        return max(0, int(min(room))) if room else None

    def max_request_rate(self, mean_estimate: float) -> float | None:
        """Requests per second the limits allow for requests of ``mean_estimate`` tokens (None: unlimited)."""
        rates = []
        if self.request_capacity is not None:
            rates.append(self.request_capacity / self.request_window)
        if self.tpm is not None and mean_estimate > 0:
            rates.append(self.tpm / (self.scale * mean_estimate) / self.token_window)
        return min(rates) if rates else None


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
