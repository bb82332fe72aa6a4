"""Auth, routing and validation errors, in the service's shapes; images by data and http URL."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from emulator_helpers import (
    KEY,
    Caller,
    azure_path,
    chat_body,
    data_url,
    image_part,
    make_image,
    sha16,
    zero_config,
)
from PIL import Image

from batch.emulator import EmbeddedEmulator

AZURE_401 = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
    "key for an active subscription and use a correct regional API endpoint for your resource."
)
NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment within the "
    "last 5 minutes, please wait a moment and try again."
)


def assert_error(body: Any, code: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert KEY not in str(body)
    return error


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"api-key": ""},
        {"api-key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
    ],
)
async def test_401_azure_body(caller: Caller, headers: dict[str, str]) -> None:
    status, _, body = await caller.post(azure_path(), chat_body(max_tokens=5), headers=headers)
    assert status == 401
    assert body == {"error": {"code": "401", "message": AZURE_401}}


async def test_any_non_empty_key_without_key_list(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config()) as emu:
        caller = Caller(session, emu.url)
        assert (await caller.post(azure_path(), chat_body(max_tokens=5), key="anything"))[0] == 200
        assert (await caller.post(azure_path(), chat_body(max_tokens=5), headers={"api-key": ""}))[0] == 401


async def test_deployment_not_found(caller: Caller) -> None:
    status, _, body = await caller.post(azure_path("gpt4o-typo"), chat_body(max_tokens=5))
    assert status == 404
    assert body == {"error": {"code": "DeploymentNotFound", "message": NOT_FOUND_MESSAGE}}
    status, _, body = await caller.post("/openai/v1/chat/completions", chat_body(model="nope", max_tokens=5))
    assert status == 404
    assert_error(body, "DeploymentNotFound")
    status, _, body = await caller.post(
        "/v1/chat/completions", chat_body(model="nope"), headers={"Authorization": f"Bearer {KEY}"}
    )
    assert status == 404
    assert_error(body, "DeploymentNotFound")


async def test_v1_route_needs_model(caller: Caller) -> None:
    status, _, body = await caller.post("/openai/v1/chat/completions", chat_body(max_tokens=5))
    assert status == 400
    assert assert_error(body, "missing_required_parameter")["param"] == "model"


async def test_bad_detail_names_the_value(caller: Caller) -> None:
    part = image_part(data_url(make_image(8, 8)), "medium")
    status, _, body = await caller.post(azure_path(), chat_body(part, max_tokens=5))
    assert status == 400
    error = assert_error(body, "invalid_value")
    assert "'medium'" in error["message"]
    assert error["param"] == "messages[0].content[1].image_url.detail"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,!!!not-base64!!!", "invalid_image"),
        ("data:image/png;base64," + base64.b64encode(b"not an image at all").decode(), "invalid_image"),
        ("data:image/png," + "abc", "invalid_image"),
        ("ftp://example.invalid/x.png", "invalid_image_url"),
    ],
)
async def test_bad_image_data(caller: Caller, url: str, code: str) -> None:
    status, _, body = await caller.post(azure_path(), chat_body(image_part(url), max_tokens=5))
    assert status == 400
    error = assert_error(body, code)
    if code == "invalid_image":
        assert error["message"].startswith("Invalid image data")


async def test_truncated_png_is_invalid(caller: Caller) -> None:
    png = make_image(300, 300, seed=4)
    status, _, body = await caller.post(azure_path(), chat_body(image_part(data_url(png[:-30])), max_tokens=5))
    assert status == 400
    assert_error(body, "invalid_image")


async def test_unsupported_formats(caller: Caller) -> None:
    bmp = make_image(16, 16, fmt="BMP")
    status, _, body = await caller.post(azure_path(), chat_body(image_part(data_url(bmp)), max_tokens=5))
    assert status == 400
    assert "BMP" in assert_error(body, "invalid_image_format")["message"]

    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    status, _, body = await caller.post(
        azure_path(), chat_body(image_part(data_url(buf.getvalue(), "image/gif")), max_tokens=5)
    )
    assert status == 400
    assert "animated GIF" in assert_error(body, "invalid_image_format")["message"]


async def test_image_over_20_mb(caller: Caller) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (20 * 1024 * 1024 + 10)
    payload = json.dumps(chat_body(image_part(data_url(big)), max_tokens=5)).encode()
    headers = {"api-key": KEY, "Content-Type": "application/json"}
    # A file-like body: aiohttp warns about (and tests turn into errors) big raw-bytes bodies.
    async with caller.session.post(caller.base_url + azure_path(), data=io.BytesIO(payload), headers=headers) as r:
        assert r.status == 400
        assert_error(await r.json(), "image_too_large")


@pytest.mark.parametrize(
    ("body_in", "code"),
    [
        ({}, "missing_required_parameter"),
        ({"messages": []}, "invalid_type"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "invalid_value"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "invalid_value"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "invalid_value"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}, "invalid_value"),
        (
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 5},
            "invalid_request_error",
        ),
        (
            {"messages": [{"role": "system", "content": [image_part("https://example.invalid/a.png")]}]},
            "invalid_value",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "unsupported_value"),
        ([1, 2, 3], "invalid_type"),
    ],
)
async def test_body_validation(caller: Caller, body_in: Any, code: str) -> None:
    status, _, body = await caller.post(azure_path(), body_in)
    assert status == 400
    assert_error(body, code)


async def test_invalid_json(caller: Caller) -> None:
    async with caller.session.post(caller.base_url + azure_path(), data=b"{not json", headers={"api-key": KEY}) as resp:
        assert resp.status == 400
        assert_error(await resp.json(), "invalid_json")


async def test_wrong_method_is_json(caller: Caller) -> None:
    status, body = await caller.get(azure_path())
    assert status == 405
    assert_error(body, "405")


# -- images by http(s) URL, served from a loopback server ---------------------------------


@pytest.fixture
async def image_server() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    images = {f"{i}.png": make_image(40 + i, 30, seed=100 + i) for i in range(3)}

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in images:
            raise web.HTTPNotFound()
        return web.Response(body=images[name], content_type="image/png")

    app = web.Application()
    app.router.add_get("/img/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/img/")), images
    finally:
        await server.close()


async def test_http_image_urls_are_fetched(
    caller: Caller, emulator: EmbeddedEmulator, image_server: tuple[str, dict[str, bytes]]
) -> None:
    base, images = image_server
    parts = [image_part(base + name, "low") for name in images]
    status, _, body = await caller.post(azure_path(), chat_body(*parts, max_tokens=200))
    assert status == 200, body
    content = body["choices"][0]["message"]["content"]
    for k, (name, data) in enumerate(images.items(), start=1):
        assert f"image {k}: {40 + int(name[0])}x30 PNG sha256:{sha16(data)} detail=low." in content
    logged = emulator.requests()[-1]["images"]
    assert [im["source"] for im in logged] == ["url"] * 3
    assert [im["sha256"][:16] for im in logged] == [sha16(d) for d in images.values()]


async def test_http_image_fetch_failures(caller: Caller, image_server: tuple[str, dict[str, bytes]]) -> None:
    base, _ = image_server
    status, _, body = await caller.post(azure_path(), chat_body(image_part(base + "missing.png"), max_tokens=5))
    assert status == 400
    assert "HTTP 404" in assert_error(body, "invalid_image_url")["message"]
    # Nothing listens on port 9 of loopback: connection refused.
    status, _, body = await caller.post(
        azure_path(), chat_body(image_part("http://127.0.0.1:9/x.png?sig=secret"), max_tokens=5)
    )
    assert status == 400
    assert "secret" not in assert_error(body, "invalid_image_url")["message"]
