"""Delivering an injected fault on the wire: what the client sees.

``rejection`` builds the error a pre-admission fault answers with (Azure's 429 variants,
401, 404, 413, a filtered prompt); ``fail`` writes a post-admission failure (a 5xx as Azure's
JSON or a gateway's HTML or text page, a response cut off mid-body, a hold that never
answers); ``answer_with_fault`` delivers a produced answer oddly (filtered, as truncated JSON,
or trickled out over seconds). A client that gives up (or a server that shuts down) ends a
hang or trickle early and quietly: no ERROR logs, no tasks left behind.

Which rule fires, and when, is decided in ``faults``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .errors import ApiError, deployment_not_found, rate_limited, unauthorized
from .faults import Fault
from .stats import LogEntry
from .structured import ANSWER_FAULTS, alter_answer

__all__ = ["FILTERED_RESULTS", "answer_with_fault", "client_gone", "fail", "rejection"]

#: Seconds between checks for a vanished client or a stopping server during a hang.
_POLL_S = 0.05
#: Target spacing of the chunks of a slow body.
_TRICKLE_STEP_S = 0.1
#: Retry-after Azure sends when a quota (not a rate) is exhausted.
_QUOTA_RETRY_S = 86400

_CF_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SAFE = {"filtered": False, "severity": "safe"}
_FLAGGED = {"filtered": True, "severity": "high"}
#: The verdict of a filtered prompt or completion: violence at high severity.
FILTERED_RESULTS: dict[str, Any] = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _FLAGGED}

_GATEWAY_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def rejection(fault: Fault, *, api_version: str, limit_headers: Mapping[str, str]) -> ApiError:
    """The error a pre-admission fault answers with (raise it: the handler writes it)."""
    kind = fault.kind
    if kind == "429":
        return rate_limited(
            api_version=api_version, kind="token", retry_after_s=fault.retry_after_s, headers=limit_headers
        )
    if kind == "429-retry-after":
        err = rate_limited(
            api_version=api_version, kind="token", retry_after_s=fault.retry_after_s, headers=limit_headers
        )
        del err.headers["retry-after-ms"]
        return err
    if kind == "429-bare":
        return ApiError(
            429,
            "429",
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {api_version} "
            "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please go here: "
            "https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.",
        )
    if kind == "429-quota":
        err = rate_limited(api_version=api_version, kind="token", retry_after_s=_QUOTA_RETRY_S, headers=limit_headers)
        err.message = err.message.split(" Please go here:")[0] + (
            " Please contact Azure support service if you would like to further increase the default rate limit."
        )
        return err
    if kind == "401":
        return unauthorized()
    if kind == "404":
        return deployment_not_found()
    if kind == "413":
        return ApiError(
            413,
            "request_too_large",
            "The request is too large: its body exceeds the maximum size this deployment accepts.",
        )
    if kind == "content-filter-prompt":
        return ApiError(
            400,
            "content_filter",
            _CF_MESSAGE,
            extra={
                "type": None,
                "param": "prompt",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        **FILTERED_RESULTS,
                        "jailbreak": {"filtered": False, "detected": False},
                    },
                },
            },
        )
    raise ValueError(f"fault {kind!r} is not decided before admission")


def client_gone(request: web.BaseRequest) -> bool:
    """True once the client's connection is closed (or closing)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _drop(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def fail(request: web.BaseRequest, fault: Fault, entry: LogEntry, stopping: asyncio.Event) -> web.StreamResponse:
    """A post-admission failure: a 5xx, a connection cut mid-response, or a hang."""
    kind = fault.kind
    if kind == "500":
        entry.error_code = "InternalServerError"
        return _json(
            500, "InternalServerError", "Backend returned unexpected response. Please contact Microsoft for help."
        )
    if kind == "503":
        entry.error_code = "ServiceUnavailable"
        return _json(
            503,
            "ServiceUnavailable",
            "The service is temporarily unable to process your request. Please try again later.",
        )
    if kind == "502":
        entry.error_code = "BadGateway"
        return web.Response(status=502, text=_GATEWAY_502, content_type="text/html")
    if kind == "504":
        entry.error_code = "GatewayTimeout"
        return web.Response(status=504, text="upstream request timeout", content_type="text/plain")
    if kind == "reset":
        return await _reset(request, entry)
    if kind == "hang":
        return await _hang(request, fault.hang_s, entry, stopping)
    raise ValueError(f"fault {kind!r} is not a failure")


