"""The Batch API route: the job's request plan as JSONL shards, submitted, polled and merged.

``run``: (1) shards written before a kill but not yet submitted are submitted; (2) rows that are
neither done nor in an unmerged shard are planned (the SAME planner and body composition as the
online route), written into shards and each shard submitted as it closes, while the enqueued
tokens of active shards leave room; (3) active shards are polled every ``poll_seconds`` and each
finished one is merged into the result store, its retryable lines written into a new shard; (4)
with every row done, the result file is assembled. ``detach`` stops after (2); with
``finish_online``, what an expired batch left undone is not resubmitted but left to the online
route, which the caller runs next.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import replace

import aiohttp

from ...core import CostMeter, Failure, JobSpec, Outcome, RowError, RunStopped, WorkItem, load_prices
from ...ledger import LineMeta, ShardBook, ShardRecord
from ...send import BatchApi, Credential, batch_line_url
from ..progress import RunSummary, Tally
from ..rows import RowRequests
from .collect import collect_rows, parse_lines
from .lines import LineOut, ShardLimits, ShardWriter, custom_id_of, line_bytes
from .setup import RouteSetup
from .ship import Downloaded, Shipper, job_tag

__all__ = ["BatchRoute"]


class BatchRoute:
    def __init__(
        self, spec: JobSpec, setup: RouteSetup, credential: Credential, *, detach: bool, finish_online: bool = False
    ) -> None:
        self.spec = spec
        self.finish_online = finish_online
        self.setup = setup
        self.credential = credential
        self.detach = detach
        self.book = ShardBook(spec.output.path, setup.info.num_rows)
        self.tally = Tally(setup.info.num_rows)
        self.costs = CostMeter(load_prices(), spec.endpoint.model)
        limits = ShardLimits.for_kind(spec.endpoint.kind, shard_lines=setup.shard_lines, quota=setup.quota)
        self.writer = ShardWriter(self.book, limits)
        self.max_tries = 1 + spec.run.max_resubmits
        self.merged_now: set[int] = set()
        self.resubmitted = 0

    def say(self, text: str) -> None:
        print(f"batch: {text}", file=sys.stderr)

    async def run(self) -> RunSummary:
        started = time.monotonic()
        store = self.setup.store
        self.tally.already_done = await asyncio.to_thread(store.open)
        await asyncio.to_thread(self.book.open)
        async with aiohttp.ClientSession() as session:
            api = BatchApi(session, self.setup.target, self.credential, rng=random.Random())
            self.ship = Shipper(
                api, self.book, job_tag(self.spec.output.path), say=self.say,
                poll_seconds=self.spec.run.poll_seconds, quota=self.setup.quota,
            )  # fmt: skip
            rows = self.setup.row_requests(session)
            try:
                if await self._submit_waiting():
                    await self._write_new_rows(rows)
                if not self.detach:
                    await self._poll_until_done()
            finally:
                rows.close()
                await asyncio.to_thread(store.close)
        self.tally.requests = self.ship.lines_submitted
        complete = bool(store.done.all())
        if complete:
            await asyncio.to_thread(store.assemble, self.setup.manifest)
        summary = RunSummary(self.spec.output.path, self.tally, time.monotonic() - started, complete)
        if not complete and not self.detach and not self.finish_online:
            raise RunStopped(summary.render())
        return summary

    # ---- writing and submitting ------------------------------------------------------------------

    async def _submit_waiting(self) -> bool:
        """Submit written shards without a batch, oldest first. False: detached with the quota full."""
        for record in sorted(self.book.shards.values(), key=lambda r: r.number):
            if record.batch_id is None and not record.merged:
                if not await self._submit(record):
                    return False
        return True

    async def _submit(self, record: ShardRecord) -> bool:
        """Upload and create, waiting for room in the enqueued-token quota (polling meanwhile)."""
        await self.ship.upload(record)
        tries = 0
        while True:
            if self.ship.room_for(record) and await self.ship.create(record):
                return True
            if self.detach:
                self.say(f"shard {record.number} waits for enqueued-token quota; run again to submit it")
                return False
            await self._poll_round()
            await self.ship.backoff(tries)
            tries += 1

    async def _write_new_rows(self, rows: RowRequests) -> None:
        store = self.setup.store
        skip = store.done | self.book.open_rows()
        if self.finish_online:  # rows an expired batch left undone are the online route's
            skip |= self.book.claimed > 0
        for item in self.setup.manifest.items(skip=skip):
            lines = await self._plan_row(rows, item)
            if lines is None:
                continue
            closed = self.writer.add_row(lines)
            if closed is not None and not await self._submit(self.book.shards[closed]):
                return
        closed = self.writer.close()
        if closed is not None:
            await self._submit(self.book.shards[closed])

    async def _plan_row(self, rows: RowRequests, item: WorkItem) -> list[LineOut] | None:
        """The row's request lines; None when the row ends here as an error row."""
        url, out, part = batch_line_url(self.spec.endpoint.kind), [], 0
        row = None
        try:
            row = await rows.start(item)
            metas: list[tuple[LineMeta, bytes, int]] = []
            while (p := await rows.next_part(row)) is not None:
                req, cid = p.request, f"{item.index}-{part}"
                meta = LineMeta(
                    cid, item.index, part, 0, row.plan.is_document, p.pages, p.ocr, req.detail,
                    req.estimate.image_tokens, req.estimate.prompt_tokens, req.image_note,
                )  # fmt: skip
                metas.append((meta, line_bytes(cid, url, req.body), req.estimate.admission))
                part += 1
        except RowError as exc:
            self._record(Outcome(item.index, "error", error=Failure(exc.code, str(exc))))
            return None
        finally:
            if row is not None:
                row.close()
        out = [LineOut(replace(m, parts=len(metas)), data, t) for m, data, t in metas]
        why = self.writer.too_large(out)
        if why is not None:
            self._record(Outcome(item.index, "error", error=Failure("too_large_for_batch", f"row not sent: {why}")))
            return None
        return out

    # ---- polling and merging ---------------------------------------------------------------------

    async def _poll_until_done(self) -> None:
        while self.book.active() or any(r.batch_id is None and not r.merged for r in self.book.shards.values()):
            await self._submit_waiting()
            await self._poll_round()
            if self.book.active():
                await asyncio.sleep(self.spec.run.poll_seconds)
        for record in list(self.book.shards.values()):  # merged before a kill, not yet cleaned up
            if record.merged:
                await self.ship.clean(record, outputs=self.spec.run.delete_output_files)

    async def _poll_round(self) -> None:
        for record in list(self.book.active()):
            downloaded = await self.ship.poll(record)
            if downloaded is not None:
                await self._merge(record, downloaded)

    async def _merge(self, record: ShardRecord, got: Downloaded) -> None:
        store, n = self.setup.store, record.number
        metas = await asyncio.to_thread(lambda: list(self.book.metas(n)))
        if got.status == "failed":
            code, message = got.job_errors[0] if got.job_errors else ("batch_failed", "the batch failed")
            self.say(f"batch {got.batch_id} (shard {n}) failed: " + "; ".join(f"{c}: {m}" for c, m in got.job_errors))
            lines = {
                m.custom_id: {"custom_id": m.custom_id, "error": {"code": code, "message": message}} for m in metas
            }
        else:
            lines = {**parse_lines(got.errors), **parse_lines(got.output)}
        outcomes, again = collect_rows(
            metas, lines, got.batch_id, max_tries=self.max_tries, fmt=self.spec.output.format
        )
        for o in outcomes:
            if not (store.done[o.index] or o.index in self.merged_now or self.book.claimed[o.index] > n):
                self._record(o)
        await asyncio.to_thread(store.close)
        again = [m for m in again if self.book.claimed[m.row] <= n]
        if got.status == "expired" and self.finish_online:
            again = []  # left undone here: the online route sends them once the batches are merged
        if again:
            await asyncio.to_thread(self._write_resubmits, n, again)
        self.book.record(n, merged=True, status=got.status)
        await self.ship.clean(record, outputs=self.spec.run.delete_output_files)

    def _write_resubmits(self, number: int, again: list[LineMeta]) -> None:
        """Copy the lines to resubmit from their shard into new shards (submitted by the poll loop)."""
        wanted = {m.custom_id: m for m in again}
        writer = ShardWriter(self.book, self.writer.limits)
        rows: dict[int, list[LineOut]] = {}
        with self.book.shard_path(number).open("rb") as fh:
            for raw in fh:
                meta = wanted.get(custom_id_of(raw))
                if meta is not None:
                    tokens = (meta.prompt_tokens or 0) + self.spec.prompt.max_tokens
                    rows.setdefault(meta.row, []).append(LineOut(meta, raw, tokens))
        for lines in rows.values():
            writer.add_row(lines)
        writer.close()
        self.resubmitted += len(again)
        self.say(f"shard {number}: {len(again)} lines to resubmit")

    def _record(self, o: Outcome) -> None:
        self.setup.store.add(o)
        self.merged_now.add(o.index)
        self.tally.add(o)
        usage, model = o.usage, o.answer.model if o.answer is not None else None
        standard, batch = self.costs.add(
            model, usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None
        )
        self.tally.cost_usd += standard
        self.tally.batch_cost_usd += batch
