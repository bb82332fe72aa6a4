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

from ..core import (
    ApiError,
    ContentFilteredError,
    CostMeter,
    FatalApiError,
    JobSpec,
    Outcome,
    RateLimitedError,
    RowError,
    RunStopped,
    Status,
    TransientApiError,
    WorkItem,
    load_prices,
    lookup_model,
)
from ..inputs import Manifest
from ..ledger import ResultStore
from ..ocr import check_ocr_setup, vision_key
from ..plan import OcrAccess, Planner, PreparedRequest, RequestBuilder
from ..send import (
    ByteBudget,
    ChatClient,
    Credential,
    LiveStats,
    RateLimiter,
    Reply,
    RetryPolicy,
    Target,
    Window,
    credential_for,
    fatal_advice,
    retry_delay,
    should_retry,
    throttle_kind,
)
from .merge import PartResult, merge_parts
from .progress import ProgressBar, RunSummary, Tally
from .rows import RowParts, RowRequests

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
            retry_errors=spec.output.retry_errors,
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
        self._flush_wanted = asyncio.Event()
        self._on_wire = 0
        self._writer_done = asyncio.Event()
        self._started = time.monotonic()
        self._last_success: float | None = None
        self._connect_errors = 0
        self._costs = CostMeter(load_prices(), spec.endpoint.model)
        self._vision_key = vision_key(spec, env)
        check_ocr_setup(spec, supports_enhancements=self.model.supports_enhancements, key=self._vision_key)
        self.planner = Planner(spec, self.model, access=self._ocr_access())
        self.rows: RowRequests | None = None

    # ---- one row ------------------------------------------------------------------------------

    async def process(self, client: ChatClient, item: WorkItem) -> Outcome | None:
        """Every request of one row's plan, sent in turn; the row's outcome. None if the run is
        stopping and the row stays undone. A part that ends in an error ends the row."""
        assert self.rows is not None
        started = time.monotonic()
        row: RowParts | None = None
        parts: list[PartResult] = []
        try:
            row = await self.rows.start(item)
            while (part := await self.rows.next_part(row)) is not None:
                outcome = await self._send_held(client, item, part.request, row.url)
                if outcome is None or row.single:
                    return outcome
                parts.append(PartResult(part.pages, outcome, part.ocr))
                if outcome.status == "error":
                    break
        except RowError as exc:
            return Outcome(item.index, "error", error_code=exc.code, error_message=str(exc))
        except FatalApiError as exc:  # the Vision resource refused our key or endpoint
            self._halt(
                f"{exc}\n  what to fix: check [ocr].vision_endpoint and that the key in "
                f"${self.spec.ocr.vision_key_env} belongs to that Azure AI Vision resource"
            )
            return None
        finally:
            if row is not None:
                row.close()
        return merge_parts(item.index, parts, row.plan.detail, started=started, document=row.plan.is_document)

    async def _send_held(
        self, client: ChatClient, item: WorkItem, req: PreparedRequest, url: str | None = None
    ) -> Outcome | None:
        async with self._bytes.hold(len(req.body)):
            return await self._send(client, item, req, url)

    async def _send(
        self, client: ChatClient, item: WorkItem, req: PreparedRequest, url: str | None = None
    ) -> Outcome | None:
        """Attempts for one built request: pacing, retries, and the row's outcome."""
        attempts = throttled = 0
        retried_not_found = False
        started = time.monotonic()
        last: ApiError | None = None
        while not self._stop.is_set():
            try:
                permit = await self.limiter.acquire(req.estimate.admission, req.size_estimate)
            except RowError as exc:
                return self._outcome(item, req, "error", attempts, started, code=exc.code, message=str(exc))
            attempts += 1
            self.tally.requests += 1
            sent = time.monotonic()
            try:
                reply = await self._on_the_wire(client, req.body, url)
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
                self._halt(fatal_advice(exc, self.spec.endpoint, self.target))
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
                grounding=c.grounding,
            )
        if self._stop.is_set():
            return None
        assert last is not None
        quiet = time.monotonic() - (self._last_success or self._started)
        if quiet >= OUTAGE_S:
            self._halt(f"no request has succeeded for {quiet:.0f} s; the last error: {last}")
            return None
        return self._outcome(item, req, "error", attempts, started, exc=last, exhausted=True)

    async def _on_the_wire(self, client: ChatClient, body: bytes, url: str | None) -> Reply:
        """One attempt, counted while it is on the wire (the window's sizing reads the count)."""
        self._on_wire += 1
        try:
            return await client.send(body, url=url)
        finally:
            self._on_wire -= 1

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

    def _window_target(self) -> int:
        if self.spec.limits.concurrency:
            return self.spec.limits.concurrency
        rate = self.limiter.max_request_rate(self._live.estimate)
        if rate is None:
            return _UNLIMITED_WINDOW
        # Little's law: rows in flight = rate x latency, with headroom for jitter and rows being
        # prepared; and never fewer than the windows could admit right now (the first minute's burst).
        # Rows waiting in the limiter's queue do not count as on the wire: counting them made the
        # window only ever grow (to 1024 where Little's law asks for 6-80).
        steady = math.ceil(rate * self._live.latency_s * 1.5) + 2
        free = self.limiter.free_requests(self._live.estimate) or 0
        return max(_MIN_WINDOW, min(_MAX_WINDOW, max(steady, self._on_wire + free)))

    async def run(self) -> RunSummary:
        started = time.monotonic()
        done_before = await asyncio.to_thread(self.store.open)
        self.tally.already_done, self.tally.retried = done_before, self.store.retried
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
        window = Window(self._window_target())
        items: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=256)
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
                self.rows = self._row_requests(session)
                feeder = asyncio.create_task(self._feed(items, n_workers))
                writer = asyncio.create_task(self._write())
                sizer = asyncio.create_task(self._resize(window))
                workers = [asyncio.create_task(self._work(client, items, window, bar)) for _ in range(n_workers)]
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
                self._writer_done.set()
                await writer
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            bar.close()
            if self.rows is not None:
                self.rows.close()
            close = getattr(self.credential, "close", None)
            if close is not None:
                await close()

    def _extensions_url(self) -> str | None:
        """The legacy enhancements' URL: a classic Azure deployment with a Vision resource."""
        ocr = self.spec.ocr
        classic = self.target.kind == "azure" and ocr.vision_endpoint is not None
        return self.target.extensions_url(ocr.enhancements_api_version) if classic else None

    def _ocr_access(self) -> OcrAccess:
        has_key = self._vision_key is not None
        read = self.spec.ocr.vision_endpoint is not None and has_key
        return OcrAccess(extensions_url=self._extensions_url(), vision_key=has_key, read=read)

    def _row_requests(self, session: aiohttp.ClientSession) -> RowRequests:
        return RowRequests.for_run(
            self.spec,
            self.model,
            self.planner,
            self.builder,
            session,
            extensions_url=self._extensions_url(),
            vision_key=self._vision_key,
            policy=self.policy,
            rng=self._rng,
        )

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
        window: Window,
        bar: ProgressBar,
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
                if outcome is not None:
                    # Journaled before the row leaves the window: a kill can lose only rows in it.
                    self._record(outcome, bar)
            finally:
                await window.leave()

    def _record(self, o: Outcome, bar: ProgressBar) -> None:
        self.store.add(o)
        self.tally.add(o)
        standard, batch = self._costs.add(o.model, o.prompt_tokens, o.completion_tokens)
        self.tally.cost_usd += standard
        self.tally.batch_cost_usd += batch
        self.tally.unpriced_models |= self._costs.unpriced
        bar.advance(
            1,
            tokens_per_min=self.limiter.charged_last_window(),
            tpm=self.limiter.tpm,
            throttled=self.tally.throttled,
            cost_usd=self.tally.cost_usd,
        )
        if self.store.flush_due:
            self._flush_wanted.set()

    async def _write(self) -> None:
        """Turn journaled rows into part files when enough are buffered or the flush timer runs out."""
        store = self.store
        while not self._writer_done.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._flush_wanted.wait(), timeout=0.5)
            self._flush_wanted.clear()
            if store.flush_due:
                await asyncio.to_thread(store.flush, store.take_buffer())
        await asyncio.to_thread(store.close)

    async def _resize(self, window: Window) -> None:
        while True:
            await asyncio.sleep(1.0)
            target = self._window_target()
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
