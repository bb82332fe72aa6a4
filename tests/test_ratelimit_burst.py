"""BurstLog: the running sum gives the same waits as walking the last second's entries."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from batch.send.ratelimit.burst import BurstLog
from batch.send.ratelimit.limiter import RateLimiter
from tests.support import FakeTime


@dataclass(eq=False)
class E:
    sent_at: float
    estimate: int
    refunded: bool = False


def walk_wait(entries: list[E], now: float, need: float, cap: float, scale: float, span: float = 1.0) -> float:
    """The plain definition: newest first, the entry that pushes the second over the cap must leave."""
    recent = 0.0
    for e in reversed(entries):
        if e.sent_at <= now - span:
            break
        if not e.refunded:
            recent += scale * e.estimate
            if recent + need > cap:
                return e.sent_at + span - now
    return 0.0


@pytest.mark.parametrize("seed", range(20))
def test_waits_match_the_walk_through_sends_refunds_and_time(seed: int) -> None:
    rng = random.Random(seed)
    log, entries, now = BurstLog(1.0), [], 0.0
    for _ in range(2000):
        now += rng.choice([0.0, 0.001, 0.01, 0.05, 0.3, 1.2])
        action = rng.random()
        if action < 0.6:
            e = E(now, rng.randint(1, 500))
            entries.append(e)
            log.add(e)
        elif action < 0.75 and entries:
            e = rng.choice(entries[-50:])
            if not e.refunded:
                e.refunded = True
                log.refund(e)
        need, scale = rng.randint(1, 800), rng.choice([1, 2, 4])
        cap = max(need, rng.choice([600, 2000, 5000]))  # as the limiter asks: one request alone always fits
        assert log.wait(now, need, cap, scale) == walk_wait(entries, now, need, cap, scale)
        assert log.recent(now) == sum(e.estimate for e in entries if e.sent_at > now - 1.0 and not e.refunded)


def test_an_entry_refunded_after_it_left_the_second_is_not_subtracted_twice() -> None:
    log = BurstLog(1.0)
    old, new = E(0.0, 100), E(0.9, 50)
    log.add(old)
    log.add(new)
    assert log.recent(1.5) == 50  # old has left
    old.refunded = True
    log.refund(old)
    assert log.recent(1.5) == 50
    new.refunded = True
    log.refund(new)
    assert log.recent(1.5) == 0


async def test_the_limiter_keeps_any_second_under_five_times_the_steady_rate() -> None:
    clock = FakeTime()
    lim = RateLimiter(60_000, None, clock=clock, sleep=clock.sleep, skew=0.0, utilisation=1.0, burst_factor=5.0)
    lim._calibrated = True  # as after a first reply
    sent = [(await lim.acquire(100)).sent_at for _ in range(200)]
    # 5 x 60,000/60 = 5,000 tokens a second: 50 requests of 100 in any second, no more.
    for t in sent:
        assert sum(1 for s in sent if t - 1.0 < s <= t) <= 50
    assert sent[49] == sent[0] and sent[50] > sent[0]
