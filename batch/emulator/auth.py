"""Caller authentication: Azure's ``api-key`` header or ``Authorization: Bearer``.

The Azure routes accept either (a Bearer token stands for an Entra ID token); the
OpenAI-style route accepts only Bearer. With no key set configured any non-empty credential
passes, so ``batch emulator`` works out of the box. Only the *kind* of credential is ever
returned or recorded, never its value.

The Azure AI Vision route takes its key in ``Ocp-Apim-Subscription-Key`` instead
(``authenticate_subscription_key``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from .errors import unauthorized

__all__ = ["authenticate", "authenticate_subscription_key"]


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _accepted(credential: str, keys: frozenset[str] | None) -> bool:
    if not credential:
        return False
    if keys is None:
        return True
    # Constant-time comparison: a local emulator hardly needs it, but it costs nothing.
    return any(hmac.compare_digest(credential.encode(), key.encode()) for key in keys)


def authenticate(headers: Mapping[str, str], keys: frozenset[str] | None, *, bearer_only: bool) -> str:
    """Return ``"api-key"`` or ``"bearer"`` for an accepted caller; raise the 401 otherwise."""
    if not bearer_only:
        api_key = headers.get("api-key")
        if api_key is not None:
            if _accepted(api_key.strip(), keys):
                return "api-key"
            raise unauthorized()
    token = _bearer(headers)
    if token is not None and _accepted(token, keys):
        return "bearer"
    raise unauthorized()


def authenticate_subscription_key(headers: Mapping[str, str], keys: frozenset[str] | None) -> str:
    """Return ``"subscription-key"`` for an accepted ``Ocp-Apim-Subscription-Key``; raise the 401 otherwise."""
    key = headers.get("Ocp-Apim-Subscription-Key")
    if key is not None and _accepted(key.strip(), keys):
        return "subscription-key"
    raise unauthorized()
