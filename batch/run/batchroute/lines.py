"""Request lines written into shards under the service's limits.

A line is ``{"custom_id","method":"POST","url","body"}`` with the body exactly as the online route
would POST it (composed by :class:`~batch.plan.RequestBuilder` from the request plan), spliced in
as bytes so megabytes of base64 are never re-encoded. ``custom_id`` is ``ROW-PART`` (the row's
manifest position and the request's 0-based part). Never a BOM: lines are bytes we write.

Shards close at the first limit a row would cross: lines (Azure 100,000; OpenAI and Azure v1
50,000; or the job's ``shard_lines``), bytes (200 MB, base64 images included) and the
enqueued-token quota (a shard larger than the quota could never be admitted). A row's lines
always stay in one shard, so a row is merged from one batch's output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ...core import LINES_PER_FILE, MAX_FILE_BYTES
from ...ledger import LineMeta, ShardBook

__all__ = ["LineOut", "ShardLimits", "ShardWriter", "custom_id_of", "line_bytes"]


@dataclass(frozen=True, slots=True)
class ShardLimits:
    lines: int
    bytes: int
    tokens: int

    @classmethod
    def for_kind(cls, kind: str, *, shard_lines: int | None, quota: int) -> ShardLimits:
        service = LINES_PER_FILE.get(kind, 50_000)
        return cls(min(service, shard_lines) if shard_lines else service, MAX_FILE_BYTES, quota)


@dataclass(frozen=True, slots=True)
class LineOut:
    """One line to write: its meta, its bytes (newline included) and its enqueued-token estimate."""

    meta: LineMeta
    data: bytes
    tokens: int


def line_bytes(custom_id: str, url: str, body: bytes) -> bytes:
    head = json.dumps({"custom_id": custom_id, "method": "POST", "url": url}, separators=(",", ":"))
    return head[:-1].encode() + b',"body":' + body + b"}\n"


def custom_id_of(line: bytes) -> str:
    """The custom_id of a line this module wrote (it comes first)."""
    start = line.index(b'"custom_id":"') + len(b'"custom_id":"')
    return line[start : line.index(b'"', start)].decode()


class ShardWriter:
    """Fills shard files row by row; ``add_row`` says which shards it closed."""

    def __init__(self, book: ShardBook, limits: ShardLimits) -> None:
        self.book = book
        self.limits = limits
        self._number: int | None = None
        self._lines: BinaryIO | None = None
        self._metas: BinaryIO | None = None
        self._count = self._bytes = self._tokens = 0

    def too_large(self, row: list[LineOut]) -> str | None:
        """Why this row can never fit a shard, or None."""
        size, tokens = sum(len(x.data) for x in row), sum(x.tokens for x in row)
        if len(row) > self.limits.lines:
            return f"its {len(row)} requests exceed the {self.limits.lines} lines a batch file may hold"
        if size > self.limits.bytes:
            return f"its {size} bytes of requests exceed the {self.limits.bytes}-byte limit of a batch file"
        if tokens > self.limits.tokens:
            return f"its ~{tokens} tokens exceed the enqueued-token quota of {self.limits.tokens}"
        return None

    def add_row(self, row: list[LineOut]) -> int | None:
        """Append a row's lines (call ``too_large`` first); returns the shard it closed, if any."""
        closed = None
        size, tokens = sum(len(x.data) for x in row), sum(x.tokens for x in row)
        lim = self.limits
        if self._number is not None and (
            self._count + len(row) > lim.lines or self._bytes + size > lim.bytes or self._tokens + tokens > lim.tokens
        ):
            closed = self.close()
        if self._number is None:
            self._start()
        assert self._lines is not None and self._metas is not None
        for x in row:
            self._lines.write(x.data)
            self._metas.write(json.dumps(x.meta.to_json(), separators=(",", ":")).encode() + b"\n")
        self._count, self._bytes, self._tokens = self._count + len(row), self._bytes + size, self._tokens + tokens
        return closed

    def close(self) -> int | None:
        """Commit the open shard (recorded ``written``); its number, or None if none was open."""
        if self._number is None:
            return None
        assert self._lines is not None and self._metas is not None
        number, lines, metas = self._number, Path(self._lines.name), Path(self._metas.name)
        self._lines.close()
        self._metas.close()
        self.book.commit(number, lines, metas, n_lines=self._count, n_bytes=self._bytes, tokens=self._tokens)
        self._number = self._lines = self._metas = None
        self._count = self._bytes = self._tokens = 0
        return number

    def _start(self) -> None:
        number = self.book.next_number()
        self._number = number
        self._lines = self.book.shard_path(number).with_suffix(".jsonl.tmp").open("wb")
        self._metas = self.book.meta_path(number).with_suffix(".tmp").open("wb")
