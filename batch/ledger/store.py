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

import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from ..core import JobSpec, LedgerError, ManifestError, Outcome, SpecError
from ..inputs import Manifest, ManifestInfo
from .assemble import assemble
from .journal import Journal, read_journal
from .outputs import check_output
from .parts import BUCKET_ROWS, part_files, parts_dir_for, release_unused, write_part
from .schema import ROW, TOOL_ERROR_CODES, ResultLayout, result_layout
from .state import open_state

__all__ = ["ResultStore"]


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
        layout: ResultLayout | None = None,
    ):
        self.layout = layout or result_layout(None)
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
        self._journal = Journal()
        self._codes_seen: dict[str, int] = {}  # error codes of the rows already recorded (retry_errors)
        self.rows_written = 0
        clash = sorted(set(info.columns) & set([*self.layout.result.names, ROW]))
        if clash:
            raise ManifestError(
                f"manifest {info.path}: column(s) {', '.join(clash)} clash with result columns; rename them"
            )
        check_output(output, info.path)

    @classmethod
    def for_job(cls, spec: JobSpec, info: ManifestInfo) -> ResultStore:
        """The store a job's settings describe: its output, flush cadence, retry_errors and columns."""
        out = spec.output
        return cls(
            out.path,
            info,
            flush_rows=out.flush_rows,
            flush_seconds=out.flush_seconds,
            retry_errors=out.retry_errors,
            layout=result_layout(out.format),
        )

    # ---- opening and resuming --------------------------------------------------------------

    def open(self) -> int:
        """Create or reopen the state; return how many rows are already done.

        Rows whose last outcome is an error listed in ``retry_errors`` count as not done: they are
        sent again, and their new outcome replaces the old one when the result file is assembled.
        """
        open_state(self.parts, self.info, self.layout.fingerprint)
        for leftover in self.parts.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        retry = np.zeros(self.info.num_rows, dtype=bool) if self.retry_errors else None
        # refused rows count as errors here: --retry-errors refused (or *) sends them again
        columns = [ROW, "status", "error_code"] if retry is not None else [ROW]
        for path, seq in part_files(self.parts):  # in write order for each row (a row stays in its bucket)
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
            recovered = read_journal(journal, self.info.num_rows)
            if recovered:
                self.write_parts(recovered)
                if retry is not None:
                    picked = self._to_retry([o.status for o in recovered], [o.error_code for o in recovered])
                    retry[[o.index for o in recovered]] = picked
            journal.unlink()
        if retry is not None:
            self._check_retry_codes()
            self.retried = int(retry.sum())
            self.done[retry] = False
        return int(self.done.sum())

    def _check_retry_codes(self) -> None:
        """An error code that is neither the tool's nor in this output is a typo: refuse it (exit 2)."""
        unknown = sorted(c for c in self.retry_errors - {"*"} - TOOL_ERROR_CODES - set(self._codes_seen))
        if unknown:
            seen = ", ".join(f"{c} ({n})" for c, n in sorted(self._codes_seen.items())) or "none"
            raise SpecError(
                f"--retry-errors: unknown error code(s) {', '.join(unknown)}; error codes in {self.output}: "
                f"{seen}; codes the tool writes: {', '.join(sorted(TOOL_ERROR_CODES))} "
                "(an endpoint's own codes, such as content_filter or 500, count once they are in the output)"
            )

    def _to_retry(self, statuses: list[str | None], codes: list[str | None]) -> npt.NDArray[np.bool_]:
        for s, c in zip(statuses, codes, strict=True):
            if s == "error" and c is not None:
                self._codes_seen[c] = self._codes_seen.get(c, 0) + 1
        every = "*" in self.retry_errors
        return np.array(
            [
                s in ("error", "refused") and (every or c in self.retry_errors)
                for s, c in zip(statuses, codes, strict=True)
            ],
            dtype=bool,
        )

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
        if not self._journal.is_open:
            self._journal.start(self.parts / f"journal-{self._next_seq():09d}.jsonl")
        self._journal.append(outcome)
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
        return rows, self._journal.take()

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
            write_part(self.parts, bucket, self._next_seq(), group, self.layout)
            self.done[[o.index for o in group]] = True
            self.rows_written += len(group)
        release_unused()

    def recorded_usage(self) -> Iterator[tuple[str | None, int | None, int | None]]:
        """(model, prompt tokens, completion tokens) of every reply recorded for this output, by
        every run of the job (rows sent again keep their earlier, billed, outcome too). Streamed."""
        for path, _ in part_files(self.parts):
            with suppress(pa.ArrowInvalid, OSError):
                part = pq.read_table(path, columns=["model", "prompt_tokens", "completion_tokens"])
                yield from zip(
                    part.column("model").to_pylist(),
                    part.column("prompt_tokens").to_pylist(),
                    part.column("completion_tokens").to_pylist(),
                    strict=True,
                )

    # ---- assembling the result file --------------------------------------------------------

    def assemble(self, manifest: Manifest) -> int:
        """Write ``output`` in manifest order from the manifest and the parts. Returns rows written."""
        if not self.done.all():
            missing = int((~self.done).sum())
            raise LedgerError(f"cannot assemble {self.output}: {missing} rows have no outcome yet")
        return assemble(self.output, self.parts, manifest, self.layout)
