"""Someone else on the deployment, for the shared-world benchmarks (issue 14): a load generator that
hits the emulator's deployment directly over HTTP, and per-client figures from the emulator's log.

The other client is not ours and shares none of our code: aiohttp, a fixed text prompt tagged so
the emulator's request log tells its requests from ours, and a 429 retried after the server's
``retry-after-ms`` (as the openai SDK does). ``steady`` sends ``size`` requests spread over every
second; ``bursty`` fires ``size`` at once every ``every`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OTHER_TAG = "OTHER-CLIENT"


@dataclass(frozen=True, slots=True)
class Load:
    pattern: str  # "steady" | "bursty"
    size: int  # requests per second (steady) or per burst (bursty)
    max_tokens: int
    every: float = 1.0  # seconds between bursts


@dataclass(slots=True)
class OtherTally:
    sent: int = 0
    ok: int = 0
    throttled: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


async def other_client(url: str, key: str, deployment: str, load: Load, stop_at: float) -> OtherTally:
    """Run ``load`` against the deployment until ``stop_at`` (time.time()); requests in flight finish."""
    import aiohttp  # the emulator's own dependency, so always installed

    tally = OtherTally()
    endpoint = f"{url}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"
    body = {
        "messages": [{"role": "user", "content": f"{OTHER_TAG}: say something short."}],
        "max_tokens": load.max_tokens,
    }
    tasks: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession) -> None:
        for _attempt in range(5):
            tally.sent += 1
            try:
                async with session.post(endpoint, json=body, headers={"api-key": key}) as r:
                    await r.read()
                    if r.status == 200:
                        tally.ok += 1
                        return
                    if r.status != 429:
                        tally.failed += 1
                        tally.errors[str(r.status)] = tally.errors.get(str(r.status), 0) + 1
                        return
                    tally.throttled += 1
                    wait = float(r.headers.get("retry-after-ms", "1000")) / 1000.0
            except aiohttp.ClientError as exc:
                tally.failed += 1
                tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
                return
            await asyncio.sleep(wait)
        tally.failed += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tick = load.every if load.pattern == "bursty" else 1.0 / load.size
        per_tick = load.size if load.pattern == "bursty" else 1
        next_at = time.time()
        while next_at < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            for _ in range(per_tick):
                task = asyncio.ensure_future(one(session))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            next_at += tick
        if tasks:
            await asyncio.gather(*tasks)
    return tally


def request_log(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_emulator/requests", timeout=30) as r:
        data: list[dict[str, Any]] = json.loads(r.read())
    return [e for e in data if e.get("route") != "vision-read"]


def who(entry: dict[str, Any]) -> str:
    """Whose request: the other client's (tagged), or the job whose prompt carries ``[run X]``."""
    text = " ".join(entry.get("texts") or [])
    if OTHER_TAG in text:
        return "other"
    start = text.find("[run ")
    return text[start + 5 : text.find("]", start)] if start >= 0 else "ours"


@dataclass(frozen=True, slots=True)
class Admission:
    time: float
    tokens: int
    client: str


def admissions(log: list[dict[str, Any]]) -> list[Admission]:
    """Admitted requests (charged tokens), by arrival time; the log's time is when the emulator received it."""
    out = [
        Admission(e["time"], int(e["tokens_charged"]), who(e))
        for e in log
        if e.get("tokens_charged") is not None and e.get("status") != 429
    ]
    return sorted(out, key=lambda a: a.time)


def throttled(log: list[dict[str, Any]], client: Callable[[str], bool], lo: float, hi: float) -> tuple[int, int]:
    """(429s, requests answered) of the clients ``client`` accepts, received in [lo, hi)."""
    mine = [e for e in log if client(who(e)) and lo <= e["time"] < hi and e.get("status") is not None]
    return sum(1 for e in mine if e["status"] == 429), len(mine)


def tokens_between(adm: list[Admission], client: Callable[[str], bool], lo: float, hi: float) -> int:
    times = [a.time for a in adm]
    return sum(a.tokens for a in adm[bisect_left(times, lo) : bisect_left(times, hi)] if client(a.client))


def ideal_span(
    charges: list[int], tpm: int, per_window: int, token_window: float = 60.0, request_window: float = 10.0
) -> float:
    """Seconds a zero-overhead client needs to admit requests of these charges, in this order, under
    a sliding token window and a sliding request window (both as the emulator counts them)."""
    sent: list[tuple[float, int]] = []
    t = 0.0
    for c in charges:
        while True:
            tok = sum(x for s, x in sent if s > t - token_window)
            req = sum(1 for s, _x in sent if s > t - request_window)
            if tok + c <= tpm and req + 1 <= per_window:
                break
            # Next moment something leaves either window.
            later = [s + token_window for s, _x in sent if s + token_window > t]
            later += [s + request_window for s, _x in sent if s + request_window > t]
            t = min(later) + 1e-6
        sent.append((t, c))
    return t
