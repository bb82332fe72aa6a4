"""Per-model rules: the published worked examples, prefix matching, limits and defaults."""

from __future__ import annotations

import aiohttp
import pytest
from emulator_helpers import Caller, azure_path, chat_body, data_url, image_part, make_image, zero_config

from batch.emulator import Deployment, EmbeddedEmulator
from batch.emulator.models import rules_for


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4-vision-preview", "gpt-4-vision-preview"),
        ("gpt-4", "gpt-4-vision-preview"),
        ("o1", "o1"),
        ("o1-2024-12-17", "o1"),
        ("o3", "o3"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-5", "gpt-5"),
        ("gpt-5.1", "gpt-5"),
        ("gpt-5-mini", "gpt-5-mini"),
        ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
        ("llama-3-vision", "unknown"),
    ],
)
def test_prefix_matching(model: str, family: str) -> None:
    assert rules_for(model).family == family


@pytest.mark.parametrize(
    ("model", "width", "height", "detail", "tokens"),
    [
        ("gpt-4o", 1024, 1024, "high", 765),
        ("gpt-4o", 2048, 4096, "high", 1105),
        ("gpt-4o-mini", 2048, 4096, "high", 36835),
        ("gpt-4o", 4000, 3000, "low", 85),
        ("gpt-4o-mini", 4000, 3000, "low", 2833),
        ("gpt-4o", 1024, 1024, "auto", 765),  # auto billed as high
        ("gpt-4o", 512, 512, "high", 255),  # never upscaled
        ("gpt-4o", 100, 100, "high", 255),
        ("gpt-4.1", 1024, 1024, "high", 765),
        ("gpt-4-turbo-2024-04-09", 1024, 1024, "high", 765),
        ("o1", 1024, 1024, "high", 75 + 4 * 150),
        ("o3", 10, 10, "low", 75),
        ("gpt-5", 1024, 1024, "high", 70 + 4 * 140),
        ("gpt-4.1-mini", 1800, 2400, "high", 2353),  # ceil(1452 * 1.62)
        ("gpt-4.1-nano", 1800, 2400, "high", 3572),  # ceil(1452 * 2.46)
        ("gpt-4.1-mini", 1024, 1024, "high", 1659),  # ceil(1024 * 1.62)
        ("gpt-4.1-mini", 1024, 1024, "low", 1659),  # patch models ignore detail
        ("o4-mini", 1024, 1024, "high", 1762),  # ceil(1024 * 1.72)
        ("gpt-5-mini", 1000, 1000, "high", 1229),  # 32 x 32 patches -> ceil(1024 * 1.2)
        ("gpt-5-nano", 64, 64, "high", 6),  # 4 patches * 1.5
    ],
)
def test_image_token_formulas(model: str, width: int, height: int, detail: str, tokens: int) -> None:
    assert rules_for(model).image_tokens(width, height, detail) == tokens


def test_limits_and_defaults() -> None:
    assert rules_for("gpt-4-turbo-2024-04-09").max_images == 10
    assert rules_for("gpt-4-vision-preview").max_images == 10
    assert rules_for("gpt-4o").max_images == 50
    assert rules_for("gpt-4-turbo-2024-04-09").default_max_output == 16
    assert rules_for("gpt-4o").default_max_output == 4096
    assert rules_for("o1").rejects_max_tokens and rules_for("gpt-5.1").rejects_max_tokens
    assert not rules_for("gpt-4o").rejects_max_tokens


async def _image_tokens(caller: Caller, deployment: str, img: bytes, detail: str) -> int:
    """Image tokens as the server bills them: usage with the image minus usage without."""
    status, _, with_image = await caller.post(
        azure_path(deployment), chat_body(image_part(data_url(img), detail), max_completion_tokens=50)
    )
    assert status == 200, with_image
    _, _, without = await caller.post(azure_path(deployment), chat_body(max_completion_tokens=50))
    return int(with_image["usage"]["prompt_tokens"] - without["usage"]["prompt_tokens"])


async def test_worked_examples_over_http(session: aiohttp.ClientSession) -> None:
    config = zero_config(
        Deployment("gpt-4o", "gpt-4o-2024-08-06", tpm=10_000_000),
        Deployment("mini", "gpt-4o-mini-2024-07-18", tpm=10_000_000),
        Deployment("patch", "gpt-4.1-mini-2025-04-14", tpm=10_000_000),
    )
    square, tall, photo = make_image(1024, 1024), make_image(2048, 4096), make_image(1800, 2400, "JPEG")
    with EmbeddedEmulator(config) as emu:
        caller = Caller(session, emu.url)
        assert await _image_tokens(caller, "gpt-4o", square, "high") == 765
        assert await _image_tokens(caller, "gpt-4o", tall, "high") == 1105
        assert await _image_tokens(caller, "mini", tall, "high") == 36835
        assert await _image_tokens(caller, "gpt-4o", tall, "low") == 85
        assert await _image_tokens(caller, "patch", photo, "high") == 2353


async def test_o_series_rejects_max_tokens(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(Deployment("reasoner", "o3-2025-04-16"))) as emu:
        caller = Caller(session, emu.url)
        status, _, body = await caller.post(azure_path("reasoner"), chat_body(max_tokens=100))
        assert status == 400
        assert body["error"]["code"] == "unsupported_parameter"
        assert "max_completion_tokens" in body["error"]["message"]
        assert body["error"]["param"] == "max_tokens"
        status, _, body = await caller.post(azure_path("reasoner"), chat_body(max_completion_tokens=100))
        assert status == 200
        assert emu.requests()[-1]["max_tokens_field"] == "max_completion_tokens"
        assert emu.requests()[-1]["max_tokens"] == 100


async def test_turbo_defaults_to_16_output_tokens(session: aiohttp.ClientSession) -> None:
    with EmbeddedEmulator(zero_config(Deployment("turbo", "gpt-4-turbo-2024-04-09"))) as emu:
        status, _, body = await Caller(session, emu.url).post(azure_path("turbo"), chat_body())
    assert status == 200
    assert body["usage"]["completion_tokens"] == 16
    assert body["choices"][0]["finish_reason"] == "length"


async def test_too_many_images(session: aiohttp.ClientSession) -> None:
    config = zero_config(Deployment("turbo", "gpt-4-turbo-2024-04-09"), Deployment("gpt-4o", "gpt-4o"))
    part = image_part(data_url(make_image(8, 8)), "low")
    with EmbeddedEmulator(config) as emu:
        caller = Caller(session, emu.url)
        status, _, body = await caller.post(azure_path("turbo"), chat_body(*[part] * 11, max_tokens=10))
        assert status == 400
        assert body["error"]["message"] == "Exceeded maximum number of images (10) allowed in the request."
        status, _, _ = await caller.post(azure_path("turbo"), chat_body(*[part] * 10, max_tokens=10))
        assert status == 200
        # The gpt-4o limit (50) counts images across the whole message history.
        history = [{"role": "user", "content": [part] * 25}, {"role": "assistant", "content": "ok"}]
        body_in = {"messages": [*history, {"role": "user", "content": [part] * 26}], "max_tokens": 10}
        status, _, body = await caller.post(azure_path("gpt-4o"), body_in)
        assert status == 400
        assert body["error"]["message"] == "Exceeded maximum number of images (50) allowed in the request."
