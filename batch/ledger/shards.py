"""The Batch API route's ledger: which rows went into which shard, and shard → file id → batch id.

Lives in ``<output>.parts/batch/``. Each shard is two files written whole (temporary name,
fsync, rename): ``shard-NNNNN.jsonl``, the request lines exactly as uploaded, and
``shard-NNNNN.meta.jsonl``, one line per request saying which row and part it is (what the
result row needs that the service does not echo). ``shards.jsonl`` is an append-only event log,
one fsynced JSON line per step (``written``, ``uploaded``, ``created``, ``status``, ``merged``,
``cleaned``): a step is recorded before the route moves on, so a kill at any point resumes at
the step after the last one recorded. A torn last line (killed mid-write) is ignored.

A row is *claimed* by the last shard it was written into. While that shard is not merged the row
is never planned again, so no row is submitted twice; lines to resubmit are copied into a new
shard with their ``try`` raised, before their old shard is recorded merged, and a shard collected
again after a kill skips rows a later shard already holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core import LedgerError
from .parts import parts_dir_for

__all__ = ["LineMeta", "ShardBook", "ShardRecord"]

_EVENT_FIELDS = {"lines", "bytes", "tokens", "rows", "file_id", "batch_id", "status", "merged", "cleaned"}


@dataclass(frozen=True, slots=True)
class LineMeta:
    """One request line: its row, its part of the row, and how it was built."""

    custom_id: str
    row: int
    part: int
    parts: int
    document: bool
    pages: tuple[int, ...]
    ocr: tuple[tuple[int | None, str], ...]
    detail: str
    image_tokens: int | None
    prompt_tokens: int | None
    note: str | None
    tries: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.custom_id, "row": self.row, "part": self.part, "parts": self.parts, "doc": self.document,
            "pages": list(self.pages), "ocr": [list(o) for o in self.ocr], "detail": self.detail,
            "image_tokens": self.image_tokens, "prompt_tokens": self.prompt_tokens, "note": self.note,
            "try": self.tries,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LineMeta:
        return cls(
            d["id"], d["row"], d["part"], d["parts"], d["doc"], tuple(d["pages"]),
            tuple((o[0], o[1]) for o in d["ocr"]), d["detail"], d["image_tokens"], d["prompt_tokens"], d["note"],
            d["try"],
        )  # fmt: skip


@dataclass(slots=True)
class ShardRecord:
    number: int
    lines: int = 0
    bytes: int = 0
    tokens: int = 0
    rows: int = 0
    file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None  # the last status seen, lower case
    merged: bool = False
    cleaned: bool = False

    @property
    def active(self) -> bool:
        """Submitted and not yet merged: its tokens count against the enqueued quota."""
        return self.batch_id is not None and not self.merged


@dataclass(slots=True)
class ShardBook:
    """The shards of one job output."""

    output: Path
    num_rows: int
    shards: dict[int, ShardRecord] = field(default_factory=dict)
    #: the last shard each row was written into (0: none yet)
    claimed: npt.NDArray[np.int32] = field(init=False)
    _next: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        self.claimed = np.zeros(self.num_rows, dtype=np.int32)

    @property
    def folder(self) -> Path:
        return parts_dir_for(self.output) / "batch"

    def open(self) -> None:
        """Read the event log; drop shard files a kill left unrecorded; mark claimed rows."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for event in self._events():
            number = int(event["shard"])
            record = self.shards.setdefault(number, ShardRecord(number))
            for key, value in event.items():
                if key in _EVENT_FIELDS:
                    setattr(record, key, value)
        for path in self.folder.glob("shard-*"):
            if path.name.endswith(".tmp") or _shard_number(path) not in self.shards:
                path.unlink(missing_ok=True)
        for number in sorted(self.shards):
            for meta in self.metas(number):
                if not 0 <= meta.row < self.num_rows:
                    raise LedgerError(f"{self.meta_path(number)} names row {meta.row}, outside the manifest")
                self.claimed[meta.row] = number

    def _events(self) -> Iterator[dict[str, Any]]:
        log = self.folder / "shards.jsonl"
        if not log.exists():
            return
        with log.open("rb") as fh:
            for raw in fh:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue  # a torn last line: that step did not happen
                if isinstance(event, dict) and "shard" in event:
                    yield event

    def record(self, number: int, **fields: Any) -> ShardRecord:
        """Append one step durably, then apply it."""
        unknown = set(fields) - _EVENT_FIELDS
        if unknown:
            raise ValueError(f"unknown shard fields: {sorted(unknown)}")
        line = json.dumps({"shard": number, **fields}, separators=(",", ":")).encode() + b"\n"
        with (self.folder / "shards.jsonl").open("ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        record = self.shards.setdefault(number, ShardRecord(number))
        for key, value in fields.items():
            setattr(record, key, value)
        return record

    def next_number(self) -> int:
        """A shard number no other writer holds, recorded or still being written."""
        number = max(self._next, max(self.shards, default=0) + 1)
        self._next = number + 1
        return number

    def shard_path(self, number: int) -> Path:
        return self.folder / f"shard-{number:05d}.jsonl"

    def meta_path(self, number: int) -> Path:
        return self.folder / f"shard-{number:05d}.meta.jsonl"

    def metas(self, number: int) -> Iterator[LineMeta]:
        with self.meta_path(number).open("rb") as fh:
            for raw in fh:
                yield LineMeta.from_json(json.loads(raw))

    def commit(self, number: int, lines: Path, metas: Path, *, n_lines: int, n_bytes: int, tokens: int) -> None:
        """Move a fully written shard (temporary files) into place and record it ``written``."""
        rows: set[int] = set()
        with metas.open("rb") as fh:
            for raw in fh:
                rows.add(int(json.loads(raw)["row"]))
        for path in (lines, metas):
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        os.replace(lines, self.shard_path(number))
        os.replace(metas, self.meta_path(number))
        self.record(number, lines=n_lines, bytes=n_bytes, tokens=tokens, rows=len(rows))
        self.claimed[list(rows)] = number

    def active(self) -> list[ShardRecord]:
        return [r for r in self.shards.values() if r.active]

    def open_rows(self) -> npt.NDArray[np.bool_]:
        """Rows in a shard that is not merged yet: never planned again."""
        unmerged = np.zeros(max(self.shards, default=0) + 1, dtype=bool)
        for number, record in self.shards.items():
            unmerged[number] = not record.merged
        return np.asarray(unmerged[self.claimed] & (self.claimed > 0))


def _shard_number(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return -1
