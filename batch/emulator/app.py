"""The aiohttp application: route table, request ids, admin endpoints.

Routes:

* ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``  Azure classic
* ``POST /openai/v1/chat/completions``                                       Azure v1 (``model`` = deployment)
* ``POST /v1/chat/completions``                                              OpenAI style (Bearer only)
* ``POST /openai/deployments/{deployment}/extensions/chat/completions?api-version=V``  legacy gpt-4
  vision-preview enhancements (OCR, grounding; see ``enhancements``)
* ``POST /computervision/imageanalysis:analyze?api-version=V&features=read``  Azure AI Vision 4.0
  read (``Ocp-Apim-Subscription-Key``; see ``vision``)
* ``GET /_emulator/stats``, ``GET /_emulator/requests``, ``POST /_emulator/reset``  admin, no auth
* ``GET|PUT|DELETE /_emulator/faults``  the fault rules (PUT a JSON list of rule objects to
  replace them, DELETE to clear them), admin, no auth
* ``GET /healthz``
* Files and Batch API on ``/openai``, ``/openai/v1`` and ``/v1`` (see ``batches``)

Every response, errors, admin replies and streamed (fault) replies included, carries
``x-request-id`` and ``apim-request-id`` (the same uuid). Unknown paths and wrong methods get Azure's JSON 404/405
instead of aiohttp's plain-text pages.
"""

from __future__ import annotations

import json
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from .batches import add_batch_routes
from .chat import AZURE, AZURE_V1, EXTENSIONS, MAX_BODY_BYTES, OPENAI, chat_handler, json_response
from .config import EmulatorConfig
from .faults import Fault
from .state import REQUEST_ID_KEY, STATE_KEY, EmulatorState
from .vision import vision_handler

__all__ = ["create_app"]


@web.middleware
async def _request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            response = json_response({"error": {"code": "404", "message": "Resource not found"}}, 404)
        else:
            response = json_response({"error": {"code": str(exc.status), "message": exc.reason}}, exc.status)
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
    return response


async def _add_request_ids(request: web.Request, response: web.StreamResponse) -> None:
    """Set on every response as it is prepared, so replies streamed by the handler get them too."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers["x-request-id"] = request_id
        response.headers["apim-request-id"] = request_id


async def _stats(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[STATE_KEY].stats_json())


async def _requests(request: web.Request) -> web.StreamResponse:
    """The request log; ``?since=SEQ`` returns only entries with a larger ``seq``."""
    entries = request.app[STATE_KEY].log.to_json()
    since = request.query.get("since")
    if since is not None:
        try:
            floor = int(since)
        except ValueError:
            return json_response({"error": {"code": "invalid_value", "message": "since must be an integer"}}, 400)
        entries = [e for e in entries if e["seq"] > floor]
    return json_response(entries)


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return json_response({"status": "reset"})


async def _get_faults(request: web.Request) -> web.StreamResponse:
    """``{"faults": [rule, ...], "hits": [n, ...], "elapsed_s": seconds since installed}``."""
    return json_response(request.app[STATE_KEY].faults_json())


async def _put_faults(request: web.Request) -> web.StreamResponse:
    """Replace the rules with a JSON list of rule objects (or ``{"faults": [...]}``)."""
    state = request.app[STATE_KEY]
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _invalid("invalid_json", "The body must be a JSON list of fault objects.")
    if isinstance(data, dict) and set(data) == {"faults"}:
        data = data["faults"]
    if not isinstance(data, list):
        return _invalid("invalid_fault", "The body must be a JSON list of fault objects.")
    try:
        rules = [Fault.from_mapping(raw, f"faults[{i}]") for i, raw in enumerate(data)]
        state.set_faults(rules)
    except ValueError as exc:
        return _invalid("invalid_fault", str(exc))
    return json_response(state.faults_json())


async def _delete_faults(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.set_faults([])
    return json_response(state.faults_json())


def _invalid(code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, 400)


async def _healthz(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


async def _close_state(app: web.Application) -> None:
    await app[STATE_KEY].close()


async def _stopping(app: web.Application) -> None:
    app[STATE_KEY].stopping.set()  # hangs and trickles end now instead of holding the shutdown


def create_app(config: EmulatorConfig) -> web.Application:
    """A fresh application serving ``config``'s deployments (state lives in ``app[STATE_KEY]``)."""
    app = web.Application(middlewares=[_request_ids], client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = EmulatorState(config)
    app.on_cleanup.append(_close_state)
    app.on_shutdown.append(_stopping)
    app.on_response_prepare.append(_add_request_ids)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", chat_handler(AZURE))
    app.router.add_post("/openai/v1/chat/completions", chat_handler(AZURE_V1))
    app.router.add_post("/v1/chat/completions", chat_handler(OPENAI))
    app.router.add_post("/openai/deployments/{deployment}/extensions/chat/completions", chat_handler(EXTENSIONS))
    app.router.add_post("/computervision/imageanalysis:analyze", vision_handler)
    app.router.add_get("/_emulator/stats", _stats)
    app.router.add_get("/_emulator/requests", _requests)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/faults", _get_faults)
    app.router.add_put("/_emulator/faults", _put_faults)
    app.router.add_delete("/_emulator/faults", _delete_faults)
    app.router.add_get("/healthz", _healthz)
    add_batch_routes(app)
    return app
