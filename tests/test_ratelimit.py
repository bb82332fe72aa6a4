"""The limiter's books, with a fake clock: time moves only when the limiter sleeps."""

from __future__ import annotations

import asyncio

import pytest

from batch.core.errors import RowError
from batch.send.ratelimit.headers import throttle_kind
from batch.send.ratelimit.limiter import RateLimiter
from tests.support import FakeTime


def make(
    tpm: int | None, rpm: int | None, *, calibrated: bool = True, **kw: float | bool | None
) -> tuple[RateLimiter, FakeTime]:
    """A limiter on a fake clock; ``calibrated`` as if a first reply (without headers) had arrived."""
    ft = FakeTime()
    kw.setdefault("burst_factor", None)
    kw.setdefault("skew", 0.0)
    lim = RateLimiter(tpm, rpm, clock=ft, sleep=ft.sleep, utilisation=1.0, **kw)  # type: ignore[arg-type]
    if calibrated:
        lim._calibrated = True
    return lim, ft


async def test_the_first_request_goes_alone_until_its_reply_or_two_seconds() -> None:
    lim, ft = make(10_000, 60, calibrated=False)
    probe = await lim.acquire(1000)
    second = await lim.acquire(1000)  # no reply: the opening goes after 2 s
    assert second.sent_at - probe.sent_at == pytest.approx(2.0)
    lim2, _ft2 = make(10_000, 60, calibrated=False)
    probe2 = await lim2.acquire(1000)
    waiter = asyncio.ensure_future(lim2.acquire(1000))
    await asyncio.sleep(0)
    assert not waiter.done()
    lim2.on_response(probe2, {"x-ratelimit-remaining-tokens": "9000"})
    assert (await waiter).sent_at - probe2.sent_at <= 1.0


async def test_opening_burst_is_held_to_ninety_percent_until_a_reply() -> None:
    lim, ft = make(10_000, None, calibrated=False, probe_first=False)
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
    assert throttle_kind("HTTP 429 from azure deployment 'd': Too Many Requests") == "unknown"


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


async def test_a_long_wait_is_rechecked_when_a_reply_changes_the_books() -> None:
    lim, ft = make(2000, None)
    first = await lim.acquire(2000)
    waiter = asyncio.ensure_future(lim.acquire(2000))  # would wait 60 s for the first to age out
    await asyncio.sleep(0)
    lim.refund(first)  # it never reached the server: nothing was counted
    second = await waiter
    assert second.sent_at - first.sent_at <= 1.0


async def test_opening_entries_stay_in_the_log_a_little_longer() -> None:
    """The opening burst reaches the server late (new connections, a cold server): its replay waits."""
    lim, ft = make(None, 60, calibrated=False, opening_hold=1.0, probe_first=False)  # 10 requests per 10 s
    opening = [await lim.acquire(1) for _ in range(10)]
    lim.on_response(opening[0], {})
    later = await lim.acquire(1)
    assert later.sent_at == pytest.approx(1011.0)  # 10 s window + 1 s opening hold
    steady = [await lim.acquire(1) for _ in range(9)]
    nxt = await lim.acquire(1)
    assert nxt.sent_at == pytest.approx(steady[0].sent_at + 10.0)  # later entries: no hold


async def test_opening_hold_applies_to_the_token_window() -> None:
    lim, ft = make(10_000, None, calibrated=False, opening_hold=1.0)
    first = await lim.acquire(9000)
    lim.on_response(first, {})
    second = await lim.acquire(9000)
    assert second.sent_at == pytest.approx(1061.0)


async def test_unknown_limits_send_one_probe_first() -> None:
    lim, ft = make(None, None, calibrated=False)
    probe = await lim.acquire(1000)
    waiter = asyncio.ensure_future(lim.acquire(1000))
    await asyncio.sleep(0)
    assert not waiter.done()  # held until the probe's reply tells the limits
    lim.on_response(probe, {"x-ratelimit-limit-tokens": "60000", "x-ratelimit-limit-requests": "20"})
    nxt = await waiter
    assert nxt.sent_at - probe.sent_at <= 1.0
    assert lim.tpm == 60_000 and lim.request_capacity == 20


