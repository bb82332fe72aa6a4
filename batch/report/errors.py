"""``batch report --errors``: the rows that did not end ``ok``, streamed from the result file.

Failed rows (``error``: the endpoint's refusals, timeouts, and rows the run refused before sending,
such as a missing or corrupt image) and ``filtered`` rows, each with its id, status, error code,
message and attempts. Optionally only some error codes. The file is read in record batches of the
few columns needed, and each row is written as it is read: any file size, bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .stream import ReportError

__all__ = ["FailedRow", "failed_rows", "write_failed_rows"]

_COLUMNS = ("status", "error_code", "error_message", "attempts")


@dataclass(frozen=True, slots=True)
class FailedRow:
    row: int  # position in the result file (= in the manifest)
    id: str | None
    status: str
    error_code: str | None
    error_message: str | None
    attempts: int | None


def failed_rows(path: Path, codes: Sequence[str] = (), id_column: str | None = None) -> Iterator[FailedRow]:
    """Every row whose status is not ``ok`` (only those with one of ``codes``, if given)."""
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise ReportError(f"results file {path} does not exist") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReportError(f"{path} is not a Parquet file: {exc}") from None
    names = parquet.schema_arrow.names
    missing = [c for c in _COLUMNS if c not in names]
    if missing:
        raise ReportError(f"{path} is not a result file of `batch run`: missing column(s) {', '.join(missing)}")
    id_column = id_column or ("id" if "id" in names else None)
    if id_column is not None and id_column not in names:
        raise ReportError(f"{path} has no column {id_column!r} to name rows (columns: {', '.join(names)})")
    columns = [*_COLUMNS, *([id_column] if id_column else [])]
    start = 0
    for batch in parquet.iter_batches(batch_size=8192, columns=columns):
        keep = pc.fill_null(pc.not_equal(batch.column("status"), "ok"), True)
        if codes:
            keep = pc.and_(keep, pc.fill_null(pc.is_in(batch.column("error_code"), pa.array(list(codes))), False))
        for i in pc.indices_nonzero(keep).to_pylist():
            r = {name: batch.column(name)[i].as_py() for name in columns}
            yield FailedRow(
                start + i,
                None if id_column is None or r[id_column] is None else str(r[id_column]),
                r["status"] or "none",
                r["error_code"],
                r["error_message"],
                r["attempts"],
            )
        start += batch.num_rows


def write_failed_rows(rows: Iterator[FailedRow], out: TextIO, *, as_json: bool) -> int:
    """Plain text (a header, one line a row, a count) or one JSON array; returns rows written."""
    n = 0
    if as_json:
        out.write("[")
        for n, row in enumerate(rows, 1):
            out.write(("," if n > 1 else "") + "\n  " + json.dumps(asdict(row)))
        out.write("\n]\n" if n else "]\n")
        return n
    for n, row in enumerate(rows, 1):
        if n == 1:
            out.write("row\tid\tstatus\terror_code\tattempts\tmessage\n")
        message = (row.error_message or "").replace("\n", " ")
        out.write(f"{row.row}\t{row.id}\t{row.status}\t{row.error_code}\t{row.attempts}\t{message}\n")
    out.write(f"{n} row(s) not ok\n" if n else "no rows that are not ok\n")
    return n
