"""Azure AI Vision Image Analysis 4.0 ``read`` (synchronous), paced and retried like chat calls.

One POST of the page's bytes (or of an http(s) URL the service downloads itself) per page, paced to
the resource's calls per second (429s honour ``retry-after``; 5xx, timeouts and resets back off with
jitter). The key travels only in the ``Ocp-Apim-Subscription-Key`` header and appears in no message.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from typing import Any

import aiohttp

from ..core import FatalApiError, PermanentApiError, RateLimitedError, RowError, TransientApiError
from ..ocr import azure_language
from .http import post_json
from .ratelimit.calls import CallPacer
from .retry import RetryPolicy, retry_delay, should_retry

__all__ = ["AzureRead", "read_result_text"]

# 429s are pacing, not a fault of the page: the same larger budget as chat calls.
MAX_THROTTLED = 50


class AzureRead:
    """Azure AI Vision ``imageanalysis:analyze?features=read``, paced and retried.

    :meth:`read` returns the page's text, lines in reading order. Raises
    :class:`~batch.errors.FatalApiError` (bad key, wrong endpoint, quota) for the run to stop,
    and :class:`~batch.errors.RowError` (``ocr_failed``) when the service refuses the page or
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
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = (
            f"{self.endpoint}/computervision/imageanalysis:analyze"
            f"?api-version={api_version}&features=read&language={azure_language(language)}"
        )
        self._session = session
        self._key = key
        self._pacer = CallPacer(per_second)
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 15.0))
        self._rng = rng or random.Random()
        self.calls = 0
        self.throttled = 0

    def __repr__(self) -> str:
        return f"AzureRead(endpoint={self.endpoint!r}, key=<redacted>)"

    async def read(self, image: bytes | str) -> str:
        """The text of ``image``: its bytes, or an http(s) URL the service downloads itself."""
        attempts = throttled = 0
        while True:
            await self._pacer.acquire()
            attempts += 1
            self.calls += 1
            try:
                return await self._once(image)
            except RateLimitedError as exc:
                throttled += 1
                self.throttled += 1
                self._pacer.on_throttle(exc.retry_after)
                if throttled >= MAX_THROTTLED:
                    raise RowError(
                        f"azure-read: gave up after {throttled} throttled calls", code="ocr_failed"
                    ) from None
            except TransientApiError as exc:
                if not should_retry(exc, attempts, self._policy):
                    raise RowError(
                        f"azure-read: gave up after {attempts} attempts; last: {exc}", code="ocr_failed"
                    ) from None
                await asyncio.sleep(retry_delay(exc, attempts, self._policy, self._rng))
            except FatalApiError:
                raise
            except PermanentApiError as exc:
                raise RowError(f"azure-read refused the page: {exc}", code="ocr_failed") from None

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