async def test_a_refunded_probe_lets_the_next_request_probe() -> None:
    lim, ft = make(None, None, calibrated=False)
    probe = await lim.acquire(1000)
    lim.refund(probe)  # e.g. the connection failed: the server never saw it
    again = await lim.acquire(1000)
    assert again.sent_at == probe.sent_at


async def test_a_probe_without_reply_stops_holding_after_a_while() -> None:
    lim, ft = make(None, None, calibrated=False)
    probe = await lim.acquire(1000)
    nxt = await lim.acquire(1000)  # no reply ever comes (a hang, a 5xx without headers)
    assert nxt.sent_at - probe.sent_at == pytest.approx(10.0)


async def test_limits_inferred_from_remaining_headers_alone() -> None:
    """No limit configured and no x-ratelimit-limit-*: remaining + what the probe used is the limit."""
    lim, ft = make(None, None, calibrated=False)
    probe = await lim.acquire(1000)
    lim.on_response(probe, {"x-ratelimit-remaining-tokens": "59000", "x-ratelimit-remaining-requests": "9"})
    assert lim.tpm == 60_000
    assert lim.request_capacity == 10


async def test_a_short_429_widens_the_margin_and_leaves_the_books_alone() -> None:
    """A 429 asking for 0.2 s means the server's window freed 0.2 s after ours: a timing miss."""
    lim, ft = make(10_000, None, skew=0.1)
    p = await lim.acquire(1000)
    lim.on_response(p, {"x-ratelimit-remaining-tokens": "9000"})
    q = await lim.acquire(1000)
    lim.on_throttle(q, 0.2, "tokens")
    assert lim.skew == pytest.approx(0.1 + 0.2 + 0.02)
    assert lim.scale == 1.0


async def test_a_short_call_429_widens_the_request_margin_not_the_capacity() -> None:
    lim, ft = make(None, 60, skew=0.1)
    p = await lim.acquire(1)
    lim.on_response(p, {"x-ratelimit-limit-requests": "10"})
    q = await lim.acquire(1)
    lim.on_throttle(q, 0.15, "requests")
    assert lim.request_capacity == 10
    assert lim.request_skew == pytest.approx(0.1 + 0.15 + 0.02)
    assert lim.skew == pytest.approx(0.1)


async def test_a_long_call_429_cuts_an_unconfirmed_request_capacity() -> None:
    lim, ft = make(None, 60)  # the job's rpm, never confirmed by a header
    p = await lim.acquire(1)
    lim.on_throttle(p, 6.0, "requests")
    assert lim.request_capacity == pytest.approx(9.5)


async def test_long_429s_move_scale_only_when_no_reading_does() -> None:
    lim, ft = make(10_000, None)
    p = await lim.acquire(1000)
    lim.on_response(p, {"x-ratelimit-remaining-tokens": "9000"})
    q = await lim.acquire(1000)
    lim.on_throttle(q, 5.0, "tokens")
    assert lim.scale == 1.0  # readings keep the ratio; a 429 alone could be a neighbour


async def test_readings_ignore_refunds_and_the_margin_beyond_the_window() -> None:
    """The server charges exactly our estimates: the learned ratio stays 1 although some requests
    were refunded after later ones were sent and our log keeps entries a margin past the window."""
    lim, ft = make(100_000, None, skew=2.0)
    server: list[tuple[float, int]] = []  # (admitted at, charge)

    def server_used(now: float) -> int:
        return sum(c for t, c in server if t > now - 60.0)

    for i in range(400):
        p = await lim.acquire(1000)
        if i % 10 == 9:  # a 429: not counted by the server, refunded only after the next request went
            nxt = await lim.acquire(1000)
            server.append((nxt.sent_at, 1000))
            lim.refund(p)
            lim.on_response(nxt, {"x-ratelimit-remaining-tokens": str(100_000 - server_used(nxt.sent_at))})
            continue
        server.append((p.sent_at, 1000))
        lim.on_response(p, {"x-ratelimit-remaining-tokens": str(100_000 - server_used(p.sent_at))})
        await ft.sleep(0.3)
    assert lim.scale == pytest.approx(1.0, abs=0.02)


