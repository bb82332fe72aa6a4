"""The limiter's books, with a fake clock: time moves only when the limiter sleeps."""

from __future__ import annotations

import asyncio

import pytest

from batch.errors import RowError
from batch.ratelimit import RateLimiter, throttle_kind


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, d: float) -> None:
        self.t += max(d, 0.0)
        await asyncio.sleep(0)


def make(
    tpm: int | None, rpm: int | None, *, calibrated: bool = True, **kw: float | None
) -> tuple[RateLimiter, FakeTime]:
    """A limiter on a fake clock; ``calibrated`` as if a first reply (without headers) had arrived."""
    ft = FakeTime()
    kw.setdefault("burst_factor", None)
    kw.setdefault("skew", 0.0)
    lim = RateLimiter(tpm, rpm, clock=ft, sleep=ft.sleep, utilisation=1.0, **kw)  # type: ignore[arg-type]
    if calibrated:
        lim._calibrated = True
    return lim, ft


async def test_opening_burst_is_held_to_ninety_percent_until_a_reply() -> None:
    lim, ft = make(10_000, None, calibrated=False)
    first = [await lim.acquire(1000) for _ in range(9)]
    assert {p.sent_at for p in first} == {1000.0}
    lim.on_response(first[0], {})  # the server has answered: the full budget opens
    tenth = await lim.acquire(1000)
    assert tenth.sent_at == 1000.0


async def test_server_reading_anchors_the_books() -> None:
    """Our estimates say 5,000 used; the server says 9,000: the gap holds back the next request."""
    lim, ft = make(10_000, None)
    permits = [await lim.acquire(1000) for _ in range(5)]
    lim.on_response(permits[-1], {"x-ratelimit-remaining-tokens": "1000"})
    nxt = await lim.acquire(2000)
    assert nxt.sent_at > 1000.0  # without the anchor it would have gone at once
    assert lim.charged_last_window() <= 10_000


async def test_tokens_per_window_never_exceed_the_limit() -> None:
    lim, ft = make(10_000, None)
    sends = []
    for _ in range(60):
        p = await lim.acquire(1000)
        sends.append(p.sent_at)
    # 10 fit at once; each further one waits for the oldest to leave the 60 s window.
    assert sends[:10] == [1000.0] * 10
    assert sends[10] == pytest.approx(1060.0)
    for i, t in enumerate(sends):
        in_window = [s for s in sends[: i + 1] if s > t - 60.0]
        assert len(in_window) * 1000 <= 10_000


async def test_requests_paced_over_ten_second_windows() -> None:
    lim, ft = make(None, 60)  # 60 RPM -> 10 per 10 s
    times = [(await lim.acquire(1)).sent_at for _ in range(35)]
    assert times[:10] == [1000.0] * 10
    assert times[10] == pytest.approx(1010.0)
    assert times[30] == pytest.approx(1030.0)
    for t in times:
        assert sum(1 for s in times if t - 10.0 < s <= t) <= 10


async def test_throttle_sets_one_shared_cooldown_and_refunds() -> None:
    lim, ft = make(10_000, None)
    p = await lim.acquire(5000)
    lim.on_throttle(p, 7.5)
    assert lim.charged_last_window() == 0  # the server did not count the rejected request
    q = await lim.acquire(100)
    assert q.sent_at == pytest.approx(1007.5)
    assert lim.throttled == 1


async def test_many_throttles_from_one_overflow_scale_once() -> None:
    lim, ft = make(10_000, None)
    permits = [await lim.acquire(100) for _ in range(5)]
    for p in permits:
        lim.on_throttle(p, 2.0)
    assert lim.scale == pytest.approx(1.05)


async def test_scale_learned_from_remaining_tokens_header() -> None:
    # The server charges twice our estimate: its remaining-tokens header says so.
    lim, ft = make(100_000, None)
    server_used = 0
    for _ in range(30):
        p = await lim.acquire(1000)
        server_used += 2000
        lim.on_response(p, {"x-ratelimit-remaining-tokens": str(100_000 - server_used)})
        if server_used >= 40_000:
            break
    assert lim.scale == pytest.approx(2.0, rel=0.1)
    assert lim.max_request_rate(1000) == pytest.approx(100_000 / 2000 / 60, rel=0.1)


async def test_limit_headers_replace_configured_limits() -> None:
    lim, ft = make(200_000, 1200)  # the job claims twice the real limits
    p = await lim.acquire(10)
    lim.on_response(p, {"x-ratelimit-limit-tokens": "100000", "x-ratelimit-limit-requests": "100"})
    assert lim.tpm == 100_000
    assert lim.request_capacity == 100  # per 10 s window on Azure


async def test_unknown_limit_inferred_from_remaining() -> None:
    lim, ft = make(None, None)
    p = await lim.acquire(3000)
    lim.on_response(p, {"x-ratelimit-remaining-tokens": "57000"})
    assert lim.tpm == 60_000


async def test_request_larger_than_limit_is_a_row_error() -> None:
    lim, ft = make(1000, None)
    with pytest.raises(RowError) as info:
        await lim.acquire(5000)
    assert info.value.code == "request_too_large"


async def test_concurrent_callers_are_served_in_order() -> None:
    lim, ft = make(3000, None)
    order: list[int] = []

    async def one(i: int) -> None:
        await lim.acquire(1000)
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(9)))
    assert order == list(range(9))
    assert ft.t == pytest.approx(1120.0)


def test_throttle_kind_reads_azure_messages() -> None:
    assert throttle_kind("... have exceeded call rate limit of your current ...") == "requests"
    assert throttle_kind("... have exceeded token rate limit of your current ...") == "tokens"


async def test_429s_without_a_delay_back_off_exponentially() -> None:
    lim, ft = make(1_000_000, None)
    starts = []
    for _ in range(8):
        p = await lim.acquire(10)
        starts.append(p.sent_at)
        lim.on_throttle(p, None)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])
    ok = await lim.acquire(10)
    lim.on_response(ok, {})
    p = await lim.acquire(10)
    lim.on_throttle(p, None)
    assert (await lim.acquire(10)).sent_at - p.sent_at == pytest.approx(1.0)  # a success resets the streak


async def test_a_429_alone_never_sets_a_limit_but_its_headers_do() -> None:
    lim, ft = make(None, None)
    permits = [await lim.acquire(1000) for _ in range(9)]
    lim.on_throttle(permits[-1], 5.0)
    assert lim.tpm is None  # a storm of 429s (a proxy, a neighbour) must not shrink our limit
    lim.on_throttle(permits[-2], 5.0, headers={"x-ratelimit-limit-tokens": "90000"})
    assert lim.tpm == 90_000


async def test_a_long_wait_is_rechecked_when_a_reply_changes_the_limit() -> None:
    lim, ft = make(2000, None)
    first = await lim.acquire(2000)
    waiter = asyncio.ensure_future(lim.acquire(2000))  # would wait 60 s under the old limit
    await asyncio.sleep(0)
    lim.on_response(first, {"x-ratelimit-limit-tokens": "100000"})
    second = await waiter
    assert second.sent_at - first.sent_at <= 1.0
