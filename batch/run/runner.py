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
from functools import partial
from typing import Any

import aiohttp

from ..core import (
    Answer,
    ApiError,
    CostMeter,
    Failure,
    FatalApiError,
    JobSpec,
    OcrMode,
    Outcome,
    RowError,
    RunStopped,
    Sent,
    Status,
    TransientApiError,
    WorkItem,
    load_prices,
    lookup_model,
)
from ..inputs import Manifest
from ..ledger import ResultStore
from ..ocr import check_ocr_setup, vision_key
from ..plan import PreparedRequest, RequestBuilder
from ..send import (
    Attempts,
    ByteBudget,
    ChatClient,
    Credential,
    Failed,
    LimiterPacing,
    LiveStats,
    RateLimiter,
    Reply,
    RetryPolicy,
    Target,
    Window,
    credential_for,
    fatal_advice,
)
from .paged import PagedRows
from .progress import ProgressBar, RunSummary, Tally

# A row that runs out of attempts while nothing has succeeded for this long is a victim of an
# outage, not a bad row: the run stops (resumable) instead of writing error rows for everything.
OUTAGE_S = 60.0
# Connection refusals before any request ever succeeded: the endpoint URL is wrong or down.
UNREACHABLE_AFTER = 3
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
        self.attempts = Attempts(self.policy, watch=self, rng=self._rng)
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
        self.paged: PagedRows | None = None

    # ---- one row ------------------------------------------------------------------------------

    async def process(self, client: ChatClient, item: WorkItem) -> Outcome | None:
        """Everything for one row. Returns None if the run is stopping and the row stays undone."""
        try:
            mode = self.paged.mode_for(item) if self.paged is not None else "off"
            req = None if mode != "off" else await asyncio.to_thread(self._build_image_row, item)
            if req is None:
                return await self._process_pages(client, item, mode)
        except RowError as exc:
            return Outcome(item.index, "error", error=Failure(exc.code, str(exc)))
        return await self._send_held(client, item, req)

    def _build_image_row(self, item: WorkItem) -> PreparedRequest | None:
        """The request of a plain image row, or None for a document (one thread hop for both)."""
        if self.paged is not None and self.paged.is_document(item):
            return None
        return self.builder.build(item)

    async def _process_pages(self, client: ChatClient, item: WorkItem, mode: OcrMode) -> Outcome | None:
        """A document or OCR-assisted row: several requests, merged (see ``paged.py``)."""
        assert self.paged is not None

        async def send(req: PreparedRequest, url: str | None) -> Outcome | None:
            return await self._send_held(client, item, req, url)

        try:
            return await self.paged.process(item, mode, send)
        except FatalApiError as exc:  # the Vision resource refused our key or endpoint
            self._halt(
                f"{exc}\n  what to fix: check [ocr].vision_endpoint and that the key in "
                f"${self.spec.ocr.vision_key_env} belongs to that Azure AI Vision resource"
            )
            return None

    async def _send_held(
        self, client: ChatClient, item: WorkItem, req: PreparedRequest, url: str | None = None
    ) -> Outcome | None:
        async with self._bytes.hold(len(req.body)):
            return await self._send(client, item, req, url)

    async def _send(
        self, client: ChatClient, item: WorkItem, req: PreparedRequest, url: str | None = None
    ) -> Outcome | None:
        """Attempts for one built request (the loop: ``send.Attempts``), and the row's outcome."""
        pacing = LimiterPacing(self.limiter, req.estimate.admission, req.size_estimate)
        result = await self.attempts.run(partial(self._on_the_wire, client, req.body, url), pacing)
        if isinstance(result, Failed):
            return self._failed(item, req, result)
        self._last_success = time.monotonic()
        self._live.observe(result.wire_s, req.estimate.admission)
        c = result.reply.completion
        status: Status = "filtered" if c.finish_reason == "content_filter" else "ok"
        return Outcome(
            item.index,
            status,
            answer=Answer(c.answer, c.finish_reason, c.usage, c.model),
            sent=_sent(req),
            grounding=c.grounding,
            attempts=result.attempts,
            latency_ms=result.elapsed_s * 1000,
            request_id=c.request_id,
        )

    def _failed(self, item: WorkItem, req: PreparedRequest, result: Failed) -> Outcome | None:
        """The row's outcome for a request that got no reply; None when the run stops instead."""
        exc = result.error
        if result.kind == "stopped":
            return None
        if result.kind == "fatal":
            assert isinstance(exc, FatalApiError)
            self._halt(fatal_advice(exc, self.spec.endpoint, self.target))
            return None
        assert exc is not None
        if result.kind == "exhausted":
            quiet = time.monotonic() - (self._last_success or self._started)
            if quiet >= OUTAGE_S:
                self._halt(f"no request has succeeded for {quiet:.0f} s; the last error: {exc}")
                return None
        status: Status = "filtered" if result.kind == "filtered" else "error"
        return self._outcome(item, req, status, result, exhausted=result.kind == "exhausted")

    # ---- what the run hears of each attempt (send.Watch) ----------------------------------------

    def stopping(self) -> bool:
        return self._stop.is_set()

    def on_attempt(self) -> None:
        self.tally.requests += 1

    def on_throttled(self) -> None:
        self.tally.throttled += 1

    def on_transient(self, error: TransientApiError) -> None:
        if error.code != "connect_error":
            return
        self._connect_errors += 1
        if self._last_success is None and self._connect_errors >= UNREACHABLE_AFTER:
            self._halt(f"{error}\n  what to fix: check [endpoint].url / --endpoint, or whether the service is up")

    async def _on_the_wire(self, client: ChatClient, body: bytes, url: str | None) -> Reply:
        """One attempt, counted while it is on the wire (the window's sizing reads the count)."""
        self._on_wire += 1
        try:
            return await client.send(body, url=url)
        finally:
            self._on_wire -= 1

    def _outcome(
        self, item: WorkItem, req: PreparedRequest, status: Status, result: Failed, *, exhausted: bool = False
    ) -> Outcome:
        exc = result.error
        msg = str(exc) if exc is not None else None
        if exhausted and msg:
            msg = f"gave up after {result.attempts} attempts; last: {msg}"
        return Outcome(
            item.index,
            status,
            error=Failure(exc.code if exc is not None else None, msg),
            sent=_sent(req),
            attempts=result.attempts,
            latency_ms=result.elapsed_s * 1000,
            request_id=exc.request_id if isinstance(exc, ApiError) else None,
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
                self.paged = self._paged_rows(session)
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
            if self.paged is not None:
                self.paged.close()
            close = getattr(self.credential, "close", None)
            if close is not None:
                await close()

    def _paged_rows(self, session: aiohttp.ClientSession) -> PagedRows:
        ocr = self.spec.ocr
        classic = self.target.kind == "azure" and ocr.vision_endpoint is not None
        return PagedRows.for_run(
            self.spec,
            self.model,
            self.builder,
            session,
            extensions_url=self.target.extensions_url(ocr.enhancements_api_version) if classic else None,
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
                    message = f"unexpected {type(exc).__name__}: {exc}"[:600]
                    outcome = Outcome(item.index, "error", error=Failure("internal_error", message))
                if outcome is not None:
                    # Journaled before the row leaves the window: a kill can lose only rows in it.
                    self._record(outcome, bar)
            finally:
                await window.leave()

    def _record(self, o: Outcome, bar: ProgressBar) -> None:
        self.store.add(o)
        self.tally.add(o)
        usage, model = o.usage, o.answer.model if o.answer is not None else None
        standard, batch = self._costs.add(
            model, usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None
        )
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


def _sent(req: PreparedRequest) -> Sent:
    return Sent(req.detail, req.estimate.image_tokens, req.estimate.prompt_tokens, req.image_note)


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
