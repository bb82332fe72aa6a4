"""Error replies in the service's own shapes.

Every failure inside a handler is raised as ``ApiError`` and turned into a JSON reply in one
place (``app.py``), so each body is always ``{"error": {"code", "message", ...}}``. The
constructors below hold the exact wording clients are known to parse (Azure's 401, 404 and
429 texts); keys are never part of any message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ApiError",
    "bad_request",
    "deployment_not_found",
    "rate_limited",
    "resource_not_found",
    "unauthorized",
]


class ApiError(Exception):
    """An HTTP error reply: status, ``error`` object fields and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra: dict[str, Any] = dict(extra or {})
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update(self.extra)
        return {"error": error}


def bad_request(code: str, message: str, *, param: str | None = None) -> ApiError:
    """A 400 in OpenAI's invalid-request shape (Azure passes these through unchanged)."""
    return ApiError(400, code, message, extra={"type": "invalid_request_error", "param": param})


def resource_not_found() -> ApiError:
    """What Azure answers for an unknown path or a classic route without ``api-version``."""
    return ApiError(404, "404", "Resource not found")


def deployment_not_found() -> ApiError:
    return ApiError(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    )


def unauthorized() -> ApiError:
    """401 for a missing or wrong key, in Azure's (Cognitive Services) wording."""
    return ApiError(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
        "a valid key for an active subscription and use a correct regional API endpoint for your "
        "resource.",
    )


def rate_limited(*, api_version: str, kind: str, retry_after_s: float, headers: Mapping[str, str]) -> ApiError:
    """Azure's 429. ``kind`` is ``"token"`` or ``"call"``; ``retry_after_s`` is the real time
    until enough of the window frees up. ``retry-after`` is whole seconds rounded up (at
    least 1), ``retry-after-ms`` the exact milliseconds rounded up."""
    seconds = max(1, math.ceil(retry_after_s))
    millis = max(1, math.ceil(retry_after_s * 1000))
    message = (
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {api_version} "
        f"have exceeded {kind} rate limit of your current OpenAI S0 pricing tier. Please retry after "
        f"{seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to "
        "further increase the default rate limit."
    )
    all_headers = dict(headers)
    all_headers["retry-after"] = str(seconds)
    all_headers["retry-after-ms"] = str(millis)
    return ApiError(429, "429", message, headers=all_headers)