async def test_a_resetting_window_is_recognised_and_does_not_skew_the_ratio() -> None:
    """A fixed-window server forgets everything at each minute boundary. Read against a sliding log
    its count looks far too low just after a reset; the limiter must notice the reset and compare
    with what it sent since then, so the ratio stays at the truth (1.0 here)."""
    lim, ft = make(60_000, None)
    start = ft.t
    sent: list[tuple[float, int]] = []

    def server_used(at: float) -> int:
        window_start = start + 60.0 * ((at - start) // 60.0)
        return sum(c for t, c in sent if window_start <= t <= at)

    for _ in range(300):
        p = await lim.acquire(1000)
        sent.append((p.sent_at, 1000))
        lim.on_response(p, {"x-ratelimit-remaining-tokens": str(60_000 - server_used(p.sent_at))})
        await ft.sleep(1.0)
    assert lim.scale == pytest.approx(1.0, abs=0.03)
    for i, (t, _c) in enumerate(sent):  # and it never sent more than a window's worth in one window
        assert server_used(t) <= 60_000, i


async def test_a_sliding_window_is_not_taken_for_a_resetting_one() -> None:
    """A burst that leaves a sliding window at once is not a reset: our own log saw it leave."""
    lim, ft = make(60_000, None)
    sent: list[tuple[float, int]] = []

    def server_used(at: float) -> int:
        return sum(c for t, c in sent if t > at - 60.0)

    for _ in range(50):  # a burst of 50,000 at once
        p = await lim.acquire(1000)
        sent.append((p.sent_at, 1000))
        lim.on_response(p, {"x-ratelimit-remaining-tokens": str(60_000 - server_used(p.sent_at))})
    for _ in range(100):
        await ft.sleep(1.3)
        p = await lim.acquire(1000)
        sent.append((p.sent_at, 1000))
        lim.on_response(p, {"x-ratelimit-remaining-tokens": str(60_000 - server_used(p.sent_at))})
    assert lim._reset_at is None
    assert lim.scale == pytest.approx(1.0, abs=0.03)


async def test_a_reset_seen_first_by_a_late_member_of_a_burst_still_reads_right() -> None:
    """Bursts of five go out together and their replies come back in reverse order, so the first
    reading after a reset comes from the burst's last request: the others count too."""
    lim, ft = make(10_000, None)
    start = ft.t
    sent: list[tuple[float, int]] = []

    def server_used(at: float, upto: int) -> int:
        window_start = start + 60.0 * ((at - start) // 60.0)
        return sum(c for i, (t, c) in enumerate(sent) if window_start <= t and i <= upto)

    for _ in range(60):
        burst = [await lim.acquire(300) for _ in range(5)]
        first = len(sent)
        sent.extend((p.sent_at, 300) for p in burst)
        for k in reversed(range(5)):
            used = server_used(burst[k].sent_at, first + k)
            lim.on_response(burst[k], {"x-ratelimit-remaining-tokens": str(10_000 - used)})
        await ft.sleep(5.0)
    assert lim._reset_at is not None
    assert lim.scale == pytest.approx(1.0, abs=0.03)


async def test_a_429_for_a_dearer_request_than_estimated_is_not_a_timing_miss() -> None:
    """The server still had the 4,000 tokens we counted on; the request cost more: no margin change."""
    lim, ft = make(10_000, None, skew=0.1)
    first = await lim.acquire(1000)
    lim.on_response(first, {"x-ratelimit-remaining-tokens": "9000"})
    p = await lim.acquire(1000)
    lim.on_throttle(p, 0.5, "tokens", {"x-ratelimit-remaining-tokens": "4000"})
    assert lim.skew == pytest.approx(0.1)
    assert lim.scale == 1.0


async def test_call_pacer_spaces_calls_and_honours_retry_after() -> None:
    from batch.send.ratelimit.calls import CallPacer

    now = [100.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    pacer = CallPacer(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await pacer.acquire()
    assert slept == [0.1, 0.1]  # the first call goes at once, then one per 1/10 s
    pacer.on_throttle(2.0)  # 429 with retry-after: 2 s
    await pacer.acquire()
    assert slept[-1] == 2.0
    pacer.on_throttle(None)  # no retry-after: one second
    await pacer.acquire()
    assert slept[-1] == 1.0
