"""The chat-completions pipeline shared by the Azure, Azure v1 and OpenAI-style routes.

One request goes through these steps, each of which may end it with an ``ApiError``:

1. find the deployment (path or body ``model``), api-version, auth;
2. validate the body (``parsing``) and the model's rules;
3. fetch/decode every image (``images``) and count prompt tokens (``models`` for images,
   ``tokens`` for text, with the deployment's encoding);
4. compute the admission charge (``charging``) and admit it against the windows (``limits``):
   charged now, before the hold, never refunded; a refusal is a 429 and charges nothing;
5. build the answer (``answers``; JSON following ``response_format``: ``structured``), cut it to
   the max tokens, hold for the latency model, reply.

Between steps 3 and 4 the fault rules (``faults``) get their say: a pre-admission fault
(429s, 401, 404, 413, prompt filter) answers instead of step 4, uncharged; a post-admission
one (5xx, reset, hang) answers instead of step 5, or (slow body, malformed JSON, completion
filter) changes how step 5's answer is delivered.

Routes differ only in a ``RouteSpec``. The legacy ``extensions`` route adds two things
(``enhancements``): its extra fields are checked after step 2, and with OCR or grounding on,
step 5 reads the image before building the answer and gives the reply the legacy shape.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .answers import ReceivedImage
from .auth import authenticate
from .chat_admission import UsageEstimate, admit, current_headers, estimate_usage
from .enhancements import Enhancements, answer_block, decorate, parse_enhancements, read_image
from .errors import ApiError, bad_request, deployment_not_found, resource_not_found
from .fault_injector import Hit
from .fault_responses import answer_with_fault, client_gone, fail, rejection
from .faults import FAILING_KINDS, NO_STATUS_KINDS
from .images import ImageInfo, fetch_image, invalid_image
from .ocr import Page
from .parsing import ChatRequest, ImageRef, check_against_model, parse_chat_body
from .state import REQUEST_ID_KEY, STATE_KEY, DeploymentRuntime, EmulatorState
from .stats import LogEntry
from .structured import structured_answer
from .tokens import tokenizer

__all__ = ["AZURE", "AZURE_V1", "EXTENSIONS", "MAX_BODY_BYTES", "OPENAI", "RouteSpec", "chat_handler", "json_response"]

#: Largest request body accepted. Generous: 50 images of a few MB each, base64-encoded.
MAX_BODY_BYTES = 256 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """How one route finds its deployment and authenticates."""

    kind: str  # recorded in the request log: "azure" | "azure-v1" | "openai" | "azure-extensions"
    deployment_in_path: bool
    requires_api_version: bool
    bearer_only: bool
    extensions: bool = False  # the legacy route: enhancements, dataSources, object finish_details


AZURE = RouteSpec("azure", deployment_in_path=True, requires_api_version=True, bearer_only=False)
AZURE_V1 = RouteSpec("azure-v1", deployment_in_path=False, requires_api_version=False, bearer_only=False)
OPENAI = RouteSpec("openai", deployment_in_path=False, requires_api_version=False, bearer_only=True)
EXTENSIONS = RouteSpec(
    "azure-extensions", deployment_in_path=True, requires_api_version=True, bearer_only=False, extensions=True
)

_SAFE = {"filtered": False, "severity": "safe"}
_CHOICE_FILTERS: dict[str, Any] = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTERS: dict[str, Any] = {**_CHOICE_FILTERS, "jailbreak": {"filtered": False, "detected": False}}
_INTERN_MAX = 1024


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def chat_handler(route: RouteSpec) -> Handler:
    """The aiohttp handler for one chat-completions route."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state: EmulatorState = request.app[STATE_KEY]
        entry = state.log.start(route.kind, request[REQUEST_ID_KEY])
        try:
            response = await _complete(request, state, route, entry)
        except ApiError as err:
            entry.error_code = err.code
            stats = state.stats_for(entry.deployment)
            if stats is state.unrouted:
                stats.received += 1
            if err.status != 429:  # 429s are counted as throttles at refusal
                stats.record_error(err.status)
            response = json_response(err.body(), err.status, err.headers)
        else:
            if response.status >= 400 and entry.fault not in NO_STATUS_KINDS:  # an injected 5xx
                state.stats_for(entry.deployment).record_error(response.status)
        if entry.client_disconnected:
            state.stats_for(entry.deployment).client_disconnects += 1
        # Nothing (or not all of it) reached the client: no status to record.
        entry.status = None if entry.fault in NO_STATUS_KINDS or entry.client_disconnected else response.status
        return response

    return handle


async def _complete(
    request: web.Request, state: EmulatorState, route: RouteSpec, entry: LogEntry
) -> web.StreamResponse:
    runtime, raw, body = await _route(request, state, route, entry)
    chat = parse_chat_body(body)
    entry.max_tokens_field, entry.max_tokens = chat.max_tokens_field, chat.max_tokens
    entry.texts = [sys.intern(t) if len(t) <= _INTERN_MAX else t for t in chat.user_texts]
    check_against_model(chat, runtime.rules)
    wanted = parse_enhancements(body, runtime.rules, chat, entry.api_version) if route.extensions else None
    if wanted is not None:
        entry.enhancements = wanted.enabled
    images = await _receive_images(state, chat.images)
    entry.images = images
    estimate = estimate_usage(runtime, chat, images)
    # No await from here to the commits below, so a rule's ``count`` holds under concurrency.
    hit = state.faults.pick(runtime.deployment.name, entry.texts, [im.info.sha256 for im in images], state.clock())
    if hit is not None and hit.fault.before_admission:
        state.faults.commit(hit, runtime.stats, entry)
        raise rejection(hit.fault, api_version=entry.api_version or "v1", limit_headers=current_headers(state, runtime))
    headers = admit(state, runtime, entry, estimate, body_bytes=len(raw))
    if hit is not None:
        state.faults.commit(hit, runtime.stats, entry)
        if hit.kind in FAILING_KINDS:
            return await fail(request, hit.fault, entry, state.stopping)
    return await _reply(request, state, runtime, entry, chat, images, estimate, headers, hit, wanted)


