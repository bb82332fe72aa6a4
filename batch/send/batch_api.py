"""The Files and Batch API calls of the batch route, on the three URL styles.

* ``azure``:    ``{url}/openai/files?api-version=V``, ``{url}/openai/batches?api-version=V``;
  lines POST ``/chat/completions``
* ``azure-v1``: ``{url}/openai/v1/files``, ``{url}/openai/v1/batches``; lines POST ``/chat/completions``
* ``openai``:   ``{url}/files``, ``{url}/batches`` (the URL ends in ``/v1``); lines POST ``/v1/chat/completions``

Every call goes through the one retry loop (:class:`~batch.send.Attempts`, paced by a
:class:`~batch.send.ratelimit.calls.CallPacer`), so a 429 or a 5xx on a control call waits and
retries like a chat call; what is left is raised as the classified
:class:`~batch.core.ApiError`. Messages name the service, never a key.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from ..core import ApiError, RowError, TransientApiError
from .attempts import Attempts, Failed
from .auth import Credential
from .http import Target, _error_fields
from .pacing import CallPacing
from .ratelimit.calls import CallPacer
from .retry import RetryPolicy
from .status import make_api_error

__all__ = ["BatchApi", "batch_line_url"]

#: Uploaded input files expire after 14 days (the shortest Azure allows), in case a job is abandoned.
UPLOAD_EXPIRES_S = 14 * 24 * 3600
#: Control calls per second: a status poll per shard must not crowd out the service.
_CALLS_PER_SECOND = 20.0


def batch_line_url(kind: str) -> str:
    """The ``url`` of every request line, which is also the batch's ``endpoint``."""
    return "/v1/chat/completions" if kind == "openai" else "/chat/completions"


class BatchApi:
    """Upload, create, poll, download, cancel and delete, for one endpoint."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        credential: Credential,
        *,
        timeout_s: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self.target = target
        self._credential = credential
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 15.0))
        self._attempts = Attempts(RetryPolicy(max_attempts=6), rng=rng, not_found_retry_s=None)
        self._pacing = CallPacing(CallPacer(_CALLS_PER_SECOND))
        self.where = f"the Batch API of {target.kind} endpoint {target.base_url}"

    def _url(self, path: str, **query: str) -> str:
        kind, base = self.target.kind, self.target.base_url
        if kind == "azure":
            query = {"api-version": self.target.api_version, **query}
            base = f"{base}/openai"
        elif kind == "azure-v1" and not base.endswith("/openai/v1"):
            base = f"{base}/openai/v1"
        text = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{base}/{path}" + (f"?{text}" if text else "")

    async def upload(self, filename: str, data: bytes) -> dict[str, Any]:
        def form() -> aiohttp.FormData:
            f = aiohttp.FormData()
            f.add_field("purpose", "batch")
            if self.target.kind != "azure":  # the v1 and OpenAI APIs take it: the file cap becomes 10,000
                f.add_field("expires_after[anchor]", "created_at")
                f.add_field("expires_after[seconds]", str(UPLOAD_EXPIRES_S))
            f.add_field("file", data, filename=filename, content_type="application/jsonl")
            return f

        return await self._json("POST", self._url("files"), form=form)

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        body = {
            "input_file_id": input_file_id,
            "endpoint": batch_line_url(self.target.kind),
            "completion_window": "24h",
            "metadata": metadata,
        }
        return await self._json("POST", self._url("batches"), body=body)

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return await self._json("GET", self._url(f"batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return await self._json("POST", self._url(f"batches/{batch_id}/cancel"))

    async def list_batches(self, after: str | None = None) -> dict[str, Any]:
        query = {"limit": "100", **({"after": after} if after else {})}
        return await self._json("GET", self._url("batches", **query))

    async def list_files(self) -> dict[str, Any]:
        return await self._json("GET", self._url("files"))

    async def delete(self, file_id: str) -> None:
        await self._json("DELETE", self._url(f"files/{file_id}"))

    async def content(self, file_id: str) -> bytes:
        data: bytes = await self._retried(lambda: self._once("GET", self._url(f"files/{file_id}/content"), raw=True))
        return data

    async def _json(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any]:
        doc = await self._retried(lambda: self._once(method, url, body=body, form=form))
        if not isinstance(doc, dict):
            raise TransientApiError(f"{self.where} answered with something other than a JSON object", code="malformed")
        return doc

    async def _retried(self, call: Callable[[], Awaitable[Any]]) -> Any:
        result = await self._attempts.run(call, self._pacing)
        if isinstance(result, Failed):
            error = result.error
            if isinstance(error, ApiError | RowError):
                raise error
            raise TransientApiError(f"{self.where} did not answer", code="stopped")
        return result.reply

    async def _once(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        raw: bool = False,
    ) -> Any:
        headers = await self._credential.headers()
        try:
            async with self._session.request(
                method, url, json=body, data=form() if form else None, headers=headers, timeout=self._timeout
            ) as resp:
                data = await resp.read()
                status, rh = resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except TimeoutError:
            raise TransientApiError(f"timed out waiting for {self.where}", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise TransientApiError(f"{self.where} failed: {type(exc).__name__}", code="connect_error") from None
        if status == 200:
            if raw:
                return data
            try:
                return json.loads(data)
            except ValueError:
                raise TransientApiError(f"malformed JSON from {self.where}", code="malformed_response") from None
        code, message = _error_fields(data.decode("utf-8", "replace"))
        full = f"HTTP {status} from {self.where}: {message}" if message else f"HTTP {status} from {self.where}"
        raise make_api_error(status, code, full, rh, request_id=rh.get("x-request-id") or rh.get("apim-request-id"))
