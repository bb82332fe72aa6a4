"""The asyncio worker pool: manifest → request → limiter → client → retry → result store.

One task feeds manifest rows (streamed, done rows skipped) into a small queue; worker tasks take a
row only when the in-flight window has room, build its request in a thread, wait for the limiter,
send it, retry what is worth retrying, and hand the row's outcome to the writer task, which flushes
part files. The window sizes itself from the limits and the observed latency (Little's law) unless
the job fixes a concurrency. A fatal API error (bad key, wrong deployment, quota gone) or a signal
stops the run: no new rows are taken, outcomes already produced are flushed, and the exception
tells the user that running the same job again resumes.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import aiohttp

from .client import ChatClient, Credential, Target, credential_for
from .errors import (
    ApiError,
    ContentFilteredError,
    FatalApiError,
    RateLimitedError,
    RowError,
    RunStopped,
    TransientApiError,
    UnknownModelError,
)
from .inflight import ByteBudget, LiveStats, Window
from .manifest import Manifest
from .models import lookup_model
from .payloads import PreparedRequest, RequestBuilder
from .pricing import Price, cost, load_prices
from .progress import ProgressBar, RunSummary, Tally
from .ratelimit import RateLimiter, throttle_kind
from .records import Outcome, Status, WorkItem
from .results import ResultStore
from .retry import RetryPolicy, retry_delay, should_retry
from .spec import JobSpec

# 429s are the limiter's pacing signal, not a fault of the row: they get their own, larger budget.
MAX_THROTTLED_ATTEMPTS = 50
# A row that runs out of attempts while nothing has succeeded for this long is a victim of an
# outage, not a bad row: the run stops (resumable) instead of writing error rows for everything.
OUTAGE_S = 60.0
# Connection refusals before any request ever succeeded: the endpoint URL is wrong or down.
UNREACHABLE_AFTER = 3
# DeploymentNotFound can be a deployment created minutes ago: one delayed retry, then stop.
NOT_FOUND_RETRY_S = 3.0
_MIN_WINDOW, _MAX_WINDOW, _UNLIMITED_WINDOW = 2, 1024, 64
_TICK = Outcome(-1, "error")  # the writer's "no outcome this time" marker


class Runner:
    def __init__(
        self,
        spec: JobSpec,
        *,
        credential: Credential | None = None,
        environ: Mapping[str, str] | None = None,
        show_progress: bool = True,
        seed: int | None = None,
    ) -> None:
        self.spec = spec
        env = os.environ if environ is None else environ
        self.model = lookup_model(spec.endpoint.model)
        self.target = Target.from_spec(spec.endpoint)
        self.credential = credential if credential is not None else credential_for(spec.endpoint, env)
        self.manifest = Manifest(spec.input.manifest, spec.input.columns, spec.input.batch_rows)
        self.info = self.manifest.check()
        self.store = ResultStore(
            spec.output.path,
            self.info,
            flush_rows=spec.output.flush_rows,
            flush_seconds=spec.output.flush_seconds,
        )
        self.builder = RequestBuilder(spec, self.model, self.target.model_in_body)
        self.policy = RetryPolicy(max_attempts=spec.limits.max_attempts)
        self.limiter = RateLimiter(
            spec.limits.tpm,
            spec.limits.effective_rpm,
            request_header_window=60.0 if spec.endpoint.kind == "openai" else 10.0,
        )
        self.tally = Tally(self.info.num_rows)
        self._rng = random.Random(seed)
        self._live = LiveStats()
        self._bytes = ByteBudget()
        self._show_progress = show_progress
        self._stop_reason: str | None = None
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._last_success: float | None = None
        self._connect_errors = 0
        self._prices = load_prices()
        self._price_cache: dict[str, Price | None] = {}

    # ---- one row ------------------------------------------------------------------------------

    async def process(self, client: ChatClient, item: WorkItem) -> Outcome | None:
        """Everything for one row. Returns None if the run is stopping and the row stays undone."""
        try:
            req = await asyncio.to_thread(self.builder.build, item)
        except RowError as exc:
            return Outcome(item.index, "error", error_code=exc.code, error_message=str(exc))
        async with self._bytes.hold(len(req.body)):
            return await self._send(client, item, req)

    async def _send(self, client: ChatClient, item: WorkItem, req: PreparedRequest) -> Outcome | None:
        """Attempts for one built request: pacing, retries, and the row's outcome."""
        attempts = throttled = 0
        retried_not_found = False
        started = time.monotonic()
        last: ApiError | None = None
        while not self._stop.is_set():
            try:
                permit = await self.limiter.acquire(req.estimate.admission)
            except RowError as exc:
                return self._outcome(item, req, "error", attempts, started, code=exc.code, message=str(exc))
            attempts += 1
            self.tally.requests += 1
            sent = time.monotonic()
            try:
                reply = await client.send(req.body)
            except RateLimitedError as exc:
                last = exc
                throttled += 1
                self.tally.throttled += 1
                self.limiter.on_throttle(permit, exc.retry_after, throttle_kind(str(exc)), exc.headers)
                if throttled >= MAX_THROTTLED_ATTEMPTS:
                    break
                continue
            except FatalApiError as exc:
                self.limiter.refund(permit)
                if exc.status == 404 and not retried_not_found:
                    retried_not_found = True
                    await asyncio.sleep(NOT_FOUND_RETRY_S)
                    continue
                self._halt(self._fatal_advice(exc))
                return None
            except ContentFilteredError as exc:
                return self._outcome(item, req, "filtered", attempts, started, exc=exc)
            except TransientApiError as exc:
                last = exc
                if exc.code == "connect_error":
                    self.limiter.refund(permit)
                    self._connect_errors += 1
                    if self._last_success is None and self._connect_errors >= UNREACHABLE_AFTER:
                        self._halt(
                            f"{exc}\n  what to fix: check [endpoint].url / --endpoint, or whether the service is up"
                        )
                        return None
                elif exc.headers:
                    self.limiter.on_response(permit, exc.headers)
                if not should_retry(exc, attempts, self.policy):
                    break
                await asyncio.sleep(retry_delay(exc, attempts, self.policy, self._rng))
                continue
            except ApiError as exc:  # permanent: 400, 403, 413, 422 ...
                return self._outcome(item, req, "error", attempts, started, exc=exc)
            self.limiter.on_response(permit, reply.headers)
            self._last_success = time.monotonic()
            self._live.observe(self._last_success - sent, req.estimate.admission)
            c = reply.completion
            status: Status = "filtered" if c.finish_reason == "content_filter" else "ok"
            return Outcome(
                item.index,
                status,
                answer=c.answer,
                finish_reason=c.finish_reason,
                prompt_tokens=c.usage.prompt_tokens if c.usage else None,
                completion_tokens=c.usage.completion_tokens if c.usage else None,
                total_tokens=c.usage.total_tokens if c.usage else None,
                attempts=attempts,
                latency_ms=(time.monotonic() - started) * 1000,
                request_id=c.request_id,
                model=c.model,
                detail_used=req.detail,
                estimated_image_tokens=req.estimate.image_tokens,
                estimated_prompt_tokens=req.estimate.prompt_tokens,
                image_note=req.image_note,
            )
        if self._stop.is_set():
            return None
        assert last is not None
        quiet = time.monotonic() - (self._last_success or self._started)
        if quiet >= OUTAGE_S:
            self._halt(f"no request has succeeded for {quiet:.0f} s; the last error: {last}")
            return None
        return self._outcome(item, req, "error", attempts, started, exc=last, exhausted=True)

    def _fatal_advice(self, exc: FatalApiError) -> str:
        """The error, and what the user should change before running the job again."""
        ep = self.spec.endpoint
        if exc.status == 401:
            fix = (
                f"check that the key in ${ep.api_key_env} belongs to the resource at {self.target.base_url}"
                if ep.auth == "key"
                else "check that your Entra ID identity has the Cognitive Services OpenAI User role"
            )
        elif exc.status == 404 and exc.code == "DeploymentNotFound":
            fix = (
                f"check [endpoint].deployment ({ep.deployment!r}): it must be the deployment's name "
                "as shown in the portal, which is not always the model's name"
            )
        elif exc.status == 404:
            fix = f"check [endpoint].url and [endpoint].kind ({ep.kind!r}): the service has no such route"
        elif exc.status == 429:
            fix = "the deployment's quota is used up; run the job again when it resets, or raise the quota"
        else:
            fix = "see the message above"
        return f"{exc}\n  what to fix: {fix}"

    def _outcome(
        self,
        item: WorkItem,
        req: PreparedRequest,
        status: Status,
        attempts: int,
        started: float,
        *,
        exc: ApiError | None = None,
        code: str | None = None,
        message: str | None = None,
        exhausted: bool = False,
    ) -> Outcome:
        msg = message if message is not None else (str(exc) if exc else None)
        if exhausted and msg:
            msg = f"gave up after {attempts} attempts; last: {msg}"
        return Outcome(
            item.index,
            status,
            error_code=code if code is not None else (exc.code if exc else None),
            error_message=msg,
            attempts=attempts,
            latency_ms=(time.monotonic() - started) * 1000,
            request_id=exc.request_id if exc else None,
            detail_used=req.detail,
            estimated_image_tokens=req.estimate.image_tokens,
            estimated_prompt_tokens=req.estimate.prompt_tokens,
            image_note=req.image_note,
        )

    def _halt(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    # ---- the pool -----------------------------------------------------------------------------

    def _window_target(self, active: int) -> int:
        if self.spec.limits.concurrency:
            return self.spec.limits.concurrency
        rate = self.limiter.max_request_rate(self._live.estimate)
        if rate is None:
            return _UNLIMITED_WINDOW
        # Little's law: rows in flight = rate x latency, with headroom for jitter and rows being
        # prepared; and never fewer than the windows could admit right now (the first minute's burst).
        steady = math.ceil(rate * self._live.latency_s * 1.5) + 2
        free = self.limiter.free_requests(self._live.estimate) or 0
        return max(_MIN_WINDOW, min(_MAX_WINDOW, max(steady, active + free)))

    async def run(self) -> RunSummary:
        started = time.monotonic()
        done_before = await asyncio.to_thread(self.store.open)
        self.tally.already_done = done_before
        if done_before < self.info.num_rows:
            await self._run_pool(done_before)
        complete = bool(self.store.done.all())
        if complete:
            await asyncio.to_thread(self.store.assemble, self.manifest)
        summary = RunSummary(self.spec.output.path, self.tally, time.monotonic() - started, complete, self._stop_reason)
        if not complete:
            raise RunStopped(summary.render())
        return summary

    async def _run_pool(self, done_before: int) -> None:
        window = Window(self._window_target(0))
        items: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=256)
        outcomes: asyncio.Queue[Outcome | None] = asyncio.Queue()
        bar = ProgressBar(self.info.num_rows, done_before, enabled=self._show_progress)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._halt, f"received {signal.Signals(sig).name}")
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        n_workers = self.spec.limits.concurrency or _MAX_WINDOW
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                client = ChatClient(session, self.target, self.credential, self.spec.endpoint.timeout_s)
                feeder = asyncio.create_task(self._feed(items, n_workers))
                writer = asyncio.create_task(self._write(outcomes, bar))
                sizer = asyncio.create_task(self._resize(window))
                workers = [asyncio.create_task(self._work(client, items, outcomes, window)) for _ in range(n_workers)]
                stopper: asyncio.Future[object] = asyncio.ensure_future(self._stop.wait())
                everyone: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*workers))
                await asyncio.wait([everyone, stopper], return_when=asyncio.FIRST_COMPLETED)
                if self._stop.is_set():
                    # Give rows already on the wire a moment to land, then cancel the rest: those rows
                    # are simply not recorded and will be sent again on resume.
                    await asyncio.wait(workers, timeout=2.0)
                helpers: list[asyncio.Future[Any]] = [feeder, sizer, stopper, everyone, *workers]
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await outcomes.put(None)
                await writer
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            bar.close()
            close = getattr(self.credential, "close", None)
            if close is not None:
                await close()

    async def _feed(self, items: asyncio.Queue[WorkItem | None], n_workers: int) -> None:
        for item in self.manifest.items(skip=self.store.done.copy()):
            if self._stop.is_set():
                break
            await items.put(item)
        for _ in range(n_workers):
            await items.put(None)

    async def _work(
        self,
        client: ChatClient,
        items: asyncio.Queue[WorkItem | None],
        outcomes: asyncio.Queue[Outcome | None],
        window: Window,
    ) -> None:
        while not self._stop.is_set():
            await window.enter()
            try:
                item = await items.get()
                if item is None:
                    return
                try:
                    outcome = await self.process(client, item)
                except Exception as exc:  # a bug must cost one row, never a silent worker death
                    outcome = Outcome(
                        item.index,
                        "error",
                        error_code="internal_error",
                        error_message=f"unexpected {type(exc).__name__}: {exc}"[:600],
                    )
            finally:
                await window.leave()
            if outcome is not None:
                outcomes.put_nowait(outcome)

    async def _write(self, outcomes: asyncio.Queue[Outcome | None], bar: ProgressBar) -> None:
        store = self.store
        while True:
            try:
                o = await asyncio.wait_for(outcomes.get(), timeout=0.5)
            except TimeoutError:
                o = _TICK  # nothing arrived: still check the flush timer
            if o is None:
                break
            if o is not _TICK:
                store.add(o)
                self.tally.add(o)
                self._add_cost(o)
                bar.advance(
                    1,
                    tokens_per_min=self.limiter.charged_last_window(),
                    tpm=self.limiter.tpm,
                    throttled=self.tally.throttled,
                    cost_usd=self.tally.cost_usd,
                )
            if store.flush_due:
                await asyncio.to_thread(store.flush, store.take_buffer())
        await asyncio.to_thread(store.close)

    def _add_cost(self, o: Outcome) -> None:
        """Cost so far from billed usage, at the price of the model that answered."""
        if o.prompt_tokens is None and o.completion_tokens is None:
            return
        name = o.model or self.spec.endpoint.model
        if name not in self._price_cache:
            try:
                self._price_cache[name] = self._prices.price_for(name)
            except UnknownModelError:
                try:  # the service may name a snapshot the table lacks: fall back to the job's model
                    self._price_cache[name] = self._prices.price_for(self.spec.endpoint.model)
                except UnknownModelError:
                    self._price_cache[name] = None
        price = self._price_cache[name]
        if price is None:
            self.tally.unpriced_models.add(name)
            return
        p, c = o.prompt_tokens or 0, o.completion_tokens or 0
        self.tally.cost_usd += cost(p, c, price)
        self.tally.batch_cost_usd += cost(p, c, price, batch=True)

    async def _resize(self, window: Window) -> None:
        while True:
            await asyncio.sleep(1.0)
            target = self._window_target(window.active)
            if target != window.size:
                await window.resize(target)


async def run_job(
    spec: JobSpec,
    *,
    credential: Credential | None = None,
    environ: Mapping[str, str] | None = None,
    show_progress: bool = True,
) -> RunSummary:
    """Run (or resume) a job to completion. Raises RunStopped if it stops early, state kept."""
    runner = Runner(spec, credential=credential, environ=environ, show_progress=show_progress)
    return await runner.run()
