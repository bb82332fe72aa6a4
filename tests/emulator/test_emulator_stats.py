"""Stats and the request log: what benchmarks and tests read back; keys never recorded."""

from __future__ import annotations

import json

import aiohttp
from emulator_helpers import KEY, Caller, azure_path, chat_body, data_url, image_part, make_image, zero_config

from batch.emulator import Deployment, EmbeddedEmulator

HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 92}  # charge 100


async def test_stats_and_log_after_mixed_traffic(session: aiohttp.ClientSession) -> None:
    deployment = Deployment("vision", "gpt-4o", tpm=1000, rpm=60_000, token_window_s=30.0)
    with EmbeddedEmulator(zero_config(deployment, api_keys=frozenset({KEY}))) as emu:
        caller = Caller(session, emu.url)
        images = [make_image(20 + i, 20, seed=i) for i in range(3)]
        usages = []
        for i, img in enumerate(images):
            detail = ("low", "high", "auto")[i]
            status, _, body = await caller.post(
                azure_path("vision"), chat_body(image_part(data_url(img), detail), text=f"row {i}", max_tokens=20)
            )
            assert status == 200
            usages.append(body["usage"])
        bearer = {"Authorization": f"Bearer {KEY}"}
        v1 = await caller.post("/openai/v1/chat/completions", {**HI, "model": "vision"}, headers=bearer)
        assert v1[0] == 200
        usages.append(v1[2]["usage"])
        assert (await caller.post(azure_path("vision"), HI, headers={"api-key": "bad"}))[0] == 401
        assert (await caller.post(azure_path("missing"), HI))[0] == 404
        bad_detail = chat_body(image_part(data_url(images[0]), "ultra"), max_tokens=5)
        assert (await caller.post(azure_path("vision"), bad_detail))[0] == 400
        throttled = [(await caller.post(azure_path("vision"), HI))[0] for _ in range(10)]
        assert 429 in throttled

        stats = emu.stats()
        http_status, http_stats = await caller.get("/_emulator/stats")
        log = emu.requests()
        http_log = (await caller.get("/_emulator/requests"))[1]

    assert http_status == 200
    assert http_stats["deployments"]["vision"]["received"] == stats["deployments"]["vision"]["received"]
    dep = stats["deployments"]["vision"]
    admitted = 4 + throttled.count(200)
    assert dep["received"] == 4 + 1 + 1 + 10  # the 401 named this deployment in its path
    assert dep["admitted"] == admitted
    assert dep["throttled_tokens"] == throttled.count(429)
    assert dep["throttled_requests"] == 0
    assert dep["errors"] == {"400": 1, "401": 1}
    assert dep["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages) + 8 * throttled.count(200)
    assert dep["completion_tokens"] == sum(u["completion_tokens"] for u in usages) + 60 * throttled.count(200)
    assert dep["tokens_charged"] == sum(e["tokens_charged"] or 0 for e in log)
    assert dep["first_admission_at"] <= dep["last_admission_at"]
    assert dep["model"] == "gpt-4o" and dep["tpm"] == 1000
    assert sum(row[1] for row in dep["timeline"]) == admitted
    assert sum(row[2] for row in dep["timeline"]) == dep["tokens_charged"]
    assert sum(row[3] for row in dep["timeline"]) == throttled.count(429)
    assert [row[0] for row in dep["timeline"]] == list(range(len(dep["timeline"])))
    assert stats["_unrouted"]["errors"] == {"404": 1}
    assert stats["requests_received"] == len(log) == 17
    assert stats["cpu"]["process_s"] > 0 and stats["cpu"]["thread_s"] > 0

    assert http_log == log
    assert [e["seq"] for e in log] == list(range(1, 18))
    assert [e["route"] for e in log[:5]] == ["azure", "azure", "azure", "azure-v1", "azure"]
    assert [e["auth"] for e in log[:5]] == ["api-key", "api-key", "api-key", "bearer", None]
    assert [e["status"] for e in log[:7]] == [200, 200, 200, 200, 401, 404, 400]
    assert log[5]["deployment"] == "missing"
    assert log[6]["error_code"] == "invalid_value"
    for i, entry in enumerate(log[:3]):
        assert entry["texts"] == [f"row {i}"]
        assert entry["max_tokens_field"] == "max_tokens" and entry["max_tokens"] == 20
        (image,) = entry["images"]
        assert image["detail"] == ("low", "high", "auto")[i]
        assert image["source"] == "data"
        assert (image["width"], image["height"], image["format"]) == (20 + i, 20, "PNG")
        assert entry["finish_reason"] == "length"  # 20 < the 60-token answer
    assert len({e["request_id"] for e in log}) == 17
    # Keys appear nowhere: not in stats, not in the log.
    assert KEY not in json.dumps(stats) and KEY not in json.dumps(log)
    assert "bad" not in json.dumps([e["auth"] for e in log])


async def test_log_request_id_matches_header(caller: Caller, emulator: EmbeddedEmulator) -> None:
    _, headers, _ = await caller.post(azure_path(), HI)
    assert emulator.requests()[-1]["request_id"] == headers["x-request-id"]
    _, headers, _ = await caller.post(azure_path(), HI, headers={"api-key": "wrong"})
    assert emulator.requests()[-1]["request_id"] == headers["apim-request-id"]


async def test_log_since_and_reset(caller: Caller, emulator: EmbeddedEmulator) -> None:
    for _ in range(3):
        await caller.post(azure_path(), HI)
    status, entries = await caller.get("/_emulator/requests?since=2")
    assert status == 200 and [e["seq"] for e in entries] == [3]
    async with caller.session.post(caller.base_url + "/_emulator/reset") as resp:
        assert resp.status == 200
    assert emulator.requests() == []
    assert emulator.stats()["deployments"]["gpt-4o"]["received"] == 0
    await caller.post(azure_path(), HI)
    emulator.reset()
    assert emulator.stats()["requests_received"] == 0


async def test_log_limit_bounds_memory(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(log_limit=3)) as emu:
        caller = Caller(session, emu.url)
        for _ in range(5):
            await caller.post(azure_path(), HI)
        assert [e["seq"] for e in emu.requests()] == [3, 4, 5]
        assert emu.stats()["requests_received"] == 5
