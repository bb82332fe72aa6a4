"""One HTTP attempt against a chat-completions endpoint, and nothing more.

This is the only module that talks aiohttp. It builds the URL and auth headers (``auth.py``) for
the three endpoint kinds, sends one request through an injected ``aiohttp.ClientSession``,
translates every transport failure and error status into the classes of ``core.errors``
(classification lives in ``status.py``), and hands a 200 to ``replies.py`` to parse. Retrying and
pacing are the caller's business. Messages name the endpoint and deployment, never headers or keys.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..core import EndpointSpec, FatalApiError, SpecError, TransientApiError
from .auth import Credential
from .replies import Reply, parse_completion
from .status import make_api_error

_MAX_MESSAGE = 600
_STREAM_ABOVE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: the URL and what the body must say about the deployment."""

    kind: str
    base_url: str
    deployment: str
    api_version: str

    @classmethod
    def from_spec(cls, ep: EndpointSpec) -> Target:
        if ep.url is None:
            raise SpecError("[endpoint].url is not set (and no embedded emulator was started)")
        return cls(ep.kind, ep.url.rstrip("/"), ep.deployment, ep.api_version)

    @property
    def chat_url(self) -> str:
        if self.kind == "azure":
            return (
                f"{self.base_url}/openai/deployments/{self.deployment}/chat/completions?api-version={self.api_version}"
            )
        if self.kind == "azure-v1":
            base = self.base_url
            if not base.endswith("/openai/v1"):
                base = f"{base}/openai/v1"
            return f"{base}/chat/completions"
        return f"{self.base_url}/chat/completions"

    def extensions_url(self, api_version: str) -> str:
        """The legacy Vision-enhancement route (classic Azure only; gpt-4 vision-preview)."""
        return (
            f"{self.base_url}/openai/deployments/{self.deployment}/extensions/chat/completions"
            f"?api-version={api_version}"
        )

    @property
    def model_in_body(self) -> str | None:
        """azure-v1 and openai name the deployment/model in the body; classic Azure in the path."""
        return None if self.kind == "azure" else self.deployment

    def describe(self) -> str:
        what = "model" if self.kind == "openai" else "deployment"
        return f"{self.kind} {what} {self.deployment!r} at {self.base_url}"


def _error_fields(text: str) -> tuple[str | None, str]:
    try:
        doc = json.loads(text)
    except ValueError:
        return None, text.strip()[:_MAX_MESSAGE]
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        code = err.get("code")
        msg = str(err.get("message") or "")
        return (str(code) if code is not None else None), msg[:_MAX_MESSAGE]
    return None, text.strip()[:_MAX_MESSAGE]


class ChatClient:
    """Send one chat-completions request and return its parsed reply or raise an ApiError."""

    def __init__(
        self, session: aiohttp.ClientSession, target: Target, credential: Credential, timeout_s: float
    ) -> None:
        self._session = session
        self.target = target
        self._credential = credential
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 15.0))

    async def send(self, body: bytes, *, url: str | None = None) -> Reply:
        """POST one chat body (to ``url`` when given: the extensions route) and parse the reply."""
        where = self.target.describe()
        headers = {"Content-Type": "application/json", **(await self._credential.headers())}
        doc, rh = await post_json(
            self._session, url or self.target.chat_url, body, headers, timeout=self._timeout, where=where
        )
        return Reply(parse_completion(doc, rh), rh)


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: aiohttp.ClientTimeout,
    where: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """One POST whose 200 reply is a JSON object: (object, lower-cased headers), else an ApiError.

    Every transport failure and error status is mapped here, for chat and Vision calls alike;
    ``where`` names the service in messages (never a header or key).
    """
    try:
        # Large bodies (multi-MB scans) are streamed in chunks so the loop keeps serving others.
        payload: bytes | io.BytesIO = io.BytesIO(body) if len(body) > _STREAM_ABOVE else body
        async with session.post(url, data=payload, headers=headers, timeout=timeout) as resp:
            text = await resp.text()
            status = resp.status
            rh = {k.lower(): v for k, v in resp.headers.items()}
    except TimeoutError:
        raise TransientApiError(f"timed out waiting for {where}", code="timeout") from None
    except aiohttp.ClientConnectorError as exc:
        raise TransientApiError(
            f"cannot connect to {where}: {exc.os_error.strerror or exc.os_error}", code="connect_error"
        ) from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
        raise TransientApiError(f"connection to {where} broke: {type(exc).__name__}", code="connection_reset") from None
    except aiohttp.ClientError as exc:
        raise TransientApiError(f"request to {where} failed: {type(exc).__name__}", code="client_error") from None

    request_id = rh.get("x-request-id") or rh.get("apim-request-id")
    if status == 200:
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError:
            raise TransientApiError(
                f"malformed JSON in a 200 reply from {where}",
                code="malformed_response",
                headers=rh,
                request_id=request_id,
            ) from None
        return doc, rh

    code, message = _error_fields(text)
    full = f"HTTP {status} from {where}: {message}" if message else f"HTTP {status} from {where}"
    raise make_api_error(status, code, full, rh, request_id=request_id)


def fatal_advice(exc: FatalApiError, ep: EndpointSpec, target: Target) -> str:
    """The error, and what the user should change before running the job again."""
    if exc.status == 401:
        fix = (
            f"check that the key in ${ep.api_key_env} belongs to the resource at {target.base_url}"
            if ep.auth == "key"
            else "check that your Entra ID identity has the Cognitive Services OpenAI User role"
        )
    elif exc.status == 404 and exc.code == "DeploymentNotFound":
        fix = (
            f"check [endpoint].deployment ({ep.deployment!r}): it must be the deployment's name "
            "as shown in the portal, which is not always the model's name"
        )
    elif exc.status == 404:
        fix = f"check [endpoint].url and [endpoint].kind ({ep.kind!r}): the service has no such route"
    elif exc.status == 429:
        fix = "the deployment's quota is used up; run the job again when it resets, or raise the quota"
    else:
        fix = "see the message above"
    return f"{exc}\n  what to fix: {fix}"
