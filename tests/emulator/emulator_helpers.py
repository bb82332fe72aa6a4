"""Helpers for the emulator tests: real Pillow images, real HTTP over loopback.

A uniquely named module (not ``helpers``) because test folders have no ``__init__.py``."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping
from typing import Any

import aiohttp
from PIL import Image, ImageDraw, ImageFont

from batch.emulator import Deployment, EmulatorConfig, LatencyModel

API_VERSION = "2024-10-21"
KEY = "test-key-123"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def make_image(width: int, height: int, fmt: str = "PNG", seed: int = 0) -> bytes:
    """A real image whose bytes differ per seed (so each row's sha256 is distinct)."""
    color = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)
    img = Image.new("RGB", (width, height), color)
    img.putpixel((0, 0), (seed % 256, 0, 0))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def text_image(
    lines: list[str], *, px: int = 24, size: tuple[int, int] = (420, 110), fmt: str = "PNG"
) -> tuple[bytes, dict[str, tuple[float, float, float, float]]]:
    """Black DejaVu Sans text on white, one line per 45 px from (20, 15); returns the image and
    the ink box (left, top, right, bottom) of every word as drawn."""
    font = ImageFont.truetype(FONT, px)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for i, line in enumerate(lines):
        x, y = 20.0, 15.0 + 45 * i
        draw.text((x, y), line, font=font, fill="black")
        for word in line.split(" "):
            boxes[word] = draw.textbbox((x, y), word, font=font)
            x += font.getlength(word + " ")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue(), boxes


def inside(polygon: list[dict[str, float]], box: tuple[float, float, float, float], slack: float = 4.0) -> bool:
    """True when all four corners of ``polygon`` lie within ``slack`` px of ``box``'s edges."""
    left, top, right, bottom = box
    xs = sorted(p["x"] for p in polygon)
    ys = sorted(p["y"] for p in polygon)
    return (
        len(polygon) == 4
        and abs(xs[0] - left) <= slack
        and abs(xs[-1] - right) <= slack
        and abs(ys[0] - top) <= slack
        and abs(ys[-1] - bottom) <= slack
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def image_part(url: str, detail: str | None = "high") -> dict[str, Any]:
    image_url: dict[str, Any] = {"url": url}
    if detail is not None:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def chat_body(*images: dict[str, Any], text: str = "Describe this image.", **extra: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}, *images]
    return {"messages": [{"role": "user", "content": content}], **extra}


def azure_path(deployment: str = "gpt-4o", api_version: str | None = API_VERSION) -> str:
    query = f"?api-version={api_version}" if api_version is not None else ""
    return f"/openai/deployments/{deployment}/chat/completions{query}"


def zero_config(*deployments: Deployment, **kwargs: Any) -> EmulatorConfig:
    if not deployments:
        deployments = (Deployment("gpt-4o", "gpt-4o-2024-08-06", tpm=10_000_000),)
    kwargs.setdefault("latency", LatencyModel.zero())
    return EmulatorConfig(list(deployments), **kwargs)


class Caller:
    """Posts to one emulator and returns (status, headers, json)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, *, key: str | None = KEY
    ) -> tuple[int, Mapping[str, str], Any]:
        sent = {"api-key": key} if key is not None and headers is None else dict(headers or {})
        async with self.session.post(self.base_url + path, json=body, headers=sent) as resp:
            return resp.status, resp.headers, await resp.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base_url + path) as resp:
            return resp.status, await resp.json()