def _json(status: int, code: str, message: str) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":"))
    return web.Response(status=status, text=body, content_type="application/json")


async def _reset(request: web.BaseRequest, entry: LogEntry) -> web.StreamResponse:
    """Send the status line, headers and half of a plausible body, then cut the connection:
    the client sees a payload error (body shorter than Content-Length) or a disconnect."""
    body = json.dumps({"id": "chatcmpl-reset", "object": "chat.completion", "choices": [], "pad": "x" * 512}).encode()
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.content_length = len(body)
    try:
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
    except ConnectionError:
        entry.client_disconnected = True
    _drop(request)
    return response


async def _hang(request: web.BaseRequest, seconds: float, entry: LogEntry, stopping: asyncio.Event) -> web.Response:
    """Hold without answering until ``seconds`` pass, the client leaves or the server stops;
    then drop the connection (never a status)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        if client_gone(request):
            entry.client_disconnected = True
            break
        remaining = deadline - loop.time()
        if remaining <= 0 or stopping.is_set():
            break
        await asyncio.sleep(min(_POLL_S, remaining))
    _drop(request)
    return web.Response(status=504)  # never sent: the connection is gone


async def answer_with_fault(
    request: web.BaseRequest,
    fault: Fault,
    body: dict[str, Any],
    hold: float,
    headers: Mapping[str, str],
    entry: LogEntry,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    """Deliver a produced answer oddly: filtered, refused, as truncated JSON, or trickled out slowly."""
    kind = fault.kind
    if kind == "content-filter-completion":
        choice = body["choices"][0]
        choice["message"]["content"] = None
        choice["finish_reason"] = "content_filter"
        choice.pop("finish_details", None)  # the legacy extensions route's object form
        choice.pop("enhancements", None)
        choice["content_filter_results"] = FILTERED_RESULTS
        entry.finish_reason = "content_filter"
    if kind in ANSWER_FAULTS:  # the answer itself goes wrong: a refusal, free text, JSON off the schema
        entry.finish_reason = alter_answer(kind, body["choices"][0])
    if hold > 0:
        await asyncio.sleep(hold)
    if client_gone(request):
        entry.client_disconnected = True
    raw = json.dumps(body, separators=(",", ":")).encode()
    if kind == "malformed-json":
        return web.Response(body=raw[: len(raw) * 3 // 5], status=200, headers=headers, content_type="application/json")
    if kind == "slow-body":
        return await _trickle(request, raw, fault.trickle_s, headers, entry, stopping)
    return web.Response(body=raw, status=200, headers=headers, content_type="application/json")


async def _trickle(
    request: web.BaseRequest,
    raw: bytes,
    seconds: float,
    headers: Mapping[str, str],
    entry: LogEntry,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    """Headers at once, then the body in equal chunks, each after a pause: ``seconds`` in all."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(raw)
    pieces = max(1, min(len(raw), round(seconds / _TRICKLE_STEP_S)))
    step = seconds / pieces
    bounds = [len(raw) * k // pieces for k in range(pieces + 1)]
    try:
        await response.prepare(request)
        for start, end in zip(bounds, bounds[1:], strict=False):
            if step > 0 and not stopping.is_set():
                await asyncio.sleep(step)
            if client_gone(request):
                entry.client_disconnected = True
                break
            await response.write(raw[start:end])
    except ConnectionError:
        entry.client_disconnected = True
    return response
