"""The asyncio worker pool: manifest → request → limiter → client → retry → result store.

One task feeds manifest rows (streamed, done rows skipped) into a small queue; worker tasks take a
row only when the in-flight window has room, build its request in a thread, wait for the limiter,
send it, retry what is worth retrying, and hand the row's outcome to the writer task, which flushes
part files. The window sizes itself from the limits and the observed latency (Little's law) unless
the job fixes a concurrency. A fatal API error (bad key, wrong deployment, quota gone) or a signal
stops the run: no new rows are taken, outcomes already produced are flushed, and the exception
tells the user that running the same job again resumes. With several deployments (:mod:`.pool`)
a row goes to the one that would admit it soonest, and a fatal error takes only that deployment
out: the run stops when none is left.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
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
)
from ..inputs import Manifest
from ..ledger import ResultStore, write_failure
from ..ocr import check_ocr_setup, vision_key
from ..send import Credential, RateLimiter, Window
from .members import build_pool, connect, disconnect
from .merge import PartResult, merge_parts
from .pool import CAPABILITY_CODES, Member
from .progress import ProgressBar, RunSummary, Tally
from .rows import RowParts
from .stopping import Stopper
from .writer import write_parts

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
        self.spec = spec
        self._progress_every = progress_every
        self.on_send = on_send  # called once, when the checks passed and some row will be sent
        env = os.environ if environ is None else environ
        self._vision_key = vision_key(spec, env)
        self.tally = Tally(0)
        self._rng = random.Random(seed)
        self._stopper = Stopper()
        self._stop = self._stopper.event
        # Every deployment checked (model known, key set) before the manifest is even opened.
        self.pool = build_pool(
            spec, credential, env, self._vision_key, tally=self.tally, stop=self._stop, halt=self._halt, rng=self._rng
        )
        first = self.pool.members[0]
        self.model, self.target = first.model, first.target
        self.manifest = Manifest(spec.input.manifest, spec.input.columns, spec.input.batch_rows)
        self.info = self.manifest.check()
        self.tally.total_rows = self.info.num_rows
        self.store = ResultStore.for_job(spec, self.info)
        self._show_progress = show_progress
        self._flush_wanted = asyncio.Event()
        self._writer_done = asyncio.Event()
        self._costs = CostMeter(load_prices(), spec.endpoint.model)
        enhancer = next((m for m in self.pool.members if m.model.supports_enhancements), first)
        check_ocr_setup(
            replace(spec, endpoint=enhancer.ep),
            supports_enhancements=enhancer.model.supports_enhancements,
            key=self._vision_key,
        )

    @property
    def limiter(self) -> RateLimiter:
        """The first deployment's limiter (the only one without a pool)."""
        return self.pool.members[0].limiter

    # ---- one row ------------------------------------------------------------------------------

    async def process(self, item: WorkItem) -> Outcome | None:
        """The row sent to the deployment that would admit it soonest among those that can take it;
        sent elsewhere when that one leaves the pool (or, in a pool, runs out of attempts). None if
        the run is stopping and the row stays undone."""
        tried: list[Member] = []
        refusals: list[str] = []
        final = False  # every live deployment tried once: the next try's outcome is the row's
        while not self._stop.is_set():
            member = self.pool.choose(tried)
            if member is None:
                if final or refusals or not self.pool.live():
                    break
                final, tried = True, []
                continue
            tried.append(member)
            member.busy += 1
            try:
                outcome = await self._process_on(member, item, final or self.pool.choose(tried) is None)
            finally:
                member.busy -= 1
            if outcome is None:
                continue
            if self.pool.pooled and outcome.attempts == 0 and outcome.error_code in CAPABILITY_CODES:
                refusals.append(f"{member.label}: {outcome.error.message if outcome.error else ''}")
                continue
            return replace(outcome, answered_by=member.label) if outcome.attempts else outcome
        if refusals and not self._stop.is_set():
            reasons = "; ".join(refusals)
            return Outcome(
                item.index,
                "error",
                error=Failure("no_capable_deployment", f"no deployment can take the row: {reasons}"),
            )
        return None

    async def _process_on(self, member: Member, item: WorkItem, last_chance: bool) -> Outcome | None:
        """Every request of one row's plan on one deployment, sent in turn; the row's outcome.
        A part that ends in an error ends the row."""
        rows, sender, client = member.rows, member.sender, member.client
        assert rows is not None and sender is not None and client is not None
        started = time.monotonic()
        row: RowParts | None = None
        parts: list[PartResult] = []
        try:
            row = await rows.start(item)
            while (part := await rows.next_part(row)) is not None:
                outcome = await sender.send(client, item.index, part.request, row.url, last_chance=last_chance)
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
        return sum(m.sender.on_wire for m in self.pool.members if m.sender is not None)

    def _halt(self, reason: str) -> None:
        self._stopper.halt(reason)

    # ---- the pool -----------------------------------------------------------------------------

    def _window_target(self) -> int:
        if self.spec.limits.concurrency:
            return self.spec.limits.concurrency
        shares = [m.window_share() for m in self.pool.live()]
        if not shares or any(share is None for share in shares):
            return _UNLIMITED_WINDOW
        return max(_MIN_WINDOW, min(_MAX_WINDOW, sum(share or 0 for share in shares)))

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
                connect(self.pool, self.spec, session, self._vision_key, self._rng)
                feeder = asyncio.create_task(self._feed(items, n_workers))
                writer = asyncio.create_task(write_parts(self.store, self._flush_wanted, self._writer_done, self._halt))
                sizer = asyncio.create_task(self._resize(window))
                workers = [asyncio.create_task(self._work(items, window, bar)) for _ in range(n_workers)]
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
            await disconnect(self.pool)

    async def _feed(self, items: asyncio.Queue[WorkItem | None], n_workers: int) -> None:
        for item in self.manifest.items(skip=self.store.done.copy()):
            if self._stop.is_set():
                break
            await items.put(item)
        for _ in range(n_workers):
            await items.put(None)

    async def _work(
        self,
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
                    outcome = await self.process(item)
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
        live = self.pool.live() or self.pool.members
        tpms = [m.limiter.tpm for m in live]
        bar.advance(
            1,
            tokens_per_min=sum(m.limiter.charged_last_window() for m in live),
            tpm=None if None in tpms else sum(t or 0 for t in tpms),
            deployments=self.pool.tokens_text(),
            tally=self.tally,
        )
        if self.store.flush_due:
            self._flush_wanted.set()

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
