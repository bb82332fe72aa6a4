"""The legacy gpt-4 vision-preview enhancement route: real OCR of a rendered image, grounding
spans into the answer, object-form finish_details, and its 400s, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from emulator_helpers import KEY, Caller, chat_body, data_url, image_part, inside, text_image, zero_config

from batch.emulator import Deployment, EmbeddedEmulator, Fault
from batch.emulator.tokens import tokenizer

PREVIEW = "2023-12-01-preview"
ENHANCEMENTS = {"ocr": {"enabled": True}, "grounding": {"enabled": True}}
CV_SOURCE = {"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv.example", "key": "cv-key"}}
LINES = ["Total 1,234,567.89", "Invoice 42 due 2024"]
STOP = {"type": "stop", "stop": "<|fim_suffix|>"}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmbeddedEmulator]:
    config = zero_config(
        Deployment("gpt-4", "gpt-4", tpm=10_000_000),
        Deployment("vision", "gpt-4-vision-preview", tpm=10_000_000),
        Deployment("gpt-4o", "gpt-4o-2024-08-06", tpm=10_000_000),
        api_keys=frozenset({KEY}),
    )
    with EmbeddedEmulator(config) as emulator:
        yield emulator


@pytest.fixture
def caller(emu: EmbeddedEmulator, session: aiohttp.ClientSession) -> Caller:
    emu.reset()
    emu.clear_faults()
    return Caller(session, emu.url)


@pytest.fixture(scope="module")
def page() -> tuple[bytes, dict[str, tuple[float, float, float, float]]]:
    return text_image(LINES)


def path(deployment: str = "gpt-4", api_version: str = PREVIEW) -> str:
    return f"/openai/deployments/{deployment}/extensions/chat/completions?api-version={api_version}"


def enhanced_body(*images: bytes, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"max_tokens": 300, "enhancements": ENHANCEMENTS, "dataSources": [CV_SOURCE]}
    fields.update(extra)
    return chat_body(*(image_part(data_url(img)) for img in images), text="What is the total?", **fields)


def spans_point_into(content: str, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        assert line["spans"], line
        for span in line["spans"]:
            assert content[span["offset"] : span["offset"] + span["length"]] == span["text"]
            assert len(span["polygon"]) == 4
            assert all(isinstance(p["x"], float) and isinstance(p["y"], float) for p in span["polygon"])


async def test_ocr_and_grounding(caller: Caller, emu: EmbeddedEmulator, page: Any) -> None:
    image, boxes = page
    status, _, body = await caller.post(path(), enhanced_body(image))
    assert status == 200, body
    choice = body["choices"][0]
    content = choice["message"]["content"]
    assert "Text in the image:\nTotal 1,234,567.89\nInvoice 42 due 2024\n" in content
    assert choice["finish_details"] == STOP
    assert choice["finish_reason"] == STOP  # as in Azure's enhanced-output example
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    lines = choice["enhancements"]["grounding"]["lines"]
    assert [line["text"] for line in lines] == LINES
    spans_point_into(content, lines)
    spans = {span["text"]: span for line in lines for span in line["spans"]}
    for word in ("Total", "1,234,567.89", "42", "2024"):
        assert inside(spans[word]["polygon"], boxes[word]), (word, spans[word]["polygon"], boxes[word])

    entry = emu.requests()[-1]
    assert (entry["route"], entry["enhancements"], entry["ocr_lines"]) == ("azure-extensions", ["ocr", "grounding"], 2)
    stats = emu.stats()
    assert stats["deployments"]["gpt-4"]["enhanced_calls"] == 1
    assert stats["deployments"]["gpt-4"]["admitted"] == 1
    assert stats["ocr"]["loaded"] is True


async def test_max_tokens_cut_gives_max_tokens_details(caller: Caller, page: Any) -> None:
    image, _ = page
    _, _, full = await caller.post(path(), enhanced_body(image))
    full_content = full["choices"][0]["message"]["content"]
    # A cut before the OCR block leaves no grounding; one inside it keeps the words it holds.
    inside_block = len(tokenizer("cl100k_base").encode(full_content[: full_content.index("Invoice 42") + 10]))
    for max_tokens in (5, inside_block):
        status, _, body = await caller.post(path(), enhanced_body(image, max_tokens=max_tokens))
        assert status == 200, body
        choice = body["choices"][0]
        assert choice["finish_details"] == {"type": "max_tokens"}
        assert choice["finish_reason"] == {"type": "max_tokens"}
        assert body["usage"]["completion_tokens"] == max_tokens
        content = choice["message"]["content"]
        assert full_content.startswith(content) and len(content) < len(full_content)
        lines = choice["enhancements"]["grounding"]["lines"]
        spans_point_into(content, lines)
        if max_tokens == 5:
            assert lines == []
        else:
            assert content.endswith("Invoice 42")
            assert [[span["text"] for span in line["spans"]] for line in lines] == [
                ["Total", "1,234,567.89"],
                ["Invoice", "42"],
            ]


async def test_ocr_only_and_no_enhancements(caller: Caller, page: Any) -> None:
    image, _ = page
    ocr_only = enhanced_body(image, enhancements={"ocr": {"enabled": True}})
    status, _, body = await caller.post(path("vision"), ocr_only)
    assert status == 200, body
    choice = body["choices"][0]
    assert "1,234,567.89" in choice["message"]["content"]
    assert "enhancements" not in choice
    assert choice["finish_details"] == STOP
    plain = chat_body(image_part(data_url(image)), max_tokens=300)
    status, _, body = await caller.post(path(), plain)
    assert status == 200, body
    assert "Text in the image" not in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_details"] == STOP


async def test_other_models_are_refused(caller: Caller, page: Any) -> None:
    image, _ = page
    status, _, body = await caller.post(path("gpt-4o"), enhanced_body(image))
    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    assert body["error"]["message"].startswith("Enhancements are not supported for this model/API version")
    assert body["error"]["type"] == "invalid_request_error"
    # The api-version that removed enhancements refuses them too.
    status, _, body = await caller.post(path(api_version="2024-04-01-preview"), enhanced_body(image))
    assert status == 400
    assert body["error"]["message"].startswith("Enhancements are not supported for this model/API version")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataSources": None}, "Enhancements require a dataSources entry of type 'AzureComputerVision'"),
        ({"dataSources": []}, "Enhancements require a dataSources entry"),
        (
            {"dataSources": [{"type": "AzureComputerVision", "parameters": {"endpoint": "https://cv"}}]},
            "Missing required parameter: 'dataSources[0].parameters.key'",
        ),
        ({"dataSources": [{"type": "AzureCognitiveSearch", "parameters": {}}]}, "Unsupported data source type"),
        ({"enhancements": {"video": {"enabled": True}}}, "The video enhancement"),
        ({"enhancements": {"ocr": {"enabled": "yes"}}}, "Invalid type for 'enhancements.ocr.enabled'"),
    ],
)
async def test_bad_enhancement_fields(caller: Caller, page: Any, change: dict[str, Any], message: str) -> None:
    image, _ = page
    body_in = enhanced_body(image, **change)
    if body_in.get("dataSources") is None:
        del body_in["dataSources"]
    status, _, body = await caller.post(path(), body_in)
    assert status == 400, body
    assert body["error"]["message"].startswith(message), body


async def test_two_images_are_refused(caller: Caller, emu: EmbeddedEmulator, page: Any) -> None:
    image, _ = page
    other, _ = text_image(["Other 7"])
    status, _, body = await caller.post(path(), enhanced_body(image, other))
    assert status == 400
    assert body["error"]["message"].startswith("Enhancements can't be applied to more than one image")
    assert emu.stats()["deployments"]["gpt-4"]["admitted"] == 0  # refused before admission


async def test_faults_reach_the_route(caller: Caller, emu: EmbeddedEmulator, page: Any) -> None:
    image, _ = page
    emu.set_faults([Fault("500", count=1), Fault("content-filter-completion", count=1)])
    status, _, body = await caller.post(path(), enhanced_body(image))
    assert status == 500
    status, _, body = await caller.post(path(), enhanced_body(image))
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert "finish_details" not in choice and "enhancements" not in choice
