"""Azure AI Vision Image Analysis 4.0 ``read`` (synchronous), paced and retried like chat calls.

One POST of the page's bytes (or of an http(s) URL the service downloads itself) per page, paced to
the resource's calls per second and retried by the same loop as chat calls (:mod:`.attempts`: 429s
honour ``retry-after`` within the one 429 budget; 5xx, timeouts and resets back off with jitter).
The key travels only in the ``Ocp-Apim-Subscription-Key`` header and appears in no message.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import aiohttp

from ..core import FatalApiError, RateLimitedError, RowError, TransientApiError
from ..ocr import azure_language
from .attempts import Attempts, Delivered, Failed
from .http import post_json
from .pacing import CallPacing
from .ratelimit.calls import CallPacer
from .retry import RetryPolicy

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

__all__ = ["AzureRead", "read_result_text"]


class AzureRead:
    """Azure AI Vision ``imageanalysis:analyze?features=read``, paced and retried.

    :meth:`read` returns the page's text, lines in reading order. Raises
    :class:`~batch.core.errors.FatalApiError` (bad key, wrong endpoint, quota) for the run to stop,
    and :class:`~batch.core.errors.RowError` (``ocr_failed``) when the service refuses the page or
    keeps failing.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        key: str,
        *,
        api_version: str,
        language: str,
        per_second: float,
        policy: RetryPolicy,
        timeout_s: float = 60.0,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = (
            f"{self.endpoint}/computervision/imageanalysis:analyze"
            f"?api-version={api_version}&features=read&language={azure_language(language)}"
        )
        self._session = session
        self._key = key
        self._pacing = CallPacing(CallPacer(per_second, clock=clock, sleep=sleep))
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 15.0))
        # A 404 here is a wrong endpoint or model, not a deployment still being created: no retry.
        self._attempts = Attempts(
            policy, watch=self, rng=rng or random.Random(), clock=clock, sleep=sleep, not_found_retry_s=None
        )
        self.calls = 0
        self.throttled = 0

    def __repr__(self) -> str:
        return f"AzureRead(endpoint={self.endpoint!r}, key=<redacted>)"

    async def read(self, image: bytes | str) -> str:
        """The text of ``image``: its bytes, or an http(s) URL the service downloads itself."""
        result: Delivered[str] | Failed = await self._attempts.run(partial(self._once, image), self._pacing)
        if isinstance(result, Delivered):
            return result.reply
        exc = result.error
        if result.kind == "fatal":
            assert isinstance(exc, FatalApiError)
            raise exc
        if result.kind == "exhausted" and isinstance(exc, RateLimitedError):
            raise RowError(f"azure-read: gave up after {result.throttled} throttled calls", code="ocr_failed")
        if result.kind == "exhausted":
            raise RowError(f"azure-read: gave up after {result.attempts} attempts; last: {exc}", code="ocr_failed")
        raise RowError(f"azure-read refused the page: {exc}", code="ocr_failed")

    # Attempts' Watch: a read has no run of its own to stop; it counts calls and 429s.
    def stopping(self) -> bool:
        return False

    def on_attempt(self) -> None:
        self.calls += 1

    def on_throttled(self) -> None:
        self.throttled += 1

    def on_transient(self, error: TransientApiError) -> None:
        pass

    async def _once(self, image: bytes | str) -> str:
        if isinstance(image, str):  # {"url": ...}: the image is never downloaded here
            body, content_type = json.dumps({"url": image}).encode(), "application/json"
        else:
            body, content_type = image, "application/octet-stream"
        headers = {"Content-Type": content_type, "Ocp-Apim-Subscription-Key": self._key}
        where = f"Azure AI Vision read at {self.endpoint}"
        doc, _headers = await post_json(self._session, self.url, body, headers, timeout=self._timeout, where=where)
        return read_result_text(doc)


def read_result_text(doc: Mapping[str, Any]) -> str:
    """The lines of a read result, block by block, one per line."""
    lines: list[str] = []
    result = doc.get("readResult")
    blocks = result.get("blocks") if isinstance(result, Mapping) else None
    for block in blocks or []:
        for line in block.get("lines") or [] if isinstance(block, Mapping) else []:
            if isinstance(line, Mapping) and isinstance(line.get("text"), str):
                lines.append(line["text"])
    return "\n".join(lines)
