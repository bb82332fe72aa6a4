"""Rate limits: token and request windows, 429 bodies and waits, headers, charge rules.

Windows are compressed (1-2 s "minutes") so the real-time tests stay short; the unit tests at
the top drive the windows with an explicit clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import aiohttp
import pytest
from emulator_helpers import (
    API_VERSION,
    Caller,
    azure_path,
    chat_body,
    data_url,
    image_part,
    make_image,
    zero_config,
)

from batch.emulator import Deployment, EmbeddedEmulator
from batch.emulator.limits import DeploymentLimiter, FixedWindow, SlidingWindow

# "hi" as one user message: 4 (message) + 1 (hi) + 3 (reply priming) = 8 prompt tokens.
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 92}  # charge 100


# -- windows, with a fake clock -------------------------------------------------------------


def test_sliding_window_frees_oldest_first() -> None:
    window = SlidingWindow(capacity=100, length=60.0)
    window.take(40, now=0.0)
    window.take(40, now=10.0)
    assert window.used(11.0) == 80
    assert window.wait_for(20, 11.0) == 0.0
    assert window.wait_for(30, 11.0) == pytest.approx(49.0)  # until the t=0 charge expires
    assert window.wait_for(70, 11.0) == pytest.approx(59.0)  # needs both to expire
    assert window.wait_for(101, 11.0) == math.inf
    assert window.used(60.0) == 40
    assert window.used(70.0) == 0


def test_fixed_window_resets_at_boundaries() -> None:
    window = FixedWindow(capacity=100, length=60.0, origin=0.0)
    window.take(90, now=5.0)
    assert window.wait_for(20, 30.0) == pytest.approx(30.0)
    assert window.used(59.9) == 90
    assert window.used(60.0) == 0
    assert window.wait_for(100, 61.0) == 0.0


def test_limiter_refuses_without_charging() -> None:
    limiter = DeploymentLimiter(
        tpm=1000, request_capacity=2, token_window_s=60, request_window_s=10, mode="sliding", now=0.0
    )
    assert limiter.admit(600, 0.0).admitted
    refused = limiter.admit(600, 1.0)
    assert not refused.admitted and refused.refused_by == "token"
    assert refused.retry_after_s == pytest.approx(59.0)
    assert (refused.remaining_tokens, refused.remaining_requests) == (400, 1)
    assert limiter.admit(400, 2.0).admitted
    calls = limiter.admit(0, 3.0)
    assert not calls.admitted and calls.refused_by == "call"
    assert calls.retry_after_s == pytest.approx(7.0)


# -- over HTTP, real time --------------------------------------------------------------------


def _limited(**kwargs: Any) -> Deployment:
    defaults: dict[str, Any] = {"tpm": 1000, "rpm": 60_000, "token_window_s": 2.0, "request_window_s": 2.0}
    defaults.update(kwargs)
    return Deployment("gpt-4o", "gpt-4o", **defaults)


async def test_token_window_429_and_retry_after(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(_limited())) as emu:
        caller = Caller(session, emu.url)
        start = time.monotonic()
        remaining = []
        for _ in range(10):
            status, headers, _ = await caller.post(azure_path(), HI)
            assert status == 200
            remaining.append(int(headers["x-ratelimit-remaining-tokens"]))
        assert remaining == [900 - 100 * i for i in range(10)]
        status, headers, body = await caller.post(azure_path(), HI)
        assert status == 429
        message = body["error"]["message"]
        assert body["error"]["code"] == "429"
        assert message.startswith(
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {API_VERSION} "
            "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
        )
        wait_ms = int(headers["retry-after-ms"])
        elapsed_ms = (time.monotonic() - start) * 1000
        # The first charge expires 2 s after it was admitted.
        assert 2000 - elapsed_ms - 50 <= wait_ms <= 2000
        assert int(headers["retry-after"]) == math.ceil(wait_ms / 1000)
        assert f"Please retry after {headers['retry-after']} seconds." in message
        assert headers["x-ratelimit-remaining-tokens"] == "0"
        # Waiting a bit less than advised is still too early; waiting the advice succeeds.
        await asyncio.sleep(max(0.0, wait_ms / 1000 - 0.25))
        assert (await caller.post(azure_path(), HI))[0] == 429
        await asyncio.sleep(0.3)
        status, headers, _ = await caller.post(azure_path(), HI)
        assert status == 200
        stats = emu.stats()["deployments"]["gpt-4o"]
        assert stats["admitted"] == 11
        assert stats["throttled_tokens"] == 2
        assert stats["tokens_charged"] == 1100  # refused requests charged nothing


async def test_request_window_call_rate_limit(session: aiohttp.ClientSession) -> None:
    # rpm 12 -> 2 requests per (compressed, 1 s) request window.
    deployment = _limited(tpm=1_000_000, rpm=12, request_window_s=1.0)
    with EmbeddedEmulator(zero_config(deployment)) as emu:
        caller = Caller(session, emu.url)
        first = await caller.post(azure_path(), HI)
        second = await caller.post(azure_path(), HI)
        assert [first[0], second[0]] == [200, 200]
        assert first[1]["x-ratelimit-remaining-requests"] == "1"
        assert second[1]["x-ratelimit-remaining-requests"] == "0"
        assert first[1]["x-ratelimit-limit-requests"] == "2"
        assert first[1]["x-ratelimit-limit-tokens"] == "1000000"
        status, headers, body = await caller.post(azure_path(), HI)
        assert status == 429
        assert "exceeded call rate limit" in body["error"]["message"]
        assert 0 < int(headers["retry-after-ms"]) <= 1000
        await asyncio.sleep(int(headers["retry-after-ms"]) / 1000 + 0.02)
        assert (await caller.post(azure_path(), HI))[0] == 200
        stats = emu.stats()["deployments"]["gpt-4o"]
        assert (stats["admitted"], stats["throttled_requests"], stats["throttled_tokens"]) == (3, 1, 0)


async def test_default_rpm_is_6_per_1000_tpm(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(Deployment("gpt-4o", "gpt-4o", tpm=10_000))) as emu:
        _, headers, _ = await Caller(session, emu.url).post(azure_path(), HI)
        assert headers["x-ratelimit-limit-requests"] == "10"  # 60 RPM -> 10 per 10 s
        assert headers["x-ratelimit-remaining-requests"] == "9"
        assert emu.stats()["deployments"]["gpt-4o"]["rpm"] == 60


async def test_fixed_window_mode(session: aiohttp.ClientSession) -> None:
    deployment = _limited(token_window_s=1.0)
    with EmbeddedEmulator(zero_config(deployment, window_mode="fixed")) as emu:
        caller = Caller(session, emu.url)
        emu.reset()  # re-aligns the fixed windows to now, so the burst sits early in one window
        statuses = [(await caller.post(azure_path(), HI))[0] for _ in range(11)]
        assert statuses == [200] * 10 + [429]
        status, headers, _ = await caller.post(azure_path(), HI)
        assert status == 429
        wait = int(headers["retry-after-ms"]) / 1000
        assert 0 < wait <= 1.0
        await asyncio.sleep(wait + 0.02)
        # A fixed window frees everything at the boundary: ten more fit at once.
        statuses = [(await caller.post(azure_path(), HI))[0] for _ in range(10)]
        assert statuses == [200] * 10


async def test_no_limit_headers_when_disabled(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(_limited(), send_limit_headers=False)) as emu:
        _, headers, _ = await Caller(session, emu.url).post(azure_path(), HI)
        assert "x-ratelimit-remaining-tokens" in headers
        assert "x-ratelimit-remaining-requests" in headers
        assert "x-ratelimit-limit-tokens" not in headers
        assert "x-ratelimit-limit-requests" not in headers


async def test_request_larger_than_tpm_is_400(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(_limited())) as emu:
        caller = Caller(session, emu.url)
        status, _, body = await caller.post(azure_path(), {**HI, "max_tokens": 2000})
        assert status == 400
        assert "exceeds the deployment's token rate limit of 1000" in body["error"]["message"]
        # No max_tokens: gpt-4o's default 4096 output tokens are reserved.
        status, _, _ = await caller.post(azure_path(), {"messages": HI["messages"]})
        assert status == 400
        assert emu.stats()["deployments"]["gpt-4o"]["tokens_charged"] == 0


@pytest.mark.parametrize("rule", ["prompt+max", "max-only", "prompt-text+max", "chars+max"])
async def test_charge_rules(session: aiohttp.ClientSession, rule: str) -> None:
    img = make_image(1024, 1024)  # 765 image tokens at high detail on gpt-4o
    body_in = chat_body(image_part(data_url(img)), max_tokens=50)
    with EmbeddedEmulator(zero_config(charge_rule=rule)) as emu:
        status, _, body = await Caller(session, emu.url).post(azure_path(), body_in)
        assert status == 200
        prompt = body["usage"]["prompt_tokens"]
        charged = emu.requests()[-1]["tokens_charged"]
        assert emu.stats()["deployments"]["gpt-4o"]["tokens_charged"] == charged
    sent_chars = len(json.dumps(body_in))  # what aiohttp's json= sends
    expected = {
        "prompt+max": prompt + 50,
        "max-only": 50,
        "prompt-text+max": prompt - 765 + 50,
        "chars+max": math.ceil(sent_chars / 4) + 50,
    }[rule]
    assert charged == expected


async def test_charge_without_max_uses_model_default(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(charge_rule="max-only")) as emu:
        await Caller(session, emu.url).post(azure_path(), {"messages": HI["messages"]})
        assert emu.requests()[-1]["tokens_charged"] == 4096
