"""The reference peer: the batch client most users write, for the utilisation suite to measure beside ours.

The official ``openai`` SDK (``AsyncAzureOpenAI``), one task per row, an ``asyncio.Semaphore(N)``
around each call, and the SDK's own retries (``max_retries=2`` by default; it honours
``retry-after-ms`` / ``retry-after``). No rate limiter: the 429s are its pacing. Each row reads its
image file and sends it as a base64 data URL with the row's detail, the same prompt and the same
``max_tokens`` as our job, so the emulator charges both clients the same per request.

Needs the ``bench`` extra: ``.venv/bin/pip install -e '.[bench]'``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from pathlib import Path

_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif"}


@dataclass(slots=True)
class PeerResult:
    ok: int = 0
    failed_429: int = 0  # rows that ran out of the SDK's retries on 429s
    failed_other: int = 0
    unfinished: int = 0  # rows still queued or in flight when time was up
    errors: dict[str, int] = field(default_factory=dict)


async def run_peer(
    *,
    url: str,
    api_key: str,
    deployment: str,
    rows: list[tuple[str, str]],
    prompt: str,
    max_tokens: int,
    concurrency: int,
    seconds: float,
    api_version: str = "2024-10-21",
) -> PeerResult:
    """Send ``rows`` (image path, detail) the naive way for at most ``seconds``."""
    import openai  # the bench extra; imported here so the rest of the suite runs without it

    client = openai.AsyncAzureOpenAI(azure_endpoint=url, api_key=api_key, api_version=api_version)
    sem = asyncio.Semaphore(concurrency)
    result = PeerResult()

    async def one(path: str, detail: str) -> None:
        async with sem:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            mime = _MIME.get(Path(path).suffix.lower(), "image/jpeg")
            try:
                await client.chat.completions.create(
                    model=deployment,
                    messages=[
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": prompt},
                                {
                                    "type": "image_url",
                                    "image_url": {"url": f"data:{mime};base64,{data}", "detail": detail},
                                },
                            ],
                        }
                    ],
                    max_tokens=max_tokens,
                )
            except openai.RateLimitError:
                result.failed_429 += 1
            except openai.APIError as exc:
                result.failed_other += 1
                name = type(exc).__name__
                result.errors[name] = result.errors.get(name, 0) + 1
            else:
                result.ok += 1

    deadline = time.monotonic() + seconds
    tasks = [asyncio.ensure_future(one(p, d)) for p, d in rows]
    try:
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        pending = [t for t in tasks if not t.done()]
        result.unfinished = len(pending)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await client.close()
    return result
