"""In-flight limits: the row window resizes, the byte budget caps request bodies held at once."""

from __future__ import annotations

import asyncio

from batch.send.inflight import ByteBudget, Window


async def test_byte_budget_holds_bodies_until_room() -> None:
    budget = ByteBudget(limit=100)
    peak = 0
    order: list[str] = []

    async def hold(name: str, n: int, secs: float) -> None:
        nonlocal peak
        async with budget.hold(n):
            peak = max(peak, budget.used)
            order.append(name)
            await asyncio.sleep(secs)

    await asyncio.gather(hold("a", 60, 0.05), hold("b", 60, 0.0), hold("c", 30, 0.0))
    assert peak <= 100
    assert order[0] == "a" and set(order) == {"a", "b", "c"}
    assert budget.used == 0


async def test_a_body_larger_than_the_budget_goes_alone() -> None:
    budget = ByteBudget(limit=10)
    async with budget.hold(500):
        assert budget.used == 500
    assert budget.used == 0


async def test_window_grows_and_shrinks() -> None:
    w = Window(1)
    await w.enter()
    waiter = asyncio.ensure_future(w.enter())
    await asyncio.sleep(0)
    assert not waiter.done()
    await w.resize(2)
    await asyncio.wait_for(waiter, 1)
    assert w.active == 2
    await w.leave()
    await w.leave()
    assert w.active == 0
