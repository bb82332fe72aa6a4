"""The aiohttp application: route table, request ids, admin endpoints.

Routes:

* ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``  Azure classic
* ``POST /openai/v1/chat/completions``                                       Azure v1 (``model`` = deployment)
* ``POST /v1/chat/completions``                                              OpenAI style (Bearer only)
* ``GET /_emulator/stats``, ``GET /_emulator/requests``, ``POST /_emulator/reset``  admin, no auth
* ``GET /healthz``

Every response, errors and admin replies included, carries ``x-request-id`` and
``apim-request-id`` (the same uuid). Unknown paths and wrong methods get Azure's JSON 404/405
instead of aiohttp's plain-text pages.
"""

from __future__ import annotations

import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from .chat import AZURE, AZURE_V1, MAX_BODY_BYTES, OPENAI, chat_handler, json_response
from .config import EmulatorConfig
from .state import REQUEST_ID_KEY, STATE_KEY, EmulatorState

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
    response.headers["x-request-id"] = request_id
    response.headers["apim-request-id"] = request_id
    return response


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


async def _healthz(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


async def _close_state(app: web.Application) -> None:
    await app[STATE_KEY].close()


def create_app(config: EmulatorConfig) -> web.Application:
    """A fresh application serving ``config``'s deployments (state lives in ``app[STATE_KEY]``)."""
    app = web.Application(middlewares=[_request_ids], client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = EmulatorState(config)
    app.on_cleanup.append(_close_state)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", chat_handler(AZURE))
    app.router.add_post("/openai/v1/chat/completions", chat_handler(AZURE_V1))
    app.router.add_post("/v1/chat/completions", chat_handler(OPENAI))
    app.router.add_get("/_emulator/stats", _stats)
    app.router.add_get("/_emulator/requests", _requests)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/healthz", _healthz)
    return app
