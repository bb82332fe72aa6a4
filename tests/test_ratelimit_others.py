"""The limiter on a shared deployment, with a fake clock against a simulated sliding-window server.

The server counts everyone's tokens over 60 s and requests over 10 s windows, as Azure does, and
answers with the same ``x-ratelimit-*`` headers; "others" (a killed run, another app) add their
own traffic at set times. Replies come back at once, so every figure is the limiter's own doing.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

import pytest

from batch.send.ratelimit.limiter import RateLimiter
from tests.support import FakeTime

TPM, RPM = 60_000, 360
EST = 600  # our estimate per request


@dataclass
class Server:
    """A sliding-window deployment: (time, tokens, ours) admitted, 429s counted per client."""

    tpm: int = TPM
    capacity: int = RPM // 6
    log: deque[tuple[float, int, bool]] = field(default_factory=deque)
    history: list[tuple[float, int, bool]] = field(default_factory=list)
    ours_429: int = 0
    ours_ok: int = 0

    def _used(self, t: float) -> tuple[int, int]:
        while self.log and self.log[0][0] <= t - 60.0:
            self.log.popleft()
        return sum(x[1] for x in self.log), sum(1 for x in self.log if x[0] > t - 10.0)

    def admit(self, t: float, tokens: int, ours: bool) -> dict[str, str] | float:
        """Headers of a 200, or the retry-after of a 429."""
        used, requests = self._used(t)
        if used + tokens > self.tpm or requests + 1 > self.capacity:
            free = used + tokens - self.tpm
            wait = 0.1
            for at, tok, _o in self.log:
                free -= tok
                if free <= 0:
                    wait = max(wait, at + 60.0 - t)
                    break
            return wait
        self.log.append((t, tokens, ours))
        self.history.append((t, tokens, ours))
        return {
            "x-ratelimit-limit-tokens": str(self.tpm),
            "x-ratelimit-remaining-tokens": str(self.tpm - used - tokens),
            "x-ratelimit-limit-requests": str(self.capacity),
            "x-ratelimit-remaining-requests": str(self.capacity - requests - 1),
        }

    def ours_between(self, history: list[tuple[float, int]], lo: float, hi: float) -> int:
        return sum(tok for t, tok in history if lo <= t < hi)


@dataclass
class Others:
    """Someone else's requests: (time, tokens) events; a 429 is retried a second later."""

    events: list[tuple[float, int]]

    def __post_init__(self) -> None:
        heapq.heapify(self.events)

    def play(self, server: Server, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            t, tokens = heapq.heappop(self.events)
            if not isinstance(server.admit(t, tokens, False), dict):
                heapq.heappush(self.events, (t + 1.0, tokens))


async def drive(
    server: Server, others: Others, seconds: float, charge: float = 1.0, tpm: int | None = TPM
) -> tuple[list[tuple[float, int]], RateLimiter]:
    """Our run from t = 1000 for ``seconds``: each request costs the server ``charge`` x our estimate."""
    ft = FakeTime()
    lim = RateLimiter(tpm, None if tpm is None else RPM, clock=ft, sleep=ft.sleep)
    ours: list[tuple[float, int]] = []
    while ft.t < 1000.0 + seconds:
        permit = await lim.acquire(EST)
        others.play(server, permit.sent_at)
        reply = server.admit(permit.sent_at, round(EST * charge), True)
        if isinstance(reply, dict):
            server.ours_ok += 1
            ours.append((permit.sent_at, round(EST * charge)))
            lim.on_response(permit, reply)
        else:
            server.ours_429 += 1
            lim.on_throttle(permit, reply, "tokens")
    return ours, lim


def steady(start: float, end: float, per_second: int) -> list[tuple[float, int]]:
    return [(start + i, per_second) for i in range(int(end - start))]


def bursts(start: float, end: float, every: float, tokens: int, size: int) -> list[tuple[float, int]]:
    return [(start + k * every + j * 0.01, tokens) for k in range(int((end - start) / every)) for j in range(size)]


@pytest.mark.parametrize(
    ("case", "charge"),
    [("killed run", 1.0), ("killed run", 0.5), ("first job", 1.0), ("first job", 2.0)],
)
async def test_busy_window_at_start_reaches_full_speed_within_a_window_after_it_ages_out(
    case: str, charge: float
) -> None:
    """A window filled by someone gone (a run killed 8 s ago; a job that just ended): once their
    traffic ages out (by t = 1052), the next window is ours in full, and scale is still ours."""
    server = Server()
    if case == "killed run":  # 57k sent in the 8 s before our start
        earlier = [(992.0 + 8.0 * i / 95, 600) for i in range(95)]
    else:  # a first job that paced itself over the minute before ours
        earlier = [(941.0 + 0.6 * i, 570) for i in range(100)]
    Others(earlier).play(server, 1000.0)
    ours, lim = await drive(server, Others([]), 170.0, charge)
    full = server.ours_between(ours, 1052.0, 1112.0) / TPM
    assert full >= 0.95, f"{full:.3f} of the limit in the window after the earlier traffic left"
    # Their traffic is never taken for our charge (scale may lag a higher charge: the offset covers it).
    assert 0.9 * min(charge, 1.0) <= lim.scale <= 1.1 * charge
    assert server.ours_429 <= 0.01 * (server.ours_ok + server.ours_429) + 2


@pytest.mark.parametrize(
    ("name", "traffic", "max_429", "theirs_kept"),
    [
        ("steady", steady(900.0, 1180.0, 400), 0.01, 0.9),  # 24k of 60k a minute: 40 %
        # 40 x 150 every 15 s: 40 %. A burst needs 10 % of the window free at once; we leave 4 %,
        # so part of each burst waits (retried a second later) for what frees next.
        ("bursty", bursts(900.0, 1180.0, 15.0, 150, 40), 0.05, 0.8),
    ],
)
async def test_another_client_leaves_us_what_is_left_then_all_of_it(
    name: str, traffic: list[tuple[float, int]], max_429: float, theirs_kept: float
) -> None:
    """Others use ~40 % until t = 1180: we use >= 0.90 of the rest without squeezing them out, then
    >= 0.97 of the limit within two windows of their stopping."""
    server = Server()
    others = Others(traffic)
    others.play(server, 1000.0)
    ours, lim = await drive(server, others, 300.0)
    theirs_per_min = 24_000
    theirs = sum(tok for t, tok, mine in server.history if not mine and 1060.0 <= t < 1180.0)
    assert theirs >= theirs_kept * 2 * theirs_per_min, (
        f"{name}: we squeezed them to {theirs / 2 / TPM:.3f} of the limit"
    )
    share = server.ours_between(ours, 1060.0, 1180.0) / 2 / (TPM - theirs_per_min)
    assert share >= 0.90, f"{name}: {share:.3f} of what the other client left"
    after = server.ours_between(ours, 1240.0, 1300.0) / TPM
    assert after >= 0.97, f"{name}: {after:.3f} of the limit in the second window after they stopped"
    total = server.ours_ok + server.ours_429
    assert server.ours_429 <= max_429 * total, f"{name}: {server.ours_429} 429s of {total}"
    assert lim.scale == pytest.approx(1.0, rel=0.1)  # their traffic was never taken for our charge
