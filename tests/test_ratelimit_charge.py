"""Learning whether the server charges our token estimate or the request's size."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from batch.send.ratelimit.charge import ChargeUnits
from batch.send.ratelimit.limiter import RateLimiter
from tests.support import FakeTime


@dataclass(eq=False)
class E:
    sent_at: float
    tokens: int
    chars: int
    window_tokens: int = 0
    window_chars: int = 0
    refunded: bool = False


Rule = Callable[[E], float]


def feed(rule: Rule, n: int = 300, seed: int = 0) -> ChargeUnits:
    """Requests every 0.5 s whose two measures vary independently; the server counts by ``rule``."""
    rng = random.Random(seed)
    units, sent = ChargeUnits(60.0), []
    for i in range(n):
        t = 0.5 * i
        e = E(t, rng.choice([120, 400, 1100]), rng.choice([300, 5_000, 40_000]))
        units.add(e, t)
        sent.append(e)
        used = sum(rule(x) for x in sent if x.sent_at > t - 60.0 and not x.refunded)
        units.reading(e, round(used), 1.0)
    return units


def test_a_server_that_charges_our_estimate_keeps_the_estimate() -> None:
    units = feed(lambda e: e.tokens)
    assert not units.by_chars
    assert units.booked(400, 40_000) == 400


@pytest.mark.parametrize("per_char", [1.0, 0.25])
def test_a_server_that_charges_by_size_is_found_and_booked_by_size(per_char: float) -> None:
    units = feed(lambda e: per_char * e.chars + 0 * e.tokens)
    assert units.by_chars
    # Booked in the limiter's units (server units / book scale 1.0): the size, at the server's rate.
    assert units.booked(400, 40_000) == pytest.approx(per_char * 40_000, rel=0.05)
    assert units.booked(1100, 300) == pytest.approx(per_char * 300, rel=0.05)


def test_size_plus_max_tokens_is_followed_too() -> None:
    # The emulator's chars+max rule: the measure already includes max output, so the fit is exact.
    assert feed(lambda e: e.chars).by_chars


def test_identical_measures_never_switch() -> None:
    rng = random.Random(1)
    units = ChargeUnits(60.0)
    for i in range(200):
        size = rng.choice([100, 1000, 10_000])
        e = E(float(i), size, size)
        units.add(e, float(i))
        units.reading(e, 3 * e.window_tokens, 1.0)
    assert not units.by_chars


def test_refunded_requests_leave_both_windows() -> None:
    units = ChargeUnits(60.0)
    a, b = E(0.0, 100, 1000), E(1.0, 200, 3000)
    units.add(a, 0.0)
    a.refunded = True
    units.refund(a)
    units.add(b, 1.0)
    assert (b.window_tokens, b.window_chars) == (200, 3000)


async def overflows(pass_size: bool, minutes: int = 6, seed: int = 3) -> int:
    """A 60k sliding-window server that charges body size; requests whose charge would not have fit
    (a 429 on the real thing) after the first two minutes."""
    rng = random.Random(seed)
    ft = FakeTime()
    lim = RateLimiter(60_000, None, clock=ft, sleep=ft.sleep, skew=0.0, burst_factor=None)
    start, book, over = ft.t, [], 0
    while ft.t < start + 60 * minutes:
        tokens = rng.choice([385, 1065, 1065])  # low / high detail + 300 max tokens
        size = rng.choice([600, 2_500, 9_000, 20_000])  # 2 KB to 80 KB bodies
        permit = await lim.acquire(tokens, size if pass_size else None)
        book = [(t, c) for t, c in book if t > ft.t - 60.0]
        used = sum(c for _, c in book)
        if used + size > 60_000:
            over += ft.t > start + 120
            lim.on_throttle(permit, 1.0, "tokens", {"x-ratelimit-remaining-tokens": str(60_000 - used)})
            continue
        book.append((ft.t, size))
        lim.on_response(permit, {"x-ratelimit-remaining-tokens": str(60_000 - used - size)})
        ft.t += 0.05
    return over


async def test_the_limiter_stops_tripping_a_size_charging_server_once_it_knows_sizes() -> None:
    blind, sized = await overflows(False), await overflows(True)
    assert blind >= 5  # one ratio on the token estimate keeps meeting surprises
    assert sized <= blind // 5
