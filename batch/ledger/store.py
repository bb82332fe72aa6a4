"""The result Parquet and the state that makes a run resumable: all Parquet output lives here.

While a job runs, every finished row is appended at once to a *journal* (one JSON line, a single
write), and rows are written in batches as small *part files* in ``<output>.parts/``, each to a
temporary name and then renamed, so a part is either whole or absent. A part's journal is deleted
only after the part is in place; a resumed run first turns leftover journals into parts (a torn
last line is ignored). So a kill loses only the rows in flight. Each part holds rows of one
*bucket* of 65,536 manifest positions, tagged with the position (``_row``). Resuming reads only the
``_row`` column of the parts to know what is done.

When every row has an outcome, the result file is assembled bucket by bucket (bounded memory):
manifest columns streamed from the manifest, joined by position with that bucket's parts, in
manifest order, written to a temporary file and renamed over ``<output>``. The parts stay as the
job's ledger: running the job again finds everything done and sends nothing.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from ..core import LedgerError, ManifestError, Outcome, PartAnswer
from ..inputs import Manifest, ManifestInfo

BUCKET_ROWS = 65536
ASSEMBLE_SLICE_ROWS = 16384  # rows per row group of the result file
STATE_VERSION = 1
ROW = "_row"

RESULT_SCHEMA = pa.schema(
    [
        ("answer", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("status", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("attempts", pa.int32()),
        ("latency_ms", pa.float64()),
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("detail_used", pa.string()),
        ("estimated_image_tokens", pa.int64()),
        ("estimated_prompt_tokens", pa.int64()),
        ("image_note", pa.string()),
        ("pages_processed", pa.list_(pa.int32())),
        (
            "page_answers",
            pa.list_(
                pa.struct(
                    [
                        ("pages", pa.list_(pa.int32())),
                        ("status", pa.string()),
                        ("answer", pa.string()),
                        ("finish_reason", pa.string()),
                        ("prompt_tokens", pa.int64()),
                        ("completion_tokens", pa.int64()),
                        ("request_id", pa.string()),
                        ("ocr_text", pa.string()),
                        ("error_code", pa.string()),
                    ]
                )
            ),
        ),
        ("ocr_text", pa.string()),
        ("grounding", pa.string()),
        ("completed_at", pa.timestamp("ms", tz="UTC")),
    ]
)
RESULT_COLUMNS = RESULT_SCHEMA.names
_PART_SCHEMA = pa.schema([(ROW, pa.int64()), *RESULT_SCHEMA])
_PART_NAME = re.compile(r"^b(\d{6})-(\d{9})\.parquet$")
_JOURNAL_NAME = re.compile(r"^journal-(\d{9})\.jsonl$")
_OUTCOME_NAMES = tuple(f.name for f in fields(Outcome))
_OUTCOME_FIELDS = set(_OUTCOME_NAMES)


def parts_dir_for(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _outcome_dict(o: Outcome) -> dict[str, Any]:
    """``dataclasses.asdict(o)`` without its recursive deep copy of every field (a row's fields are
    scalars but for the rare page answers): about 9 µs a row instead of 34."""
    d = {name: getattr(o, name) for name in _OUTCOME_NAMES}
    if o.page_answers is not None:
        d["page_answers"] = [asdict(a) for a in o.page_answers]
    return d


def _outcomes_table(rows: list[Outcome]) -> pa.Table:
    cols: dict[str, list[object]] = {name: [] for name in _PART_SCHEMA.names}
    for o in rows:
        d = _outcome_dict(o)
        cols[ROW].append(d.pop("index"))
        at = d.pop("completed_at")
        cols["completed_at"].append(None if at is None else round(at * 1000))
        for name in RESULT_COLUMNS:
            if name == "completed_at":
                continue
            cols[name].append(d[name])
    return pa.table(cols, schema=_PART_SCHEMA)


class ResultStore:
    """Durable, resumable result rows for one job output."""

    def __init__(
        self,
        output: Path,
        info: ManifestInfo,
        *,
        flush_rows: int = 500,
        flush_seconds: float = 5.0,
        retry_errors: frozenset[str] = frozenset(),
    ):
        self.output = output
        self.retry_errors = retry_errors
        self.retried = 0  # rows done before that open() will have sent again (retry_errors)
        self.parts = parts_dir_for(output)
        self.info = info
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.done = np.zeros(info.num_rows, dtype=bool)
        self._buffer: list[Outcome] = []
        self._buffer_since = 0.0
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._journal: IO[str] | None = None
        self._journal_path: Path | None = None
        self.rows_written = 0
        clash = sorted(set(info.columns) & set(RESULT_COLUMNS + [ROW]))
        if clash:
            raise ManifestError(
                f"manifest {info.path}: column(s) {', '.join(clash)} clash with result columns; rename them"
            )

    # ---- opening and resuming --------------------------------------------------------------

    def open(self) -> int:
        """Create or reopen the state; return how many rows are already done.

        Rows whose last outcome is an error listed in ``retry_errors`` count as not done: they are
        sent again, and their new outcome replaces the old one when the result file is assembled.
        """
        state_file = self.parts / "state.json"
        expected = {
            "version": STATE_VERSION,
            "manifest_rows": self.info.num_rows,
            "manifest_fingerprint": self.info.fingerprint,
        }
        if self.parts.exists():
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                raise LedgerError(
                    f"{self.parts} exists but has no readable state.json: it is not this tool's, or was "
                    "damaged; move it away or choose another output path"
                ) from None
            if {k: state.get(k) for k in expected} != expected:
                raise LedgerError(
                    f"the saved progress in {self.parts} belongs to a different manifest "
                    f"({state.get('manifest_rows')} rows) than {self.info.path} ({self.info.num_rows} rows, "
                    "or same size with other ids/columns); delete that folder or choose another output path"
                )
        else:
            self.parts.mkdir(parents=True, exist_ok=True)
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(expected, indent=1))
            os.replace(tmp, state_file)
        for leftover in self.parts.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        retry = np.zeros(self.info.num_rows, dtype=bool) if self.retry_errors else None
        columns = [ROW, "status", "error_code"] if retry is not None else [ROW]
        for path, seq in self._part_files():  # in write order for each row (a row stays in its bucket)
            self._seq = max(self._seq, seq + 1)
            try:
                part = pq.read_table(path, columns=columns)
            except (pa.ArrowInvalid, OSError):
                path.unlink(missing_ok=True)  # a part cut short by a crash: its rows will be redone
                continue
            rows = part.column(ROW).to_numpy()
            if len(rows) and (rows.min() < 0 or rows.max() >= self.info.num_rows):
                raise LedgerError(f"{path} holds rows outside the manifest; the state is damaged")
            self.done[rows] = True
            if retry is not None:  # the last outcome decides
                retry[rows] = self._to_retry(part.column("status").to_pylist(), part.column("error_code").to_pylist())
        for journal in sorted(self.parts.glob("journal-*.jsonl")):
            recovered = _read_journal(journal, self.info.num_rows)
            if recovered:
                self.write_parts(recovered)
                if retry is not None:
                    picked = self._to_retry([o.status for o in recovered], [o.error_code for o in recovered])
                    retry[[o.index for o in recovered]] = picked
            journal.unlink()
        if retry is not None:
            self.retried = int(retry.sum())
            self.done[retry] = False
        return int(self.done.sum())

    def _to_retry(self, statuses: list[str | None], codes: list[str | None]) -> npt.NDArray[np.bool_]:
        every = "*" in self.retry_errors
        return np.array(
            [s == "error" and (every or c in self.retry_errors) for s, c in zip(statuses, codes, strict=True)],
            dtype=bool,
        )

    def _part_files(self, bucket: int | None = None) -> Iterator[tuple[Path, int]]:
        pattern = "b*.parquet" if bucket is None else f"b{bucket:06d}-*.parquet"
        for path in sorted(self.parts.glob(pattern)):
            m = _PART_NAME.match(path.name)
            if m:
                yield path, int(m.group(2))

    # ---- writing -------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        """File sequence numbers: rows are journaled on the event loop while parts are written on a
        thread, so the counter is shared under a lock (a lost update could reuse a part's name)."""
        with self._seq_lock:
            seq = self._seq
            self._seq += 1
            return seq

    def add(self, outcome: Outcome) -> None:
        """Record a finished row: durable at once in the journal, batched into a part later."""
        if outcome.completed_at is None:
            outcome = replace(outcome, completed_at=time.time())
        if self._journal is None:
            self._journal_path = self.parts / f"journal-{self._next_seq():09d}.jsonl"
            self._journal = open(self._journal_path, "a", encoding="utf-8")  # noqa: SIM115 - closed on take
        self._journal.write(json.dumps(_outcome_dict(outcome), separators=(",", ":")) + "\n")
        self._journal.flush()
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append(outcome)

    @property
    def flush_due(self) -> bool:
        return bool(self._buffer) and (
            len(self._buffer) >= self.flush_rows or time.monotonic() - self._buffer_since >= self.flush_seconds
        )

    def take_buffer(self) -> tuple[list[Outcome], Path | None]:
        """Hand over the buffered rows and their journal; new rows go to a fresh journal."""
        rows, self._buffer = self._buffer, []
        journal, self._journal_path = self._journal_path, None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        return rows, journal

    def flush(self, taken: tuple[list[Outcome], Path | None]) -> None:
        """Write taken rows as parts, then drop their journal. Blocking: call from a thread."""
        rows, journal = taken
        if rows:
            self.write_parts(rows)
        if journal is not None:
            journal.unlink(missing_ok=True)

    def close(self) -> None:
        self.flush(self.take_buffer())

    def write_parts(self, rows: list[Outcome]) -> None:
        """Write rows as part files (one per bucket touched). Blocking: call from a thread."""
        by_bucket: dict[int, list[Outcome]] = {}
        for o in rows:
            by_bucket.setdefault(o.index // BUCKET_ROWS, []).append(o)
        for bucket, group in sorted(by_bucket.items()):
            group.sort(key=lambda o: o.index)
            final = self.parts / f"b{bucket:06d}-{self._next_seq():09d}.parquet"
            tmp = final.with_suffix(".tmp")
            pq.write_table(_outcomes_table(group), tmp, compression="zstd")
            os.replace(tmp, final)
            self.done[[o.index for o in group]] = True
            self.rows_written += len(group)
        _release_unused()

    # ---- assembling the result file --------------------------------------------------------

    def assemble(self, manifest: Manifest) -> int:
        """Write ``output`` in manifest order from the manifest and the parts. Returns rows written."""
        if not self.done.all():
            missing = int((~self.done).sum())
            raise LedgerError(f"cannot assemble {self.output}: {missing} rows have no outcome yet")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.output.with_name(f".{self.output.name}.{os.getpid()}.tmp")
        schema = pa.schema([*manifest.schema, *RESULT_SCHEMA])
        written = 0
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for bucket, chunk in enumerate(_exact_chunks(manifest.batches(BUCKET_ROWS), BUCKET_ROWS)):
                    n = chunk.num_rows
                    parts, pick = self._bucket_parts(bucket, n)
                    # Written in slices (a row group each): one bucket's results are copied into order
                    # a slice at a time, not all at once.
                    for start in range(0, n, ASSEMBLE_SLICE_ROWS):
                        results = parts.take(pick[start : start + ASSEMBLE_SLICE_ROWS]).drop_columns([ROW])
                        cols = [*chunk.slice(start, ASSEMBLE_SLICE_ROWS).columns, *results.columns]
                        writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                        del results, cols
                    # Drop this bucket before the next is read: holding two at once made the peak grow
                    # with the number of buckets (and so with the manifest), not stay at one bucket's.
                    del chunk, parts, pick
                    _release_unused()
                    written += n
            os.replace(tmp, self.output)
        finally:
            tmp.unlink(missing_ok=True)
        return written

    def _bucket_parts(self, bucket: int, n: int) -> tuple[pa.Table, pa.Array]:
        """A bucket's parts, concatenated, and which of their rows to take, in row order."""
        # Parts are small (hundreds of rows): reading each on its own thread pool costs more than it saves.
        tables = [pq.read_table(p, schema=_PART_SCHEMA, use_threads=False) for p, _ in self._part_files(bucket)]
        t = pa.concat_tables(tables) if tables else _PART_SCHEMA.empty_table()
        rows = t.column(ROW).to_numpy() - bucket * BUCKET_ROWS
        # Keep the last written outcome of each row (parts are in write order).
        order = np.argsort(rows, kind="stable")
        rows_sorted = rows[order]
        last = np.ones(len(rows_sorted), dtype=bool)
        last[:-1] = rows_sorted[1:] != rows_sorted[:-1]
        pick = order[last]
        if len(pick) != n or not np.array_equal(rows[pick], np.arange(n)):
            raise LedgerError(f"bucket {bucket} of {self.parts} does not cover its rows; the state is damaged")
        return t, pa.array(pick)


def _release_unused() -> None:
    """Hand back the memory Arrow's allocator keeps for reuse after a part or a bucket is written.

    Arrow's default pool (mimalloc) keeps freed pages in the heap of the thread that freed them,
    and parts are written from whichever worker thread is free: left alone, the process's peak RSS
    crept up over a long run (by ~90 MB at 1M rows), for no data held.
    """
    pa.default_memory_pool().release_unused()


def _read_journal(path: Path, num_rows: int) -> list[Outcome]:
    """Outcomes from a journal; a line torn by a crash (always the last) is skipped."""
    rows: list[Outcome] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                d: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if set(d) != _OUTCOME_FIELDS or not 0 <= int(d["index"]) < num_rows:
                raise LedgerError(f"{path} has a line that is not a result row; the state is damaged")
            rows.append(_outcome_from_json(d))
    return rows


def _outcome_from_json(d: dict[str, Any]) -> Outcome:
    """An Outcome from its journal line: JSON lists back into the tuples and records they were."""
    if d["pages_processed"] is not None:
        d["pages_processed"] = tuple(d["pages_processed"])
    if d["page_answers"] is not None:
        d["page_answers"] = tuple(PartAnswer(**{**p, "pages": tuple(p["pages"])}) for p in d["page_answers"])
    return Outcome(**d)


def _exact_chunks(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Re-chunk a stream of record batches into tables of exactly ``size`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for b in batches:
        pending.append(b)
        count += b.num_rows
        while count >= size:
            t = pa.Table.from_batches(pending)
            yield t.slice(0, size).combine_chunks()
            rest = t.slice(size)
            pending = rest.to_batches()
            count = rest.num_rows
    if count:
        yield pa.Table.from_batches(pending).combine_chunks()
