"""A shard's trip through the service: upload, create, poll, download, clean up, each step
recorded in the :class:`~batch.ledger.ShardBook` before the next.

After a kill between a step and its record, the next run finds what the service already has
instead of doing it twice: the uploaded file by its name and size, the created batch by its
metadata (``vision_batch_job`` = a tag of the job's output path, ``vision_batch_shard`` = the
shard number). Statuses are compared case-insensitively (Azure's examples say ``Completed``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core import ApiError, RunStopped
from ...ledger import ShardBook, ShardRecord
from ...send import BatchApi

__all__ = ["ACTIVE", "TERMINAL", "Downloaded", "Shipper", "job_tag"]

ACTIVE = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Pages of the batch list searched for a batch created but not recorded.
_LIST_PAGES = 20
_MAX_BACKOFF_S = 3600.0


def job_tag(output: Path) -> str:
    return hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Downloaded:
    status: str
    batch_id: str
    output: bytes
    errors: bytes
    job_errors: tuple[tuple[str, str], ...]  # (code, message) of errors.data[]


class Shipper:
    def __init__(
        self,
        api: BatchApi,
        book: ShardBook,
        tag: str,
        *,
        say: Callable[[str], None],
        poll_seconds: float,
        quota: int,
    ) -> None:
        self.api = api
        self.book = book
        self.tag = tag
        self.say = say
        self.poll_seconds = poll_seconds
        self.quota = quota
        self.batches_created = 0
        self.lines_submitted = 0

    def filename(self, number: int) -> str:
        return f"vision-batch-{self.tag}-shard-{number:05d}.jsonl"

    def room_for(self, record: ShardRecord) -> bool:
        """Whether the shard's tokens fit the enqueued quota beside the active shards."""
        queued = sum(r.tokens for r in self.book.active() if r.status not in TERMINAL)
        return queued + record.tokens <= self.quota or not self.book.active()

    async def upload(self, record: ShardRecord) -> None:
        if record.file_id is not None:
            return
        name = self.filename(record.number)
        listing = await self.api.list_files()
        found = next(
            (f["id"] for f in listing.get("data", []) if f.get("filename") == name and f.get("bytes") == record.bytes),
            None,
        )
        if found is None:
            data = await asyncio.to_thread(self.book.shard_path(record.number).read_bytes)
            found = (await self.api.upload(name, data))["id"]
        self.book.record(record.number, file_id=str(found))

    async def create(self, record: ShardRecord) -> bool:
        """Create the shard's batch (or adopt one created before a kill). False: the service's
        enqueued-token quota is full now (``token_limit_exceeded``); try again later."""
        if record.batch_id is not None:
            return True
        assert record.file_id is not None
        existing = await self._find_batch(record.number)
        if existing is None:
            meta = {"vision_batch_job": self.tag, "vision_batch_shard": str(record.number)}
            try:
                existing = await self.api.create(record.file_id, meta)
            except ApiError as exc:
                if (exc.code or "").lower() == "token_limit_exceeded":
                    return False
                raise
            self.batches_created += 1
            self.lines_submitted += record.lines
        status = str(existing.get("status", "")).lower()
        self.book.record(record.number, batch_id=str(existing["id"]), status=status)
        self.say(
            f"shard {record.number}: {record.lines} lines, {record.bytes / 1e6:.1f} MB, ~{record.tokens} tokens "
            f"-> batch {existing['id']}"
        )
        return True

    async def _find_batch(self, number: int) -> dict[str, Any] | None:
        after: str | None = None
        for _ in range(_LIST_PAGES):
            page = await self.api.list_batches(after)
            for batch in page.get("data", []):
                meta = batch.get("metadata") or {}
                if meta.get("vision_batch_job") == self.tag and meta.get("vision_batch_shard") == str(number):
                    return dict(batch)
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page.get("last_id") or page["data"][-1]["id"]
        return None

    async def poll(self, record: ShardRecord) -> Downloaded | None:
        """The batch's results once it is terminal, else None. An unknown status stops the run."""
        assert record.batch_id is not None
        batch = await self.api.retrieve(record.batch_id)
        raw = str(batch.get("status", ""))
        status = raw.lower()
        if status not in ACTIVE | TERMINAL:
            raise RunStopped(
                f"batch {record.batch_id} (shard {record.number}) reports the unknown status {raw!r}; nothing was "
                "merged from it and the state is kept: run the same command again once the service says more"
            )
        if status != record.status:
            self.book.record(record.number, status=status)
        if status not in TERMINAL:
            return None
        out = await self._content(batch.get("output_file_id"))
        err = await self._content(batch.get("error_file_id"))
        data = (batch.get("errors") or {}).get("data") or []
        job_errors = tuple((str(e.get("code")), str(e.get("message", ""))) for e in data if isinstance(e, dict))
        return Downloaded(status, record.batch_id, out, err, job_errors)

    async def _content(self, file_id: object) -> bytes:
        if not file_id:
            return b""  # e.g. a completed batch whose every line failed has no output file
        return await self.api.content(str(file_id))

    async def clean(self, record: ShardRecord, *, outputs: bool) -> None:
        """Delete the input file (and, if asked, the output files) once merged."""
        if record.cleaned or record.file_id is None:
            return
        try:
            await self.api.delete(record.file_id)
            if outputs and record.batch_id is not None:
                batch = await self.api.retrieve(record.batch_id)
                for key in ("output_file_id", "error_file_id"):
                    if batch.get(key):
                        await self.api.delete(str(batch[key]))
        except ApiError as exc:
            if exc.status != 404:  # already gone is fine
                raise
        self.book.record(record.number, cleaned=True)

    async def backoff(self, tries: int) -> None:
        await asyncio.sleep(min(_MAX_BACKOFF_S, self.poll_seconds * 2 ** min(tries, 10)))
