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
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any, TypedDict, Unpack

import aiohttp

from ..core import (
    CostMeter,
    Failure,
    FatalApiError,
    JobSpec,
    Outcome,
    RowError,
    RunStopped,
    WorkItem,
    load_prices,
    lookup_model,
)
from ..inputs import Manifest
from ..ledger import ResultStore, result_layout, write_failure
from ..ocr import check_ocr_setup, vision_key
from ..plan import OcrAccess, Planner, RequestBuilder
from ..send import (
    ChatClient,
    Credential,
    RateLimiter,
    Target,
    Window,
    credential_for,
)
from .merge import PartResult, merge_parts
from .progress import ProgressBar, RunSummary, Tally
from .rows import RowParts, RowRequests
from .sender import RequestSender
from .stopping import Stopper

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
        on_send: Callable[[], None] | None = None,
        progress_every: float = 10.0,
    ) -> None:
        self._progress_every = progress_every
        self.spec = spec
        self.on_send = on_send  # called once, when the checks passed and some row will be sent
        env = os.environ if environ is None else environ
        self.model = lookup_model(spec.endpoint.model, spec.endpoint.catalogue)
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
            layout=result_layout(spec.output.format),
        )
        self.builder = RequestBuilder(spec, self.model, self.target.model_in_body)
        self.limiter = RateLimiter(
            spec.limits.tpm,
            spec.limits.effective_rpm,
            request_header_window=60.0 if spec.endpoint.kind == "openai" else 10.0,
        )
        self.tally = Tally(self.info.num_rows)
        self._rng = random.Random(seed)
        self._show_progress = show_progress
        self._stopper = Stopper()
        self._stop = self._stopper.event
        self.sender = RequestSender(spec, self.target, self.limiter, self.tally, self._stop, self._halt, rng=self._rng)
        self._flush_wanted = asyncio.Event()
        self._writer_done = asyncio.Event()
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
                outcome = await self.sender.send(client, item.index, part.request, row.url)
                if outcome is None or row.single:
                    return outcome
                parts.append(PartResult(part.pages, outcome, part.ocr))
                if outcome.status == "error":
                    break
        except RowError as exc:
            return Outcome(item.index, "error", error=Failure(exc.code, str(exc)))
        except FatalApiError as exc:  # the Vision resource refused our key or endpoint
            self._halt(
                f"{exc}\n  what to fix: check [ocr].vision_endpoint and that the key in "
                f"${self.spec.ocr.vision_key_env} belongs to that Azure AI Vision resource"
            )
            return None
        finally:
            if row is not None:
                row.close()
        plan = row.plan
        return merge_parts(item.index, parts, plan.detail, started=started, document=plan.is_document, unit=plan.unit)

    def _on_wire(self) -> int:
        return self.sender.on_wire

    def _halt(self, reason: str) -> None:
        self._stopper.halt(reason)

    # ---- the pool -----------------------------------------------------------------------------

    def _window_target(self) -> int:
        if self.spec.limits.concurrency:
            return self.spec.limits.concurrency
        rate = self.limiter.max_request_rate(self.sender.live.estimate)
        if rate is None:
            return _UNLIMITED_WINDOW
        # Little's law: rows in flight = rate x latency, with headroom for jitter and rows being
        # prepared; and never fewer than the windows could admit right now (the first minute's burst).
        # Rows waiting in the limiter's queue do not count as on the wire: counting them made the
        # window only ever grow (to 1024 where Little's law asks for 6-80).
        steady = math.ceil(rate * self.sender.live.latency_s * 1.5) + 2
        free = self.limiter.free_requests(self.sender.live.estimate) or 0
        return max(_MIN_WINDOW, min(_MAX_WINDOW, max(steady, self.sender.on_wire + free)))

    async def run(self) -> RunSummary:
        started = time.monotonic()
        done_before = await asyncio.to_thread(self.store.open)
        self.tally.already_done, self.tally.retried = done_before, self.store.retried
        if done_before < self.info.num_rows:
            if self.on_send is not None:
                self.on_send()
            await self._run_pool(done_before)
        complete = bool(self.store.done.all())
        if complete:
            try:
                await asyncio.to_thread(self.store.assemble, self.manifest)
            except OSError as exc:
                complete = False
                self._halt(write_failure(self.spec.output.path, exc))
        meter = CostMeter(load_prices(), self.spec.endpoint.model)
        await asyncio.to_thread(self.tally.count_output_cost, self.store.recorded_usage(), meter)
        wall_s = time.monotonic() - started
        summary = RunSummary(self.spec.output.path, self.tally, wall_s, complete, self._stopper.reason)
        if not complete:
            raise RunStopped(summary.render())
        return summary

    async def _run_pool(self, done_before: int) -> None:
        window = Window(self._window_target())
        items: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=256)
        bar = ProgressBar(self.info.num_rows, done_before, enabled=self._show_progress, interval_s=self._progress_every)
        loop = asyncio.get_running_loop()
        self._stopper.install(loop)
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
                    await self._stopper.drain(workers, self._on_wire, self.spec.endpoint.timeout_s, bar.note)
                helpers: list[asyncio.Future[Any]] = [feeder, sizer, stopper, everyone, *workers]
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                self._writer_done.set()
                await writer
        finally:
            self._stopper.remove(loop)
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
            policy=self.sender.policy,
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
                    try:
                        self._record(outcome, bar)
                    except OSError as exc:  # disk full, mount turned read-only: stop, keep what is written
                        self._halt(write_failure(self.spec.output.path, exc))
            finally:
                await window.leave()

    def _record(self, o: Outcome, bar: ProgressBar) -> None:
        self.store.add(o)
        self.tally.add(o, self._costs)
        bar.advance(1, tokens_per_min=self.limiter.charged_last_window(), tpm=self.limiter.tpm, tally=self.tally)
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
                await self._flush(store.flush, store.take_buffer())
        await self._flush(lambda _: store.close(), None)

    async def _flush(self, write: Callable[[Any], None], taken: Any) -> None:
        try:
            await asyncio.to_thread(write, taken)
        except OSError as exc:  # the journal still holds these rows: a resume recovers them
            self._halt(write_failure(self.spec.output.path, exc))

    async def _resize(self, window: Window) -> None:
        while True:
            await asyncio.sleep(1.0)
            target = self._window_target()
            if target != window.size:
                await window.resize(target)


class RunOptions(TypedDict, total=False):
    credential: Credential | None
    environ: Mapping[str, str] | None
    show_progress: bool
    on_send: Callable[[], None] | None  # called once the checks passed, if any row is left to send
    progress_every: float  # seconds between plain progress lines when stderr is not a terminal


async def run_job(spec: JobSpec, **options: Unpack[RunOptions]) -> RunSummary:
    """Run (or resume) a job to completion. Raises RunStopped if it stops early, state kept."""
    return await Runner(spec, **options).run()
