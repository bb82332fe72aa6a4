"""Reading what a rate-limited server says: ``x-ratelimit-*`` numbers and which window a 429 is about."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["header_int", "throttle_kind"]


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(float(raw))
    except ValueError:
        return None
    return value if value >= 0 else None


def throttle_kind(message: str) -> str:
    """Which window a 429 is about: Azure says "call rate limit" for requests, "token rate limit" else."""
    m = message.lower()
    if "call rate limit" in m or "request rate limit" in m or re.search(r"\brequests? per", m):
        return "requests"
    return "tokens"
