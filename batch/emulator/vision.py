"""Azure AI Vision Image Analysis 4.0 ``read``: synchronous OCR of one image.

``POST /computervision/imageanalysis:analyze?api-version=2024-02-01&features=read[&language=en]``
(``2023-10-01`` too) with ``Ocp-Apim-Subscription-Key``, and the image as raw bytes
(``application/octet-stream``), a ``multipart/form-data`` part or JSON ``{"url": "data:..."}``.
The 200 body::

    {"modelVersion": "2023-10-01", "metadata": {"width": W, "height": H},
     "readResult": {"blocks": [{"lines": [{"text": ..., "boundingPolygon": [{"x", "y"} x4],
                                           "words": [{"text", "boundingPolygon", "confidence"}]}]}]}}

with integer pixel coordinates clockwise from the top-left corner and confidences 0..1
(``blocks`` is empty when no text is found).

A request goes through these steps, each of which may end it:

1. ``api-version`` (missing or unknown: 404 ``Resource not found``) and the key (401);
2. ``features``/``language``, body and image (400s, see ``vision_request``);
3. the fault rules without a ``deployment`` (``faults.VISION_KINDS``): a pre-admission kind
   answers now (429s in the Vision wording, ``429-quota`` as the F0 tier's 403), as on the chat
   routes;
4. the resource's calls-per-second window (``EmulatorConfig.vision_tps``, one second long):
   a refusal is a 429 ``Rate limit is exceeded. Try again in N seconds.`` with ``Retry-After``;
   a post-admission fault (5xx, reset, hang) answers instead of step 5, an answering one
   (slow body, malformed JSON) delivers step 5's body oddly;
5. OCR (``ocr.OcrEngine``, off the loop) and the reply.

Calls are counted in ``/_emulator/stats`` under ``vision`` and logged with route
``vision-read``.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from .answers import ReceivedImage
from .auth import authenticate_subscription_key
from .chat import json_response
from .errors import ApiError, resource_not_found, unauthorized
from .fault_responses import answer_with_fault, client_gone, fail, rejection
from .faults import FAILING_KINDS, NO_STATUS_KINDS, VISION_KINDS, Fault
from .ocr import Box, OcrUnavailable, Page
from .state import REQUEST_ID_KEY, STATE_KEY, EmulatorState
from .stats import LogEntry
from .vision_request import API_VERSIONS, identify, invalid, parse_query, read_body

__all__ = ["MODEL_VERSION", "read_result", "vision_handler"]

MODEL_VERSION = "2023-10-01"
ROUTE = "vision-read"
#: The wait a quota refusal (``429-quota``) announces: a day.
_QUOTA_RETRY_S = 86400


async def vision_handler(request: web.Request) -> web.StreamResponse:
    state: EmulatorState = request.app[STATE_KEY]
    entry = state.log.start(ROUTE, request[REQUEST_ID_KEY])
    state.vision.stats.received += 1
    try:
        response = await _analyze(request, state, entry)
    except ApiError as err:
        entry.error_code = err.code
        if err.status != 429:  # 429s are counted as throttles (or faults) when refused
            state.vision.stats.record_error(err.status)
        response = json_response(err.body(), err.status, err.headers)
    else:
        if response.status >= 400 and entry.fault not in NO_STATUS_KINDS:  # an injected 5xx
            state.vision.stats.record_error(response.status)
    if entry.client_disconnected:
        state.vision.stats.client_disconnects += 1
    entry.status = None if entry.fault in NO_STATUS_KINDS or entry.client_disconnected else response.status
    return response


async def _analyze(request: web.Request, state: EmulatorState, entry: LogEntry) -> web.StreamResponse:
    entry.api_version = request.query.get("api-version")
    if entry.api_version not in API_VERSIONS:
        raise resource_not_found()
    entry.auth = authenticate_subscription_key(request.headers, state.config.vision_keys)
    query = parse_query(request.query)
    entry.features = query.features
    data, source = await read_body(request, state.http)
    info = identify(data)
    entry.images = [ReceivedImage(info=info, detail="n/a", source=source)]
    # No await from here to the commits below, so a rule's ``count`` holds under concurrency.
    hit = state.faults.pick(None, [], [info.sha256], state.clock(), kinds=VISION_KINDS)
    if hit is not None and hit.fault.before_admission:
        state.faults.commit(hit, state.vision.stats, entry)
        raise _rejection(hit.fault)
    _admit(state)
    if hit is not None:
        state.faults.commit(hit, state.vision.stats, entry)
        if hit.kind in FAILING_KINDS:
            return await fail(request, hit.fault, entry, state.stopping)
    try:
        page = await state.ocr().read(data, digest=info.sha256, tess_lang=query.tess_lang)
    except ValueError as exc:
        raise invalid("InvalidImageFormat", "The input data is not a valid image.") from exc
    except OcrUnavailable as exc:
        raise ApiError(500, "InternalServerError", f"The emulator cannot run OCR: {exc}") from exc
    lines = page.lines
    entry.ocr_lines = len(lines)
    stats = state.vision.stats
    stats.pages_ocr += 1
    stats.lines_ocr += len(lines)
    stats.words_ocr += sum(len(line.words) for line in lines)
    body = read_result(page)
    if hit is not None:
        return await answer_with_fault(request, hit.fault, body, 0.0, {}, entry, state.stopping)
    if client_gone(request):
        entry.client_disconnected = True
    return json_response(body)


def _admit(state: EmulatorState) -> None:
    """Take one call from the calls-per-second window, or refuse with the Vision 429."""
    now = state.clock()
    window = state.vision.window
    wait = window.wait_for(1, now)
    if wait > 0:
        state.vision.stats.throttled += 1
        raise rate_limited(wait)
    window.take(1, now)
    state.vision.stats.admitted += 1


def rate_limited(retry_after_s: float | None) -> ApiError:
    """The Vision 429 (``None``: no wait announced, no ``Retry-After``)."""
    if retry_after_s is None:
        return ApiError(429, "429", "Rate limit is exceeded.")
    seconds = max(1, math.ceil(retry_after_s))
    return ApiError(
        429, "429", f"Rate limit is exceeded. Try again in {seconds} seconds.", headers={"Retry-After": str(seconds)}
    )


def _rejection(fault: Fault) -> ApiError:
    """What a pre-admission fault answers on this route."""
    kind = fault.kind
    if kind in ("429", "429-retry-after"):
        return rate_limited(fault.retry_after_s)
    if kind == "429-bare":
        return rate_limited(None)
    if kind == "429-quota":
        return ApiError(
            403,
            "403",
            "Out of call volume quota for ComputerVision F0 pricing tier. Please retry after 1 day. "
            "To increase your call volume switch to a paid tier.",
            headers={"Retry-After": str(_QUOTA_RETRY_S)},
        )
    if kind == "401":
        return unauthorized()
    if kind == "404":
        return resource_not_found()
    return rejection(fault, api_version="", limit_headers={})  # 413


def read_result(page: Page) -> dict[str, Any]:
    """The 200 body for a page OCR read."""
    blocks = [
        {
            "lines": [
                {
                    "text": line.text,
                    "boundingPolygon": _polygon(line.box),
                    "words": [
                        {"text": w.text, "boundingPolygon": _polygon(w.box), "confidence": w.confidence}
                        for w in line.words
                    ],
                }
                for line in block
            ]
        }
        for block in page.blocks
    ]
    return {
        "modelVersion": MODEL_VERSION,
        "metadata": {"width": page.width, "height": page.height},
        "readResult": {"blocks": blocks},
    }


def _polygon(box: Box) -> list[dict[str, int]]:
    return [{"x": x, "y": y} for x, y in box.corners()]
