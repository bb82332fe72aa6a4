"""Files and Batch API routes on all three URL styles.

* Azure classic: ``/openai/files``, ``/openai/batches`` (``?api-version=`` 2024-10-21 or later)
* Azure v1:      ``/openai/v1/files``, ``/openai/v1/batches``
* OpenAI:        ``/v1/files``, ``/v1/batches`` (Bearer only)

Each prefix serves ``POST files`` (multipart upload), ``GET files``, ``GET files/{id}``,
``GET files/{id}/content``, ``DELETE files/{id}``, ``POST batches``, ``GET batches``
(newest first, ``limit``/``after``), ``GET batches/{id}`` and ``POST batches/{id}/cancel``.
Create refuses with 400 ``token_limit_exceeded`` when the file's tokens would push the
deployment's enqueued tokens (active batches) over its quota; a file that fails validation is
accepted and the batch ends ``failed`` with its codes in ``errors.data``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .auth import authenticate
from .batch_config import enqueued_quota
from .batch_files import FileStore, read_upload
from .batch_jobs import AZURE_STYLE, AZURE_V1_STYLE, OPENAI_STYLE, BatchJob, BatchStyle, validate
from .batch_worker import enqueued_tokens, run_batch
from .chat import json_response
from .errors import ApiError, bad_request, resource_not_found
from .state import STATE_KEY, EmulatorState

__all__ = ["BATCHES_KEY", "BatchBook", "add_batch_routes"]

#: The first GA api-version with the Batch API.
MIN_BATCH_API_VERSION = "2024-10-21"
_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class BatchBook:
    files: FileStore
    jobs: dict[str, BatchJob] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


BATCHES_KEY = web.AppKey("batches", BatchBook)


def _check(request: web.Request, style: BatchStyle) -> tuple[EmulatorState, BatchBook]:
    state = request.app[STATE_KEY]
    if style is AZURE_STYLE:
        version = request.query.get("api-version")
        if not version:
            raise resource_not_found()
        match = _VERSION.match(version)
        if match is None or match.group(1) < MIN_BATCH_API_VERSION:
            raise bad_request(
                "invalid_api_version",
                f"api-version {version} does not serve the Batch API; use {MIN_BATCH_API_VERSION} or later.",
            )
    authenticate(request.headers, state.config.api_keys, bearer_only=style is OPENAI_STYLE)
    return state, request.app[BATCHES_KEY]


def _handler(style: BatchStyle, fn: Callable[[web.Request, BatchStyle], Awaitable[object]]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            result = await fn(request, style)
        except ApiError as err:
            return json_response(err.body(), err.status, err.headers)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result)

    return handle


async def _upload(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    filename, purpose, data, expires = await read_upload(request)
    return book.files.add(filename, purpose, data, expires).to_json()


async def _list_files(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    data = [f.to_json() for f in book.files.files.values()]
    return {"object": "list", "data": data, "has_more": False}


async def _get_file(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    return book.files.get(request.match_info["file_id"]).to_json()


async def _file_content(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    stored = book.files.get(request.match_info["file_id"])
    return web.Response(body=stored.data, content_type="application/octet-stream")


async def _delete_file(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    return book.files.delete(request.match_info["file_id"])


async def _create(request: web.Request, style: BatchStyle) -> object:
    state, book = _check(request, style)
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("invalid_json", "We could not parse the JSON body of your request.") from exc
    if not isinstance(body, dict):
        raise bad_request("invalid_request", "The body must be a JSON object.")
    endpoint, window, metadata = body.get("endpoint"), body.get("completion_window"), body.get("metadata")
    if endpoint not in style.endpoints:
        allowed = ", ".join(sorted(style.endpoints))
        raise bad_request("invalid_value", f"endpoint must be one of {allowed}.", param="endpoint")
    if window != "24h":
        raise bad_request("invalid_value", "completion_window must be '24h'.", param="completion_window")
    if metadata is not None and (
        not isinstance(metadata, dict) or len(metadata) > 16 or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise bad_request("invalid_value", "metadata must map at most 16 keys to strings.", param="metadata")
    stored = book.files.get(str(body.get("input_file_id")))
    auth = {k: v for k, v in request.headers.items() if k.lower() in ("api-key", "authorization")}
    job = BatchJob.new(style, endpoint, stored.id, metadata=metadata, auth_headers=auth, origin=_origin(request))
    validate(job, stored.data, state)
    if not job.errors:
        _admit(job, state, book)
    book.jobs[job.id] = job
    task = asyncio.get_running_loop().create_task(run_batch(job, state, book.files))
    book.tasks.add(task)
    task.add_done_callback(book.tasks.discard)
    return job.to_json()


def _origin(request: web.Request) -> str:
    host, port = request.transport.get_extra_info("sockname")[:2] if request.transport else ("127.0.0.1", 0)
    return f"http://{host}:{port}"


def _admit(job: BatchJob, state: EmulatorState, book: BatchBook) -> None:
    assert job.deployment is not None
    job.enqueued_tokens = enqueued_tokens(state, job)
    quota = enqueued_quota(state.runtimes[job.deployment].deployment)
    queued = sum(j.enqueued_tokens for j in book.jobs.values() if j.active and j.deployment == job.deployment)
    if queued + job.enqueued_tokens > quota:
        raise bad_request(
            "token_limit_exceeded",
            f"Enqueued token limit reached for {job.deployment}: {queued} tokens are enqueued, this file adds "
            f"{job.enqueued_tokens} and the limit is {quota}. Retry once earlier batches finish.",
        )


async def _list_batches(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    try:
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
    except ValueError as exc:
        raise bad_request("invalid_value", "limit must be an integer.", param="limit") from exc
    jobs = list(reversed(book.jobs.values()))
    after = request.query.get("after")
    if after is not None:
        ids = [j.id for j in jobs]
        jobs = jobs[ids.index(after) + 1 :] if after in ids else []
    page = [j.to_json() for j in jobs[:limit]]
    first, last = (page[0]["id"], page[-1]["id"]) if page else (None, None)
    return {"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": len(jobs) > limit}


def _job(request: web.Request, book: BatchBook) -> BatchJob:
    job = book.jobs.get(request.match_info["batch_id"])
    if job is None:
        raise ApiError(404, "not_found", f"Batch with id '{request.match_info['batch_id']}' not found.")
    return job


async def _get_batch(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    return _job(request, book).to_json()


async def _cancel(request: web.Request, style: BatchStyle) -> object:
    _, book = _check(request, style)
    job = _job(request, book)
    if job.status in ("validating", "in_progress", "finalizing"):
        job.cancel_requested = True
        job.status = "cancelling"
        job.times["cancelling"] = time.time()
    return job.to_json()


async def _stop_batches(app: web.Application) -> None:
    tasks = list(app[BATCHES_KEY].tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def add_batch_routes(app: web.Application) -> None:
    app[BATCHES_KEY] = BatchBook(FileStore(app[STATE_KEY].config.max_files))
    app.on_shutdown.append(_stop_batches)
    for prefix, style in (("/openai", AZURE_STYLE), ("/openai/v1", AZURE_V1_STYLE), ("/v1", OPENAI_STYLE)):
        app.router.add_post(f"{prefix}/files", _handler(style, _upload))
        app.router.add_get(f"{prefix}/files", _handler(style, _list_files))
        app.router.add_get(f"{prefix}/files/{{file_id}}", _handler(style, _get_file))
        app.router.add_get(f"{prefix}/files/{{file_id}}/content", _handler(style, _file_content))
        app.router.add_delete(f"{prefix}/files/{{file_id}}", _handler(style, _delete_file))
        app.router.add_post(f"{prefix}/batches", _handler(style, _create))
        app.router.add_get(f"{prefix}/batches", _handler(style, _list_batches))
        app.router.add_get(f"{prefix}/batches/{{batch_id}}", _handler(style, _get_batch))
        app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", _handler(style, _cancel))
