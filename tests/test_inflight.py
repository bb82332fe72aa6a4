"""In-flight limits: the row window resizes, the byte budget caps request bodies held at once."""

from __future__ import annotations

import asyncio

from batch.send.inflight import ByteBudget, Window


async def test_byte_budget_holds_bodies_until_room() -> None:
    budget = ByteBudget(limit=100)
    release_a = asyncio.Event()
    order: list[str] = []

    async def hold(name: str, n: int, until: asyncio.Event | None = None) -> None:
        async with budget.hold(n):
            order.append(name)
            if until is not None:
                await until.wait()

    a = asyncio.ensure_future(hold("a", 60, release_a))
    await asyncio.sleep(0)
    b = asyncio.ensure_future(hold("b", 60))  # 60 + 60 > 100: waits for a
    c = asyncio.ensure_future(hold("c", 30))  # 60 + 30 fits beside a
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == ["a", "c"] and not b.done()
    assert budget.used == 60
    release_a.set()
    await asyncio.wait_for(asyncio.gather(a, b, c), 1)
    assert order == ["a", "c", "b"]
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
    await w.resize(2)  # grow: the waiter gets in
    await asyncio.wait_for(waiter, 1)
    assert w.active == 2

    await w.resize(1)  # shrink below what is in: nobody is thrown out, nobody new gets in ...
    assert w.active == 2
    blocked = asyncio.ensure_future(w.enter())
    await asyncio.sleep(0)
    assert not blocked.done()
    await w.leave()  # ... 1 in, size 1: still full
    await asyncio.sleep(0)
    assert not blocked.done() and w.active == 1
    await w.leave()  # 0 in: the blocked one enters
    await asyncio.wait_for(blocked, 1)
    assert w.active == 1
    await w.leave()
    assert w.active == 0
