"""A batch's life: ``validating`` → ``in_progress`` → ``finalizing`` → ``completed`` over
``batch_seconds``, or ``failed`` (job-level errors), ``expired`` (past
``batch_expire_seconds``, with partial results) and ``cancelling`` → ``cancelled``.

Every line goes through the SAME chat engine as online traffic: it is POSTed over loopback to
this server's own ``/openai/v1/chat/completions`` with the caller's credentials, so answers,
usage, content filtering, fault rules and the request log are exactly the online ones. Lines
are paced over 70% of ``batch_seconds`` so expiry and cancel leave partial results.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from .answers import ReceivedImage
from .batch_files import FileStore
from .batch_jobs import BatchJob, BatchLine
from .chat_admission import estimate_usage
from .errors import ApiError
from .parsing import parse_chat_body
from .state import EmulatorState

__all__ = ["LINE_CONCURRENCY", "enqueued_tokens", "run_batch"]

#: Lines a batch runs at once through the chat engine.
LINE_CONCURRENCY = 8
_LINE_TIMEOUT_S = 60.0


def enqueued_tokens(state: EmulatorState, job: BatchJob) -> int:
    """What the file charges against the deployment's enqueued-token quota: prompt (text and
    images as the chat engine counts them; URL images as 1024×1024) plus max output, per line."""
    if job.deployment is None:
        return 0
    runtime = state.runtimes[job.deployment]
    total = 0
    for line in job.lines:
        try:
            chat = parse_chat_body(line.body)
            images = []
            for ref in chat.images:
                if ref.source == "data":
                    info = state.images.inspect_data_url(ref.url)
                    images.append(ReceivedImage(info=info, detail=ref.detail, source=ref.source))
                else:
                    total += runtime.rules.image_tokens(1024, 1024, ref.detail)
            estimate = estimate_usage(runtime, chat, images)
        except ApiError:
            continue  # the line will fail on its own when it runs
        total += estimate.prompt_tokens + estimate.max_output
    return total


async def run_batch(job: BatchJob, state: EmulatorState, files: FileStore) -> None:
    seconds = state.config.batch_seconds
    await _sleep_unless_cancelled(job, 0.1 * seconds)
    if _cancelled(job):
        await _finish_cancel(job, {}, files, seconds)
        return
    if job.errors:
        _mark(job, "failed")
        return
    _mark(job, "in_progress")
    results: dict[str, dict[str, Any]] = {}
    expired = await _run_lines(job, state, results, 0.7 * seconds)
    if _cancelled(job):
        await _finish_cancel(job, results, files, seconds)
        return
    if expired:
        _write_files(job, results, files, "batch_expired", "This request could not be executed before the job expired.")
        _mark(job, "expired")
        return
    _mark(job, "finalizing")
    await asyncio.sleep(0.1 * seconds)
    _write_files(job, results, files, "", "")
    _mark(job, "completed")


async def _run_lines(job: BatchJob, state: EmulatorState, results: dict[str, dict[str, Any]], span: float) -> bool:
    """Run the lines at most ``LINE_CONCURRENCY`` at a time, line i not before i/n of ``span``.
    Returns True when the batch expired before every line ran."""
    started = time.monotonic()
    expire = state.config.batch_expire_seconds
    queue: asyncio.Queue[tuple[int, BatchLine]] = asyncio.Queue()
    for item in enumerate(job.lines):
        queue.put_nowait(item)
    expired = False
    timeout = aiohttp.ClientTimeout(total=_LINE_TIMEOUT_S)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal expired
        while not queue.empty() and not _cancelled(job) and not expired:
            index, line = queue.get_nowait()
            delay = started + span * index / max(1, len(job.lines)) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if expire is not None and time.time() - job.created_at > expire:
                expired = True
                return
            if _cancelled(job):
                return
            results[line.custom_id] = await _run_line(session, job, line)
            if (
                results[line.custom_id]["response"] is not None
                and results[line.custom_id]["response"]["status_code"] == 200
            ):
                job.completed += 1
            else:
                job.failed += 1

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(LINE_CONCURRENCY)))
    return expired


async def _run_line(session: aiohttp.ClientSession, job: BatchJob, line: BatchLine) -> dict[str, Any]:
    url = job.origin + "/openai/v1/chat/completions"
    line_id = "batch_req_" + uuid.uuid4().hex
    try:
        async with session.post(url, json=line.body, headers=job.auth_headers) as response:
            raw = await response.read()
            request_id = response.headers.get("x-request-id", "")
            status = response.status
        body = json.loads(raw)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        error = {"code": "request_timeout", "message": "The request timed out or its reply could not be read."}
        return {"id": line_id, "custom_id": line.custom_id, "response": None, "error": error}
    response_json = {"status_code": status, "request_id": request_id, "body": body}
    return {"id": line_id, "custom_id": line.custom_id, "response": response_json, "error": None}


def _write_files(job: BatchJob, results: dict[str, dict[str, Any]], files: FileStore, code: str, message: str) -> None:
    """Successful lines to the output file, failed and (with ``code``) unrun lines to the error file."""
    out: list[bytes] = []
    err: list[bytes] = []
    for line in job.lines:
        result = results.get(line.custom_id)
        if result is None:
            if not code:
                continue
            result = {"id": "batch_req_" + uuid.uuid4().hex, "custom_id": line.custom_id, "response": None,
                      "error": {"code": code, "message": message}}  # fmt: skip
            job.failed += 1
        ok = result["response"] is not None and result["response"]["status_code"] == 200
        (out if ok else err).append(json.dumps(result, separators=(",", ":")).encode() + b"\n")
    if out:
        job.output_file_id = files.add(f"{job.id}_output.jsonl", "batch_output", b"".join(out)).id
    if err or job.style.always_error_file:
        job.error_file_id = files.add(f"{job.id}_error.jsonl", "batch_output", b"".join(err)).id


async def _finish_cancel(job: BatchJob, results: dict[str, dict[str, Any]], files: FileStore, seconds: float) -> None:
    await asyncio.sleep(0.1 * seconds)
    _write_files(job, results, files, "batch_cancelled", "This request was cancelled with its batch.")
    _mark(job, "cancelled")


async def _sleep_unless_cancelled(job: BatchJob, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _cancelled(job) and time.monotonic() < deadline:
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _cancelled(job: BatchJob) -> bool:
    """A function, not an attribute read, so a check after an await is not narrowed away."""
    return job.cancel_requested


def _mark(job: BatchJob, status: str) -> None:
    job.status = status
    job.times[status] = time.time()