async def _route(
    request: web.Request, state: EmulatorState, route: RouteSpec, entry: LogEntry
) -> tuple[DeploymentRuntime, bytes, object]:
    """Step 1: api-version, auth, body JSON and the deployment it addresses."""
    entry.api_version = request.query.get("api-version")
    runtime: DeploymentRuntime | None = None
    if route.deployment_in_path:
        runtime = _bind(state, entry, request.match_info["deployment"])
        if route.requires_api_version and not entry.api_version:
            raise resource_not_found()
    entry.auth = authenticate(request.headers, state.config.api_keys, bearer_only=route.bearer_only)
    raw = await _read_body(request)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("invalid_json", "We could not parse the JSON body of your request.") from exc
    if not route.deployment_in_path:
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise bad_request(
                "missing_required_parameter",
                "Missing required parameter: 'model' (the deployment name).",
                param="model",
            )
        runtime = _bind(state, entry, model)
    if runtime is None:
        raise deployment_not_found()
    return runtime, raw, body


async def _reply(
    request: web.Request,
    state: EmulatorState,
    runtime: DeploymentRuntime,
    entry: LogEntry,
    chat: ChatRequest,
    images: list[ReceivedImage],
    estimate: UsageEstimate,
    headers: dict[str, str],
    hit: Hit | None,
    wanted: Enhancements | None,
) -> web.StreamResponse:
    """Step 5: the answer, truncated to the max tokens, after the latency hold (delivered
    oddly when ``hit`` is an answering fault). ``wanted``: the extensions route's enhancements."""
    page: Page | None = None
    if wanted is not None and wanted.active and chat.images:
        page = await read_image(state, chat.images[0])
        entry.ocr_lines = len(page.lines)
    extra = answer_block(page)
    tok = tokenizer(runtime.rules.tokenizer)
    if chat.response_format is not None:  # JSON that follows the schema; cut short at max_tokens like any answer
        full = structured_answer(chat.response_format, images, chat.user_texts, tok, state.config.seed)
    else:
        full = state.answers.build(images, chat.user_texts, tok, extra=extra)
    if estimate.max_output < full.tokens:
        answer, completion_tokens, finish_reason = full.cut(estimate.max_output), estimate.max_output, "length"
    else:
        answer, completion_tokens, finish_reason = full.text, full.tokens, "stop"
    runtime.stats.prompt_tokens += estimate.prompt_tokens
    runtime.stats.completion_tokens += completion_tokens
    entry.prompt_tokens = estimate.prompt_tokens
    entry.image_tokens = estimate.image_tokens
    entry.completion_tokens = completion_tokens
    entry.finish_reason = finish_reason
    hold = state.config.latency.hold_seconds(completion_tokens, state.rng)
    body = _completion_body(runtime.deployment.model, answer, finish_reason, estimate.prompt_tokens, completion_tokens)
    if wanted is not None:
        decorate(body, wanted, page, full.text, finish_reason)
        if wanted.active:
            runtime.stats.enhanced_calls += 1
    if hit is not None:
        return await answer_with_fault(request, hit.fault, body, hold, headers, entry, state.stopping)
    if hold > 0:
        await asyncio.sleep(hold)
    if client_gone(request):  # e.g. timed out during the hold: aiohttp drops the write quietly
        entry.client_disconnected = True
    return json_response(body, 200, headers)


def _bind(state: EmulatorState, entry: LogEntry, name: str) -> DeploymentRuntime | None:
    """Record which deployment the request names; count it as received if it exists."""
    entry.deployment = name
    runtime = state.runtimes.get(name)
    if runtime is not None:
        runtime.stats.received += 1
    return runtime


async def _read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(
            413,
            "request_too_large",
            f"The request body exceeds the maximum size of {MAX_BODY_BYTES} bytes.",
        ) from exc


async def _receive_images(state: EmulatorState, refs: list[ImageRef]) -> list[ReceivedImage]:
    """Decode data URLs and fetch http(s) URLs (concurrently), then identify every image."""
    infos: dict[int, ImageInfo] = {}
    for i, ref in enumerate(refs):
        if ref.source == "data":
            infos[i] = state.images.inspect_data_url(ref.url, param=f"{ref.param}.url")
    remote = [i for i, ref in enumerate(refs) if ref.source == "url"]
    if remote:
        session = await state.http()
        results = await asyncio.gather(
            *(fetch_image(session, refs[i].url, param=f"{refs[i].param}.url") for i in remote),
            return_exceptions=True,
        )
        for i, result in zip(remote, results, strict=True):
            if isinstance(result, ApiError):
                raise result
            if isinstance(result, BaseException):
                raise invalid_image(param=f"{refs[i].param}.url") from result
            infos[i] = state.images.inspect(result, param=f"{refs[i].param}.url")
    return [ReceivedImage(info=infos[i], detail=ref.detail, source=ref.source) for i, ref in enumerate(refs)]


def _completion_body(
    model: str, answer: str, finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:29],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None},
                "finish_reason": finish_reason,
                "logprobs": None,
                "content_filter_results": _CHOICE_FILTERS,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _PROMPT_FILTERS}],
        "system_fingerprint": "fp_emulator",
    }
