"""Who we are to the endpoint: an API key from the environment, or a Microsoft Entra ID token.

Keys and tokens live only here and in the request headers built from them; ``repr`` never shows them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

from ..core import EndpointSpec, SpecError

__all__ = ["ENTRA_SCOPE", "Credential", "EntraCredential", "KeyCredential", "credential_for"]

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


class Credential(Protocol):
    async def headers(self) -> dict[str, str]: ...


class KeyCredential:
    """An API key from the environment. Its repr never shows the key."""

    def __init__(self, key: str, *, bearer: bool) -> None:
        self._key = key
        self._bearer = bearer

    def __repr__(self) -> str:
        return f"KeyCredential(bearer={self._bearer}, key=<redacted>)"

    async def headers(self) -> dict[str, str]:
        if self._bearer:
            return {"Authorization": f"Bearer {self._key}"}
        return {"api-key": self._key}


class EntraCredential:
    """A Microsoft Entra ID token for Azure resources whose keys are disabled (optional extra)."""

    def __init__(self) -> None:
        try:
            from azure.identity.aio import DefaultAzureCredential
        except ImportError:
            raise SpecError(
                "[endpoint].auth = 'entra' needs azure-identity: pip install 'vision-batch[entra]'"
            ) from None
        self._cred = DefaultAzureCredential()
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "EntraCredential(<token redacted>)"

    async def headers(self) -> dict[str, str]:
        async with self._lock:
            if self._token is None or time.time() > self._expires - 300:
                tok = await self._cred.get_token(ENTRA_SCOPE)
                self._token, self._expires = tok.token, float(tok.expires_on)
        return {"Authorization": f"Bearer {self._token}"}

    async def close(self) -> None:
        await self._cred.close()


def credential_for(ep: EndpointSpec, environ: Mapping[str, str]) -> Credential:
    if ep.auth == "entra":
        return EntraCredential()
    key = environ.get(ep.api_key_env, "").strip()
    if not key:
        raise SpecError(
            f"no API key: set the environment variable {ep.api_key_env} (or name another one in [endpoint].api_key_env)"
        )
    return KeyCredential(key, bearer=ep.kind == "openai")
