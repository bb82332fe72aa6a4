"""Fault injection: what a client really sees per kind, over real HTTP on loopback; the
seeded rate, match/count/window/deployment filters, charging, admin route, CLI and config."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from emulator_helpers import (
    API_VERSION,
    KEY,
    Caller,
    azure_path,
    chat_body,
    data_url,
    image_part,
    make_image,
    zero_config,
)

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, Fault, LatencyModel, main
from batch.emulator.command import _banner, build_parser, config_from_args
from batch.emulator.fault_injector import FaultInjector
from batch.emulator.faults import FAULT_KINDS, parse_fault_spec

HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
HI_CHARGE = 28  # prompt 8 + max 20 under prompt+max
AZURE_401 = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
    "key for an active subscription and use a correct regional API endpoint for your resource."
)
NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment within the "
    "last 5 minutes, please wait a moment and try again."
)
SAFE = {"filtered": False, "severity": "safe"}


@pytest.fixture(autouse=True)
def no_error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a fault does, the server logs nothing at ERROR (no tracebacks, no pending tasks)."""
    caplog.set_level(logging.ERROR)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.fixture
def emu() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(zero_config(api_keys=frozenset({KEY}))) as emulator:
        yield emulator


@pytest.fixture
def caller(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> Caller:
    return Caller(session, emu.url)


async def post_raw(
    session: aiohttp.ClientSession, url: str, body: Any = HI, *, timeout: float = 10.0
) -> tuple[int, Mapping[str, str], bytes]:
    async with session.post(
        url, json=body, headers={"api-key": KEY}, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as resp:
        return resp.status, resp.headers, await resp.read()


def dep_stats(emu: EmbeddedEmulator, name: str = "gpt-4o") -> dict[str, Any]:
    stats: dict[str, Any] = emu.stats()["deployments"][name]
    return stats


# -- each kind, as the client sees it -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "retry_after", "retry_after_ms", "retry_in_message"),
    [
        ("429", "3", "2500", "Please retry after 3 seconds."),
        ("429-retry-after", "3", None, "Please retry after 3 seconds."),
        ("429-bare", None, None, None),
        ("429-quota", "86400", "86400000", "Please retry after 86400 seconds."),
    ],
)
async def test_429_kinds(
    emu: EmbeddedEmulator,
    caller: Caller,
    kind: str,
    retry_after: str | None,
    retry_after_ms: str | None,
    retry_in_message: str | None,
) -> None:
    emu.set_faults([Fault(kind, retry_after_s=2.5)])
    status, headers, body = await caller.post(azure_path(), HI)
    assert status == 429
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "429"
    message = body["error"]["message"]
    assert message.startswith(
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {API_VERSION} "
        "have exceeded token rate limit of your current OpenAI S0 pricing tier."
    )
    assert headers.get("retry-after") == retry_after
    assert headers.get("retry-after-ms") == retry_after_ms
    if retry_in_message is None:
        assert "retry after" not in message.lower()
        assert "x-ratelimit-remaining-tokens" not in headers
    else:
        assert retry_in_message in message
        assert headers["x-ratelimit-remaining-tokens"] == "10000000"  # nothing charged
    assert headers["x-request-id"]
    # Decided before admission: not charged, not admitted, not a limiter throttle.
    stats = dep_stats(emu)
    assert (stats["admitted"], stats["tokens_charged"], stats["throttled_tokens"]) == (0, 0, 0)
    assert stats["faults"] == {kind: 1} and stats["errors"] == {}
    (entry,) = emu.requests()
    assert (entry["status"], entry["fault"], entry["error_code"], entry["tokens_charged"]) == (429, kind, "429", None)


@pytest.mark.parametrize(
    ("kind", "content_type", "check"),
    [
        ("500", "application/json", '{"error":{"code":"InternalServerError","message":"Backend returned'),
        ("502", "text/html", "<head><title>502 Bad Gateway</title></head>"),
        ("503", "application/json", '{"error":{"code":"ServiceUnavailable","message":"The service is'),
        ("504", "text/plain", "upstream request timeout"),
    ],
)
async def test_5xx_kinds_are_charged(
    emu: EmbeddedEmulator, session: aiohttp.ClientSession, kind: str, content_type: str, check: str
) -> None:
    emu.set_faults([Fault(kind)])
    status, headers, raw = await post_raw(session, emu.url + azure_path())
    assert status == int(kind)
    assert headers["Content-Type"].startswith(content_type)
    assert check in raw.decode()
    if content_type == "application/json":
        assert set(json.loads(raw)["error"]) == {"code", "message"}
    stats = dep_stats(emu)
    # After admission: charged like any admitted request, counted as an error and a fault.
    assert (stats["admitted"], stats["tokens_charged"]) == (1, HI_CHARGE)
    assert stats["errors"] == {kind: 1} and stats["faults"] == {kind: 1}
    assert stats["completion_tokens"] == 0
    (entry,) = emu.requests()
    assert (entry["status"], entry["fault"], entry["tokens_charged"]) == (int(kind), kind, HI_CHARGE)


async def test_reset_drops_the_connection_mid_response(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults([Fault("reset")])
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
        await post_raw(session, emu.url + azure_path())
    # The server is fine afterwards and the next request (rule removed) succeeds.
    emu.clear_faults()
    assert (await post_raw(session, emu.url + azure_path()))[0] == 200
    first = emu.requests()[0]
    assert (first["status"], first["fault"], first["tokens_charged"]) == (None, "reset", HI_CHARGE)
    stats = dep_stats(emu)
    assert stats["faults"] == {"reset": 1} and stats["errors"] == {} and stats["admitted"] == 2


async def test_hang_times_the_client_out_without_blocking_others() -> None:
    with EmbeddedEmulator(zero_config()) as emu:
        emu.set_faults([Fault("hang", match="hang me")])
        async with aiohttp.ClientSession() as session:
            url = emu.url + azure_path()
            hanging = asyncio.create_task(post_raw(session, url, chat_body(text="hang me", max_tokens=5), timeout=0.5))
            await asyncio.sleep(0.1)
            start = time.monotonic()
            assert (await post_raw(session, url, HI))[0] == 200  # not blocked by the hang
            assert time.monotonic() - start < 0.3
            with pytest.raises(asyncio.TimeoutError):
                await hanging
        await asyncio.sleep(0.2)  # the server notices the client left (it polls every 50 ms)
        entry = emu.requests()[0]
        assert (entry["status"], entry["fault"], entry["client_disconnected"]) == (None, "hang", True)
        stats = dep_stats(emu)
        assert stats["client_disconnects"] == 1 and stats["faults"] == {"hang": 1} and stats["admitted"] == 2
        start = time.monotonic()
    assert time.monotonic() - start < 1.0  # shut down promptly


async def test_hang_ends_when_the_server_stops() -> None:
    emu = EmbeddedEmulator(zero_config(), port=0).start()
    try:
        emu.set_faults([Fault("hang", hang_s=600)])
        async with aiohttp.ClientSession() as session:
            waiting = asyncio.create_task(post_raw(session, emu.url + azure_path(), timeout=10))
            await asyncio.sleep(0.2)
            start = time.monotonic()
            stopper = threading.Thread(target=emu.stop)
            stopper.start()
            with pytest.raises(aiohttp.ClientConnectionError):  # the connection drops: no status
                await waiting
            await asyncio.to_thread(stopper.join, 5.0)
            assert not stopper.is_alive()
            assert time.monotonic() - start < 1.0
    finally:
        emu.stop()


async def test_hang_with_short_hang_s_drops_without_answering(
    emu: EmbeddedEmulator, session: aiohttp.ClientSession
) -> None:
    emu.set_faults([Fault("hang", hang_s=0.2)])
    start = time.monotonic()
    with pytest.raises(aiohttp.ClientConnectionError):
        await post_raw(session, emu.url + azure_path())
    assert 0.2 <= time.monotonic() - start < 1.0
    entry = emu.requests()[0]
    assert (entry["status"], entry["fault"], entry["client_disconnected"]) == (None, "hang", False)


async def test_slow_body_arrives_complete_but_late(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults([Fault("slow-body", trickle_s=0.6)])
    start = time.monotonic()
    async with session.post(emu.url + azure_path(), json=HI, headers={"api-key": KEY}) as resp:
        headers_after = time.monotonic() - start
        assert resp.status == 200
        assert resp.headers["x-request-id"] and resp.headers["x-ratelimit-remaining-tokens"]
        body = await resp.json()
    elapsed = time.monotonic() - start
    assert headers_after < 0.5 <= 0.6 <= elapsed < 2.0
    entry = emu.requests()[0]
    assert (entry["status"], entry["fault"], entry["request_id"]) == (200, "slow-body", resp.headers["x-request-id"])
    emu.clear_faults()
    _, _, plain = await post_raw(session, emu.url + azure_path())
    normal = json.loads(plain)
    assert body["choices"] == normal["choices"] and body["usage"] == normal["usage"]  # the same, complete reply


async def test_client_leaving_during_slow_body(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults([Fault("slow-body", trickle_s=1.0)])
    with pytest.raises(asyncio.TimeoutError):
        await post_raw(session, emu.url + azure_path(), timeout=0.3)
    await asyncio.sleep(0.3)
    entry = emu.requests()[0]
    assert (entry["status"], entry["fault"], entry["client_disconnected"]) == (None, "slow-body", True)
    assert dep_stats(emu)["client_disconnects"] == 1


async def test_malformed_json(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults([Fault("malformed-json")])
    async with session.post(emu.url + azure_path(), json=HI, headers={"api-key": KEY}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        raw = await resp.read()
        with pytest.raises(json.JSONDecodeError):
            await resp.json()
    assert raw.startswith(b'{"id":"chatcmpl-')
    stats = dep_stats(emu)
    assert stats["faults"] == {"malformed-json": 1} and stats["tokens_charged"] == HI_CHARGE


async def test_content_filter_prompt(emu: EmbeddedEmulator, caller: Caller) -> None:
    emu.set_faults([Fault("content-filter-prompt")])
    status, _, body = await caller.post(azure_path(), HI)
    assert status == 400
    error = body["error"]
    assert error["code"] == "content_filter" and error["param"] == "prompt" and error["status"] == 400
    assert error["type"] is None
    assert error["message"].startswith(
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."
    )
    assert error["innererror"] == {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {
            "hate": SAFE,
            "self_harm": SAFE,
            "sexual": SAFE,
            "violence": {"filtered": True, "severity": "high"},
            "jailbreak": {"filtered": False, "detected": False},
        },
    }
    stats = dep_stats(emu)
    assert (stats["tokens_charged"], stats["errors"], stats["faults"]) == (0, {"400": 1}, {"content-filter-prompt": 1})


async def test_content_filter_completion(emu: EmbeddedEmulator, caller: Caller) -> None:
    emu.set_faults([Fault("content-filter-completion")])
    status, _, body = await caller.post(azure_path(), HI)
    assert status == 200
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None and choice["message"]["role"] == "assistant"
    assert choice["content_filter_results"]["violence"] == {"filtered": True, "severity": "high"}
    assert choice["content_filter_results"]["hate"] == SAFE
    assert body["prompt_filter_results"][0]["content_filter_results"]["violence"] == SAFE  # the prompt passed
    entry = emu.requests()[0]
    assert (entry["status"], entry["finish_reason"], entry["fault"]) == (
        200,
        "content_filter",
        "content-filter-completion",
    )
    assert dep_stats(emu)["tokens_charged"] == HI_CHARGE


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("401", "401", AZURE_401),
        ("404", "DeploymentNotFound", NOT_FOUND_MESSAGE),
        ("413", "request_too_large", None),
    ],
)
async def test_401_404_413(emu: EmbeddedEmulator, caller: Caller, kind: str, code: str, message: str | None) -> None:
    emu.set_faults([Fault(kind)])
    status, _, body = await caller.post(azure_path(), HI)
    assert status == int(kind)
    assert body["error"]["code"] == code and set(body["error"]) == {"code", "message"}
    if message is not None:
        assert body["error"]["message"] == message
    stats = dep_stats(emu)
    assert (stats["tokens_charged"], stats["errors"], stats["faults"]) == (0, {kind: 1}, {kind: 1})


def test_every_kind_has_a_test() -> None:
    tested = {"429", "429-retry-after", "429-bare", "429-quota", "500", "502", "503", "504", "reset", "hang"}
    tested |= {"slow-body", "malformed-json", "content-filter-prompt", "content-filter-completion"}
    tested |= {"401", "404", "413"}
    tested |= {"refusal", "non-json-answer", "schema-drift"}  # test_structured_outputs.py
    assert tested == set(FAULT_KINDS)


# -- rules: rate, match, count, window, deployment, order ---------------------------------


async def test_rate_is_seeded_and_reproducible(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    url = emu.url + azure_path()

    async def run() -> int:
        emu.set_faults([Fault("429", rate=0.1)])  # installing restarts the rule's RNG
        statuses = await asyncio.gather(*(post_raw(session, url) for _ in range(1000)))
        return sum(1 for s in statuses if s[0] == 429)

    first = await run()
    assert 60 <= first <= 140
    assert await run() == first
    assert emu.faults()["hits"] == [first]
    assert emu.stats()["faults"] == {"429": 2 * first}


def test_rate_draws_depend_on_the_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        injector = FaultInjector([Fault("500", rate=0.3)], seed=seed, now=0.0)
        return [injector.pick("d", ["x"], [], 1.0) is not None for _ in range(200)]

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)
    assert 30 <= sum(pattern(1)) <= 90


async def test_match_targets_one_image_or_text(emu: EmbeddedEmulator, caller: Caller) -> None:
    images = [make_image(16, 16, seed=i) for i in range(3)]
    bodies = [chat_body(image_part(data_url(img)), text=f"row {i}", max_tokens=5) for i, img in enumerate(images)]
    await asyncio.gather(*(caller.post(azure_path(), b) for b in bodies))  # learn each row's sha256
    shas = [e["images"][0]["sha256"] for e in sorted(emu.requests(), key=lambda e: e["texts"])]
    assert len({s[:6] for s in shas}) == 3
    emu.reset()
    emu.set_faults([Fault("500", match=shas[1][:6].upper()), Fault("503", match="row 2")])
    statuses = [(await caller.post(azure_path(), b))[0] for b in bodies for _ in range(2)]
    assert statuses == [200, 200, 500, 500, 503, 503]
    assert [e["fault"] for e in emu.requests()] == [None, None, "500", "500", "503", "503"]


async def test_count_stops_after_n_hits(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults([Fault("500", count=2)])
    statuses = await asyncio.gather(*(post_raw(session, emu.url + azure_path()) for _ in range(10)))
    assert sorted(s[0] for s in statuses) == [200] * 8 + [500] * 2
    assert emu.faults()["hits"] == [2]
    emu.reset()  # restarts the counts
    assert (await post_raw(session, emu.url + azure_path()))[0] == 500


async def test_time_window(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults([Fault("503", start_s=0.3, end_s=0.6)])
    url = emu.url + azure_path()
    start = time.monotonic()
    assert (await post_raw(session, url))[0] == 200
    await asyncio.sleep(0.4 - (time.monotonic() - start))
    assert (await post_raw(session, url))[0] == 503
    await asyncio.sleep(0.7 - (time.monotonic() - start))
    assert (await post_raw(session, url))[0] == 200


async def test_deployment_filter_and_first_rule_wins(session: aiohttp.ClientSession) -> None:
    config = zero_config(Deployment("a", "gpt-4o", tpm=100_000), Deployment("b", "gpt-4o-mini", tpm=100_000))
    with EmbeddedEmulator(config) as emu:
        emu.set_faults([Fault("502", deployment="b", match="special"), Fault("429", deployment="b")])
        special = chat_body(text="special row", max_tokens=5)
        assert (await post_raw(session, emu.url + azure_path("a"), special))[0] == 200
        assert (await post_raw(session, emu.url + azure_path("b"), special))[0] == 502
        assert (await post_raw(session, emu.url + azure_path("b")))[0] == 429
        stats = emu.stats()
    assert stats["faults"] == {"429": 1, "502": 1}
    assert stats["deployments"]["a"]["faults"] == {}
    assert stats["deployments"]["b"]["faults"] == {"429": 1, "502": 1}
    assert stats["deployments"]["b"]["tokens_charged"] > 0  # the 502 was charged, the 429 not
    assert stats["deployments"]["b"]["admitted"] == 1


async def test_post_admission_fault_yields_to_a_real_throttle(session: aiohttp.ClientSession) -> None:
    deployment = Deployment("gpt-4o", "gpt-4o", tpm=100_000, rpm=6)  # one request per 10 s window
    with EmbeddedEmulator(zero_config(deployment)) as emu:
        emu.set_faults([Fault("500")])
        assert (await post_raw(session, emu.url + azure_path()))[0] == 500
        status, headers, _ = await post_raw(session, emu.url + azure_path())
        assert status == 429 and "retry-after-ms" in headers  # the limiter's own refusal
        log = emu.requests()
        stats = dep_stats(emu)
    assert [e["fault"] for e in log] == ["500", None]
    assert stats["faults"] == {"500": 1} and stats["throttled_requests"] == 1
    assert emu_hits_consistent(stats)


def emu_hits_consistent(stats: dict[str, Any]) -> bool:
    refused = stats["throttled_tokens"] + stats["throttled_requests"]
    injected_429 = sum(n for k, n in stats["faults"].items() if k.startswith("429"))
    return bool(stats["received"] >= stats["admitted"] + refused + injected_429)


async def test_log_and_stats_after_mixed_faults(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    emu.set_faults(
        [
            Fault("429", match="a"),
            Fault("500", match="b"),
            Fault("content-filter-completion", match="c"),
            Fault("reset", match="d"),
        ]
    )
    url = emu.url + azure_path()
    for text in "abcde":
        try:
            await post_raw(session, url, chat_body(text=text, max_tokens=5))
        except aiohttp.ClientError:
            assert text == "d"
    log = emu.requests()
    assert [(e["texts"], e["status"], e["fault"]) for e in log] == [
        (["a"], 429, "429"),
        (["b"], 500, "500"),
        (["c"], 200, "content-filter-completion"),
        (["d"], None, "reset"),
        (["e"], 200, None),
    ]
    stats = emu.stats()
    expected = {"429": 1, "500": 1, "content-filter-completion": 1, "reset": 1}
    assert stats["faults"] == expected == stats["deployments"]["gpt-4o"]["faults"]
    dep = stats["deployments"]["gpt-4o"]
    assert (dep["received"], dep["admitted"], dep["errors"]) == (5, 4, {"500": 1})
    assert dep["tokens_charged"] == sum(e["tokens_charged"] or 0 for e in log)
    assert stats["_unrouted"]["faults"] == {}


async def test_client_leaving_during_latency_hold(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(latency=LatencyModel(0.5, 0.0, 0.0))) as emu:
        with pytest.raises(asyncio.TimeoutError):
            await post_raw(session, emu.url + azure_path(), timeout=0.2)
        await asyncio.sleep(0.5)
        (entry,) = emu.requests()
        stats = dep_stats(emu)
        start = time.monotonic()
    assert time.monotonic() - start < 1.0
    assert (entry["status"], entry["client_disconnected"], entry["fault"]) == (None, True, None)
    assert (stats["admitted"], stats["client_disconnects"], stats["tokens_charged"]) == (1, 1, HI_CHARGE)


# -- switching faults on: admin route, Python, CLI, config file ---------------------------


async def test_admin_route(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    base = emu.url + "/_emulator/faults"

    async def call(method: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        async with session.request(method, base, data=data) as resp:
            return resp.status, await resp.json()

    assert await call("GET") == (200, {"faults": [], "hits": [], "elapsed_s": pytest.approx(0, abs=60)})
    status, doc = await call("PUT", [{"kind": "500", "count": 1}, {"kind": 429, "rate": 0.5, "match": "zz"}])
    assert status == 200
    assert doc["faults"][0] == {**Fault("500").to_json(), "count": 1}
    assert doc["faults"][1]["kind"] == "429" and doc["faults"][1]["rate"] == 0.5
    assert doc["hits"] == [0, 0]
    assert (await post_raw(session, emu.url + azure_path()))[0] == 500
    status, doc = await call("GET")
    assert doc["hits"] == [1, 0] and len(doc["faults"]) == 2
    # PUT replaces (and restarts counts); the {"faults": [...]} form is accepted too.
    status, doc = await call("PUT", {"faults": [{"kind": "503"}]})
    assert status == 200 and [f["kind"] for f in doc["faults"]] == ["503"] and doc["hits"] == [0]
    for bad, needle in [
        ([{"kind": "500", "colour": "red"}], "colour"),
        ([{"kind": "418"}], "unknown fault kind '418'"),
        ([{"kind": "500", "rate": 2}], "rate"),
        ([{"kind": "500", "deployment": "nope"}], "unknown deployment 'nope'"),
        ([{"kind": "500", "count": "two"}], "'count' must be an integer"),
        ([{"rate": 1}], "'kind' is required"),
        ({"kind": "500"}, "JSON list"),
    ]:
        status, doc = await call("PUT", bad)
        assert status == 400 and doc["error"]["code"] == "invalid_fault", bad
        assert needle in doc["error"]["message"], (needle, doc)
        assert "faults[" in doc["error"]["message"] or needle == "JSON list"
    status, doc = await call("PUT", raw=b"not json")
    assert status == 400 and doc["error"]["code"] == "invalid_json"
    assert (await call("GET"))[1]["faults"][0]["kind"] == "503"  # failed PUTs changed nothing
    status, doc = await call("DELETE")
    assert status == 200 and doc["faults"] == []
    assert (await post_raw(session, emu.url + azure_path()))[0] == 200
    async with session.post(base) as resp:
        assert resp.status == 405


def test_cli_fault_strings() -> None:
    assert parse_fault_spec("429") == Fault("429")
    assert parse_fault_spec("429:0.1") == Fault("429", rate=0.1)
    assert parse_fault_spec("reset:0.01") == Fault("reset", rate=0.01)
    assert parse_fault_spec("hang:0.01,hang_s=30") == Fault("hang", rate=0.01, hang_s=30.0)
    assert parse_fault_spec("500:1,match=ab12cd,count=2") == Fault("500", rate=1.0, match="ab12cd", count=2)
    assert parse_fault_spec(" slow-body , trickle_s=0.5 , start_s=1, end_s=none, deployment=vision ") == Fault(
        "slow-body", trickle_s=0.5, start_s=1.0, deployment="vision"
    )
    assert parse_fault_spec("429-retry-after,retry_after_s=7,rate=0.5") == Fault(
        "429-retry-after", rate=0.5, retry_after_s=7.0
    )
    for bad, needle in [
        ("", "missing KIND"),
        ("teapot:0.1", "unknown kind 'teapot'"),
        ("429:lots", "rate must be a number, got 'lots'"),
        ("429:1.5", "rate must be between 0 and 1"),
        ("429:0.1,rate=0.2", "'rate' given twice"),
        ("hang,hang_s", "expected key=value, got 'hang_s'"),
        ("hang,hang_secs=3", "unknown key 'hang_secs'"),
        ("hang,hang_s=soon", "hang_s must be a number, got 'soon'"),
        ("hang,hang_s=0", "hang_s must be a finite number > 0"),
        ("500,count=1.5", "count must be an integer, got '1.5'"),
        ("500,count=0", "count must be >= 1"),
        ("500,start_s=2,end_s=1", "end_s must be a finite number > start_s"),
        ("500,start_s=nan", "start_s must be finite"),
    ]:
        with pytest.raises(ValueError, match="fault ") as info:
            parse_fault_spec(bad)
        assert needle in str(info.value), (bad, str(info.value))


def test_cli_flags_and_banner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["--fault", "429:0.1", "--fault", "reset:0.01", "--fault", "hang:0.01,hang_s=30",
         "--fault", "500:1,match=ab12cd,count=2", "--seed", "5"]
    )  # fmt: skip
    config = config_from_args(args, environ={})
    assert config.faults == (
        Fault("429", rate=0.1),
        Fault("reset", rate=0.01),
        Fault("hang", rate=0.01, hang_s=30.0),
        Fault("500", match="ab12cd", count=2),
    )
    banner = "\n".join(_banner(config, "http://127.0.0.1:1"))
    assert "fault 429:0.1" in banner and "fault hang:0.01,hang_s=30" in banner
    assert "fault 500:1,match=ab12cd,count=2" in banner
    assert main(["--fault", "500,colour=red"]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err
    assert main(["--deployment", "v=gpt-4o", "--fault", "500,deployment=other"]) == 2
    assert "unknown deployment 'other'" in capsys.readouterr().err
    # A config file's faults are replaced by --fault, kept without it.
    path = tmp_path / "emu.toml"
    path.write_text('[[deployments]]\nname = "v"\nmodel = "gpt-4o"\n[[faults]]\nkind = "503"\n')
    assert config_from_args(build_parser().parse_args(["--config", str(path)]), environ={}).faults == (Fault("503"),)
    replaced = config_from_args(build_parser().parse_args(["--config", str(path), "--fault", "502"]), environ={})
    assert replaced.faults == (Fault("502"),)


def test_config_file_faults(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text(
        'seed = 3\n[[deployments]]\nname = "vision"\nmodel = "gpt-4o"\n'
        '[[faults]]\nkind = "429"\nrate = 0.25\nretry_after_s = 4\n'
        '[[faults]]\nkind = "hang"\nrate = 1\nhang_s = 30\nmatch = "ab12"\ndeployment = "vision"\ncount = 3\n'
        "[[faults]]\nkind = 500\nstart_s = 10\nend_s = 20.5\n"
    )
    config = EmulatorConfig.from_toml(path)
    assert config.faults == (
        Fault("429", rate=0.25, retry_after_s=4.0),
        Fault("hang", hang_s=30.0, match="ab12", deployment="vision", count=3),
        Fault("500", start_s=10.0, end_s=20.5),
    )
    for table, needle in [
        ('[[faults]]\nkind = "429"\ncolour = "red"\n', "faults[0]: unknown key(s) colour"),
        ('[[faults]]\nkind = "429"\nrate = "high"\n', "'rate' must be a number"),
        ('[[faults]]\nkind = "429"\ndeployment = "other"\n', "unknown deployment 'other'"),
        ('[[faults]]\nkind = "nope"\n', "unknown fault kind 'nope'"),
        ('faults = "429"\n', "'faults' must be an array of tables"),
    ]:
        header = 'faults = "429"\n' if table.startswith("faults =") else ""
        body = table if not header else ""
        path.write_text(header + '[[deployments]]\nname = "vision"\nmodel = "gpt-4o"\n' + body)
        with pytest.raises(ValueError) as info:
            EmulatorConfig.from_toml(path)
        assert needle in str(info.value) and str(path) in str(info.value), str(info.value)


async def test_config_faults_served(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(faults=(Fault("503", count=1),))) as emu:
        assert (await post_raw(session, emu.url + azure_path()))[0] == 503
        assert (await post_raw(session, emu.url + azure_path()))[0] == 200
        assert emu.faults()["hits"] == [1]
