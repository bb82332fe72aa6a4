"""Reading what a rate-limited server says: ``x-ratelimit-*`` numbers and which window a 429 is about."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...core import ThrottleKind

__all__ = ["header_int", "throttle_kind"]

_REQUESTS = re.compile(r"call rate limit|request rate limit|\brequests? per")
_TOKENS = re.compile(r"token rate limit|\btokens? per")


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(float(raw))
    except ValueError:
        return None
    return value if value >= 0 else None


def throttle_kind(message: str) -> ThrottleKind:
    """Which window a 429 is about: Azure says "call rate limit" for requests, "token rate limit" for
    tokens; "unknown" when the message says neither (the limiter then treats it as a token 429)."""
    m = message.lower()
    if _REQUESTS.search(m):
        return "requests"
    if _TOKENS.search(m):
        return "tokens"
    return "unknown"
