"""Azure AI Vision 4.0 read: real OCR of rendered images, the 200 shape, key, 400s, the
calls-per-second limit, faults, stats and the log, over real HTTP on loopback; its config."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from emulator_helpers import KEY, data_url, inside, text_image, zero_config
from PIL import Image

from batch.emulator import EmbeddedEmulator, EmulatorConfig, Fault
from batch.emulator.command import _banner, build_parser, config_from_args

QUERY = "api-version=2024-02-01&features=read"
AZURE_401 = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    }
}
LINES = ["Total 1,234,567.89", "Net 98,765.43 EUR"]


@pytest.fixture(scope="module")
def emu() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(zero_config(api_keys=frozenset({KEY}), vision_tps=100)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def page() -> tuple[bytes, dict[str, tuple[float, float, float, float]]]:
    return text_image(LINES, px=22)


@pytest.fixture
def fresh(emu: EmbeddedEmulator) -> EmbeddedEmulator:
    emu.reset()
    emu.clear_faults()
    return emu


async def analyze(
    session: aiohttp.ClientSession,
    base_url: str,
    data: bytes | None = None,
    *,
    query: str = QUERY,
    key: str | None = KEY,
    json_body: Any = None,
    content_type: str = "application/octet-stream",
) -> tuple[int, Mapping[str, str], Any]:
    headers = {} if key is None else {"Ocp-Apim-Subscription-Key": key}
    url = f"{base_url}/computervision/imageanalysis:analyze?{query}"
    if json_body is not None:
        request = session.post(url, json=json_body, headers=headers)
    else:
        body = io.BytesIO(data or b"")  # a stream: aiohttp warns about large raw byte bodies
        request = session.post(url, data=body, headers={**headers, "Content-Type": content_type})
    async with request as resp:
        return resp.status, resp.headers, await resp.json()


def words(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["text"]: w for block in body["readResult"]["blocks"] for line in block["lines"] for w in line["words"]}


async def test_read_finds_the_text_where_it_was_drawn(
    fresh: EmbeddedEmulator, session: aiohttp.ClientSession, page: Any
) -> None:
    image, boxes = page
    status, _, body = await analyze(session, fresh.url, image)
    assert status == 200, body
    assert body["modelVersion"] == "2023-10-01"
    assert body["metadata"] == {"width": 420, "height": 110}
    lines = [line for block in body["readResult"]["blocks"] for line in block["lines"]]
    assert [line["text"] for line in lines] == LINES
    for line in lines:
        assert len(line["boundingPolygon"]) == 4
        assert all(isinstance(p["x"], int) and isinstance(p["y"], int) for p in line["boundingPolygon"])
    found = words(body)
    for word in ("Total", "1,234,567.89", "98,765.43", "EUR"):
        assert inside(found[word]["boundingPolygon"], boxes[word]), (word, found[word], boxes[word])
        assert 0.5 < found[word]["confidence"] <= 1.0

    entry = fresh.requests()[-1]
    assert entry["route"] == "vision-read"
    assert (entry["status"], entry["auth"], entry["features"], entry["ocr_lines"]) == (
        200,
        "subscription-key",
        ["read"],
        2,
    )
    assert entry["images"][0]["width"] == 420 and entry["images"][0]["source"] == "octet-stream"
    vision = fresh.stats()["vision"]
    assert (vision["received"], vision["admitted"], vision["pages_ocr"], vision["lines_ocr"]) == (1, 1, 1, 2)


async def test_an_http_image_url_is_downloaded_and_read(
    fresh: EmbeddedEmulator, session: aiohttp.ClientSession, page: Any
) -> None:
    image, _ = page
    app = web.Application()

    async def scan(_request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    app.router.add_get("/scan.png", scan)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        status, _, body = await analyze(
            session, fresh.url, json_body={"url": f"http://127.0.0.1:{server.port}/scan.png"}
        )
    finally:
        await server.close()
    assert status == 200, body
    assert "1,234,567.89" in words(body)
    assert fresh.requests()[-1]["images"][0]["source"] == "url"


async def test_json_data_url_multipart_and_jpeg(fresh: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    jpeg, _ = text_image(["Amount 4,321.00"], fmt="JPEG")
    status, _, body = await analyze(session, fresh.url, json_body={"url": data_url(jpeg, "image/jpeg")})
    assert status == 200, body
    assert "4,321.00" in words(body)
    form = aiohttp.FormData()
    form.add_field("image", jpeg, filename="page.jpg", content_type="image/jpeg")
    url = f"{fresh.url}/computervision/imageanalysis:analyze?{QUERY}&language=en"
    async with session.post(url, data=form, headers={"Ocp-Apim-Subscription-Key": KEY}) as resp:
        assert resp.status == 200
        assert "4,321.00" in words(await resp.json())
    assert [e["images"][0]["source"] for e in fresh.requests()] == ["data", "multipart"]


async def test_blank_image_has_no_blocks(fresh: EmbeddedEmulator, session: aiohttp.ClientSession) -> None:
    buf = io.BytesIO()
    Image.new("L", (120, 80), 255).save(buf, "PNG")
    status, _, body = await analyze(session, fresh.url, buf.getvalue())
    assert status == 200
    assert body["readResult"] == {"blocks": []}


async def test_key_is_required(fresh: EmbeddedEmulator, session: aiohttp.ClientSession, page: Any) -> None:
    image, _ = page
    for key in (None, "wrong"):
        status, _, body = await analyze(session, fresh.url, image, key=key)
        assert (status, body) == (401, AZURE_401)
    # The chat route's api-key header is not the Vision key.
    url = f"{fresh.url}/computervision/imageanalysis:analyze?{QUERY}"
    async with session.post(url, data=image, headers={"api-key": KEY}) as resp:
        assert resp.status == 401
    assert fresh.stats()["vision"]["errors"] == {"401": 3}


@pytest.mark.parametrize(
    ("kwargs", "inner"),
    [
        ({"data": b""}, "InvalidImageSize"),
        ({"data": b"\0" * (20_971_520 + 1)}, "InvalidImageSize"),
        ({"data": b"this is not an image"}, "InvalidImageFormat"),
        ({"small": True}, "InvalidImageSize"),
        ({"query": "api-version=2024-02-01"}, "InvalidArgument"),
        ({"query": "api-version=2024-02-01&features=caption"}, "NotSupportedFeature"),
        ({"query": "api-version=2024-02-01&features=read,nonsense"}, "NotSupportedFeature"),
        ({"query": f"{QUERY}&language=xx"}, "NotSupportedLanguage"),
        ({"json_body": {"url": "http://127.0.0.1:9/page.png?sig=SAS-SECRET"}}, "InvalidImageUrl"),
        ({"json_body": {"url": "ftp://example.com/page.png"}}, "InvalidImageUrl"),
        ({"json_body": {"nourl": 1}}, "InvalidImageUrl"),
        ({"content_type": "text/plain"}, "InvalidContentType"),
    ],
)
async def test_bad_requests(
    fresh: EmbeddedEmulator, session: aiohttp.ClientSession, page: Any, kwargs: dict[str, Any], inner: str
) -> None:
    image, _ = page
    if kwargs.pop("small", False):
        buf = io.BytesIO()
        Image.new("L", (40, 400), 255).save(buf, "PNG")
        kwargs["data"] = buf.getvalue()
    kwargs.setdefault("data", image)
    status, _, body = await analyze(session, fresh.url, **kwargs)
    assert status == 400, body
    assert body["error"]["code"] == "InvalidRequest"
    assert body["error"]["innererror"]["code"] == inner
    assert body["error"]["message"]
    if "http://" in str(kwargs.get("json_body")):
        assert "Error while downloading http://127.0.0.1:9/page.png (" in body["error"]["message"]
        assert "SAS-SECRET" not in body["error"]["message"]  # a URL's query may hold a token
    assert fresh.stats()["vision"]["admitted"] == 0  # refused before the calls-per-second window


async def test_api_version_is_required(fresh: EmbeddedEmulator, session: aiohttp.ClientSession, page: Any) -> None:
    image, _ = page
    status, _, _ = await analyze(session, fresh.url, image, query="api-version=2023-10-01&features=Read")
    assert status == 200
    for query in ("features=read", "api-version=2021-01-01&features=read"):
        status, _, body = await analyze(session, fresh.url, image, query=query)
        assert (status, body) == (404, {"error": {"code": "404", "message": "Resource not found"}})


async def test_calls_per_second_limit(session: aiohttp.ClientSession, page: Any) -> None:
    image, _ = page
    with EmbeddedEmulator(zero_config(vision_tps=2)) as emu:
        replies = await asyncio.gather(*(analyze(session, emu.url, image) for _ in range(3)))
        stats = emu.stats()["vision"]
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200, 200, 429]
    _, headers, body = next(r for r in replies if r[0] == 429)
    assert headers["Retry-After"] == "1"
    assert body == {"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 1 seconds."}}
    assert (stats["tps"], stats["admitted"], stats["throttled"], stats["errors"]) == (2, 2, 1, {})


async def test_faults_apply_to_the_route(fresh: EmbeddedEmulator, session: aiohttp.ClientSession, page: Any) -> None:
    image, _ = page
    fresh.set_faults(
        [
            Fault("500", deployment="gpt-4o"),  # names a chat deployment: never the Vision route
            Fault("content-filter-prompt"),  # no content filter on Vision: skipped
            Fault("429", count=1, retry_after_s=3),
            Fault("503", count=1),
        ]
    )
    status, headers, body = await analyze(session, fresh.url, image)
    assert (status, headers["Retry-After"]) == (429, "3")
    assert body["error"]["message"] == "Rate limit is exceeded. Try again in 3 seconds."
    status, _, body = await analyze(session, fresh.url, image)
    assert (status, body["error"]["code"]) == (503, "ServiceUnavailable")
    status, _, body = await analyze(session, fresh.url, image)
    assert status == 200
    assert fresh.faults()["hits"] == [0, 0, 1, 1]
    stats = fresh.stats()
    assert stats["vision"]["faults"] == {"429": 1, "503": 1}
    assert stats["vision"]["errors"] == {"503": 1}
    assert stats["vision"]["throttled"] == 0  # an injected 429 is a fault, not a throttle
    assert stats["faults"] == {"429": 1, "503": 1}
    assert [e["fault"] for e in fresh.requests()] == ["429", "503", None]


async def test_separate_vision_keys(session: aiohttp.ClientSession, page: Any) -> None:
    image, _ = page
    config = zero_config(api_keys=frozenset({KEY}), vision_api_keys=frozenset({"vision-key"}))
    with EmbeddedEmulator(config) as emu:
        assert (await analyze(session, emu.url, image, key=KEY))[0] == 401
        assert (await analyze(session, emu.url, image, key="vision-key"))[0] == 200


def test_config_file_and_cli(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text(
        'vision_tps = 4\nocr_threads = 1\nvision_api_keys = ["v1"]\n[[deployments]]\nname = "gpt-4"\nmodel = "gpt-4"\n'
    )
    config = EmulatorConfig.from_toml(path)
    assert (config.vision_tps, config.ocr_threads, config.vision_keys) == (4, 1, frozenset({"v1"}))
    args = build_parser().parse_args(["--config", str(path), "--vision-tps", "7", "--vision-api-key", "v2"])
    merged = config_from_args(args, environ={"EMULATOR_VISION_API_KEYS": "v3"})
    assert (merged.vision_tps, merged.ocr_threads) == (7, 1)
    assert merged.vision_api_keys == frozenset({"v1", "v2", "v3"})
    default = config_from_args(build_parser().parse_args(["--api-key", "k"]), environ={})
    assert (default.vision_tps, default.ocr_threads, default.vision_api_keys) == (10, 2, None)
    assert default.vision_keys == frozenset({"k"})  # no Vision keys: the chat rule applies
    assert any("vision read: 10 calls/s" in line for line in _banner(default, "http://x"))
    with pytest.raises(ValueError, match="vision_tps must be >= 1"):
        EmulatorConfig.from_mapping({"deployments": [{"name": "a", "model": "gpt-4o"}], "vision_tps": 0})
    with pytest.raises(ValueError, match="unknown key"):
        EmulatorConfig.from_mapping({"deployments": [{"name": "a", "model": "gpt-4o"}], "vision_rps": 3})
