"""Client-side pacing against a deployment's TPM and RPM, learning what the server really charges.

The windows themselves (admission, expiry, refunds) are :class:`~.books.Books`; this module learns
from what the server says.

How the server counts images is undocumented, so our estimate is only a starting point. Each reply's
``x-ratelimit-remaining-tokens`` says what the server had used when it admitted that request;
against what our log held over the same 60 s then (less later refunds) it gives ``scale`` = server
charge / our estimate, applied to the whole log. Which measure the charge follows, our token
estimate or the request's size, is learned too (:mod:`.charge`). The configured limits are a
ceiling (a job may keep below a shared deployment's quota): limit headers can only lower them, and
fill them in when none was configured. The server's own limit is kept apart (``server_tpm``): its
``remaining`` counts against it, not against our ceiling.

Each reading also *anchors* our books: the gap between the server's count and our scaled log at
that moment is carried as an offset: mostly *other traffic* (a killed run's window, a second job,
another app), held until the next reading, with one request let through to re-read it when only the
offset blocks us for a few seconds; a negative gap counts only beyond what a request or two still on
the way would explain. Others' requests in the 10 s window are held against our request capacity the
same way. Which readings may raise ``scale`` is :mod:`.others`' call: only those taken when nobody
else's traffic can be in the window, so a full window left by someone else is never read as "the
server charges us 20x". A server whose window resets each minute
shows itself when its count falls by far more than what left our log; readings are then compared
with what we sent since the reset, and pacing stays the sliding log.

A 429 asking for a short wait (≤ 1 s) is a timing miss: its window's margin grows by that wait,
unless the server still had the room we counted on. A longer wait means our books were wrong:
``scale`` is nudged up when no readings correct it, and a request capacity no header confirmed is
cut by 5 %. A 429 sets one shared cool-down for every caller and refunds the request's charge;
corrections happen once per cool-down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from ...core import ThrottleKind
from .books import OPENING_HOLD, Books, Clock, Permit, Sleep
from .headers import header_int
from .others import OtherTraffic

__all__ = ["Permit", "RateLimiter"]

_MIN_SCALE, _MAX_SCALE = 0.02, 50.0
_MAX_SKEW = 3.0
_TIMING_MISS = 1.0  # a 429 asking for at most this wait is about timing, not about our books
_MAX_BLIND_COOLDOWN = 30.0


class RateLimiter(Books):
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
        opening_hold: float = OPENING_HOLD,
        probe_first: bool = True,
    ) -> None:
        super().__init__(
            tpm,
            rpm,
            clock=clock,
            sleep=sleep,
            token_window=token_window,
            request_window=request_window,
            utilisation=utilisation,
            skew=skew,
            burst_factor=burst_factor,
            opening_hold=opening_hold,
            probe_first=probe_first,
        )
        self._request_header_window = request_header_window
        self._tpm_ceiling = tpm  # the job's limits: headers may lower them, never raise them
        self._capacity_ceiling = self.request_capacity
        self._capacity_confirmed = False  # request_capacity came from a header
        self._server_requests: int | None = None  # x-ratelimit-limit-requests, per header window
        self.others = OtherTraffic(token_window, request_window)
        self._last_reading: tuple[float, int, int, int] | None = None  # (sent at, server used, cum, ours)
        # A server whose token window resets (fixed windows): its latest reset, as the first send after
        # it, and our cumulative estimate at that moment (read off the server's count); readings are
        # compared with what we sent since, until the next reset may have come.
        self._reset_at: float | None = None
        self._reset_cum = 0.0
        self._reset_valid_until = 0.0
        self._last_correction = -1e18
        self._readings = 0  # replies that carried x-ratelimit-remaining-tokens
        self._throttle_streak = 0  # 429s since the last success: sets the wait when the server gives none
        self.throttled = 0

    def _learn_limits(self, headers: Mapping[str, str]) -> None:
        limit_tokens = header_int(headers, "x-ratelimit-limit-tokens")
        if limit_tokens:
            self.server_tpm = limit_tokens
            self.tpm = limit_tokens if self._tpm_ceiling is None else min(limit_tokens, self._tpm_ceiling)
        limit_requests = header_int(headers, "x-ratelimit-limit-requests")
        if limit_requests:
            self._server_requests = limit_requests
            capacity = limit_requests * self.request_window / self._request_header_window
            ceiling = self._capacity_ceiling
            self.request_capacity = capacity if ceiling is None else min(capacity, ceiling)
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
        self._count_others(permit, remaining_requests)
        remaining = header_int(headers, "x-ratelimit-remaining-tokens")
        if remaining is None:
            return
        self._readings += 1
        if self.tpm is None:
            if remaining > 0:
                self.tpm = int(self.scale * permit.window_estimate + remaining)
            return
        server_used = (self.server_tpm or self.tpm) - remaining
        limit = self.server_tpm or self.tpm
        self.others.first_reading(permit.sent_at, server_used, max(permit.window_tokens, permit.window_chars), limit)
        # Someone else's traffic in the window: the gap is theirs (the offset), not our charge rule.
        clean = self.others.clean(permit.sent_at)
        if self.others.observed_at is not None:
            self.shared_until = self.others.observed_at + self.token_window
        if clean:
            self._detect_reset(permit, server_used)
        hi = permit.sent_at  # requests in its window then, refunded since: in neither count
        later = [p for at, p in self._refunds if at > hi and hi - self.token_window < p.sent_at <= hi]
        ours = self._ours_at(permit, later)
        if ours is None:
            return
        if clean and self._reset_at is None and self._charge.reading(permit, server_used, self.scale, later):
            self._offset = 0.0  # the books now follow the other measure: re-anchor from the next reading
        # Only readings taken with a well-filled window say much about the ratio.
        if server_used > 0 and ours >= max(3 * permit.estimate, 0.05 * self.tpm / max(self.scale, _MIN_SCALE)):
            ratio = min(max(server_used / ours, _MIN_SCALE), _MAX_SCALE)
            if clean or ratio < self.scale:  # others only add to the count: a lower ratio is ours
                self.scale += 0.25 * (ratio - self.scale)
        if permit.sent_at >= self._offset_at:  # replies arrive out of order: keep the newest reading
            gap = server_used - self.scale * ours
            # Counting less than we think is believed only beyond what a request or two in flight
            # (sent before this one, admitted after it) explains: the window holds cheaper requests.
            self._offset = gap if gap >= 0 else min(0.0, gap + 2 * self.scale * self._mean_estimate)
            self._offset_at = permit.sent_at

    def _count_others(self, permit: Permit, remaining_requests: int | None) -> None:
        """Requests in the server's window beyond ours: someone else is using the deployment."""
        if remaining_requests is None or self._request_header_window != self.request_window:
            return
        limit = self._server_requests
        if limit is None and self.request_capacity is not None:
            limit = round(self.request_capacity)
        if limit is not None:
            self.others.requests(permit.sent_at, limit - remaining_requests, permit.window_requests, limit)
            if permit.sent_at >= self._others_requests_at:  # the newest reading, held for a request window
                self._others_requests = self.others.requests_seen * self.request_window / self._request_header_window
            self._others_requests_at = max(self._others_requests_at, permit.sent_at)

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
        self._correct(permit, retry_after, kind, headers)

    def _correct(
        self, permit: Permit | None, retry_after: float | None, kind: ThrottleKind, headers: Mapping[str, str] | None
    ) -> None:
        """After a 429 (once per cool-down): widen the margin that missed, or doubt our books."""
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
