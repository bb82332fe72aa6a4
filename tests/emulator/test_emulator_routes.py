"""The three chat routes answer like Azure: shape, usage, image-dependent answers, ids."""

from __future__ import annotations

import uuid

import aiohttp
from emulator_helpers import (
    API_VERSION,
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

from batch.emulator import EmbeddedEmulator


def assert_completion_shape(body: dict[str, object], model: str) -> None:
    assert isinstance(body["id"], str) and body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == model
    assert isinstance(body["system_fingerprint"], str)
    choices = body["choices"]
    assert isinstance(choices, list) and len(choices) == 1
    choice = choices[0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    assert choice["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    prompt_filters = body["prompt_filter_results"]
    assert isinstance(prompt_filters, list)
    assert prompt_filters[0]["prompt_index"] == 0
    usage = body["usage"]
    assert isinstance(usage, dict)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


async def test_azure_classic_route(caller: Caller) -> None:
    img = make_image(640, 480, seed=1)
    status, headers, body = await caller.post(azure_path(), chat_body(image_part(data_url(img)), max_tokens=300))
    assert status == 200, body
    assert_completion_shape(body, "gpt-4o-2024-08-06")
    content = body["choices"][0]["message"]["content"]
    assert content.startswith(f"image 1: 640x480 PNG sha256:{sha16(img)} detail=high.")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 60  # the default answer_tokens
    uuid.UUID(headers["x-request-id"])
    assert headers["apim-request-id"] == headers["x-request-id"]


async def test_azure_v1_route_takes_deployment_from_model(caller: Caller) -> None:
    img = make_image(100, 50, fmt="JPEG", seed=2)
    body_in = chat_body(image_part(data_url(img, "image/jpeg"), "low"), model="gpt-4o", max_tokens=100)
    status, _, body = await caller.post("/openai/v1/chat/completions", body_in)
    assert status == 200, body
    assert_completion_shape(body, "gpt-4o-2024-08-06")
    assert f"100x50 JPEG sha256:{sha16(img)} detail=low." in body["choices"][0]["message"]["content"]


async def test_openai_route_needs_bearer(caller: Caller) -> None:
    img = make_image(64, 64, fmt="WEBP", seed=3)
    body_in = chat_body(image_part(data_url(img, "image/webp"), "auto"), model="gpt-4o", max_tokens=100)
    status, _, body = await caller.post("/v1/chat/completions", body_in, headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200, body
    assert_completion_shape(body, "gpt-4o-2024-08-06")
    assert f"64x64 WEBP sha256:{sha16(img)} detail=auto." in body["choices"][0]["message"]["content"]
    # The api-key header is Azure's; the OpenAI-style route ignores it.
    status, _, body = await caller.post("/v1/chat/completions", body_in, headers={"api-key": KEY})
    assert status == 401


async def test_bearer_also_accepted_on_azure_routes(caller: Caller) -> None:
    status, _, _ = await caller.post(azure_path(), chat_body(max_tokens=10), headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200


async def test_each_row_gets_its_own_image_answer(caller: Caller) -> None:
    images = [make_image(32 + i, 40, seed=i) for i in range(6)]
    for img in images:
        status, _, body = await caller.post(azure_path(), chat_body(image_part(data_url(img)), max_tokens=50))
        assert status == 200
        content = body["choices"][0]["message"]["content"]
        assert f"{32 + images.index(img)}x40 PNG sha256:{sha16(img)}" in content
        others = [sha16(o) for o in images if o is not img]
        assert not any(o in content for o in others)


async def test_several_images_in_order(caller: Caller) -> None:
    a, b = make_image(10, 20, seed=7), make_image(30, 40, fmt="GIF", seed=8)
    status, _, body = await caller.post(
        azure_path(),
        chat_body(image_part(data_url(a), "low"), image_part(data_url(b, "image/gif"), None), max_tokens=500),
    )
    assert status == 200, body
    content = body["choices"][0]["message"]["content"]
    first = f"image 1: 10x20 PNG sha256:{sha16(a)} detail=low."
    second = f"image 2: 30x40 GIF sha256:{sha16(b)} detail=auto."
    assert content.startswith(f"{first} {second}")


async def test_answers_are_deterministic(caller: Caller) -> None:
    img = make_image(50, 50, seed=11)
    replies = [await caller.post(azure_path(), chat_body(image_part(data_url(img)), max_tokens=100)) for _ in range(2)]
    assert replies[0][2]["choices"][0]["message"]["content"] == replies[1][2]["choices"][0]["message"]["content"]
    assert replies[0][2]["id"] != replies[1][2]["id"]


async def test_text_only_request_gets_an_answer(caller: Caller) -> None:
    body_in = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]}
    status, _, body = await caller.post(azure_path(), body_in)
    assert status == 200
    assert len(body["choices"][0]["message"]["content"].split()) > 10
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_prompt_tokens_count_text_and_messages(caller: Caller) -> None:
    """o200k_base for gpt-4o: 3 per message + role ("user": 1) + content, 3 to prime the reply."""
    messages: list[dict[str, str]] = [{"role": "user", "content": "Hello, world!"}]
    body_in = {"messages": messages, "max_tokens": 100}
    status, _, body = await caller.post(azure_path(), body_in)
    assert status == 200
    assert body["usage"]["prompt_tokens"] == 3 + 1 + 4 + 3  # Hello , world !
    messages.append({"role": "user", "content": "again"})
    _, _, body2 = await caller.post(azure_path(), body_in)
    assert body2["usage"]["prompt_tokens"] == 11 + 3 + 1 + 1


async def test_max_tokens_truncates_with_length(caller: Caller) -> None:
    img = make_image(80, 60, seed=5)
    _, _, full = await caller.post(azure_path(), chat_body(image_part(data_url(img)), max_tokens=1000))
    status, _, cut = await caller.post(azure_path(), chat_body(image_part(data_url(img)), max_tokens=12))
    assert status == 200
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 12
    text = cut["choices"][0]["message"]["content"]
    # o200k_base: "image", " ", "1", ":", " ", "80", "x", "60", " PNG", " sha", "256", ":"
    assert text == "image 1: 80x60 PNG sha256:"
    assert full["choices"][0]["message"]["content"].startswith(text)
    assert full["choices"][0]["finish_reason"] == "stop"
    # max_completion_tokens truncates the same way.
    _, _, cut2 = await caller.post(azure_path(), chat_body(image_part(data_url(img)), max_completion_tokens=12))
    assert cut2["choices"][0]["message"]["content"] == text
    assert cut2["choices"][0]["finish_reason"] == "length"


async def test_answer_length_follows_answer_tokens(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(answer_tokens=25)) as emu:
        status, _, body = await Caller(session, emu.url).post(azure_path(), chat_body(max_tokens=100))
    assert status == 200
    assert body["usage"]["completion_tokens"] == 25


async def test_healthz_and_unknown_path(caller: Caller) -> None:
    assert await caller.get("/healthz") == (200, {"status": "ok"})
    status, body = await caller.get("/openai/nothing/here")
    assert status == 404
    assert body == {"error": {"code": "404", "message": "Resource not found"}}


async def test_missing_api_version_is_resource_not_found(caller: Caller) -> None:
    status, headers, body = await caller.post(azure_path(api_version=None), chat_body(max_tokens=10))
    assert status == 404
    assert body == {"error": {"code": "404", "message": "Resource not found"}}
    assert "x-request-id" in headers


async def test_api_version_recorded(caller: Caller, emulator: EmbeddedEmulator) -> None:
    await caller.post(azure_path(), chat_body(max_tokens=10))
    assert emulator.requests()[-1]["api_version"] == API_VERSION
