"""The one result file: manifest columns and the run's columns, in manifest order, bucket by bucket.

Manifest columns are streamed from the manifest and joined by position with that bucket's parts,
written to a temporary file and renamed over ``<output>``. Memory holds one bucket at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core import LedgerError
from ..inputs import Manifest
from .parts import BUCKET_ROWS, part_files, release_unused
from .schema import ROW, ResultLayout, result_layout

__all__ = ["ASSEMBLE_SLICE_ROWS", "assemble"]

ASSEMBLE_SLICE_ROWS = 16384  # rows per row group of the result file


def assemble(output: Path, parts: Path, manifest: Manifest, layout: ResultLayout | None = None) -> int:
    """Write ``output`` in manifest order from the manifest and the parts. Returns rows written."""
    layout = layout or result_layout(None)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    schema = pa.schema([*manifest.schema, *layout.result])
    written = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for bucket, chunk in enumerate(_exact_chunks(manifest.batches(BUCKET_ROWS), BUCKET_ROWS)):
                n = chunk.num_rows
                results, pick = _bucket_parts(parts, bucket, n, layout.part)
                # Written in slices (a row group each): one bucket's results are copied into order
                # a slice at a time, not all at once.
                for start in range(0, n, ASSEMBLE_SLICE_ROWS):
                    rows = results.take(pick[start : start + ASSEMBLE_SLICE_ROWS]).drop_columns([ROW])
                    cols = [*chunk.slice(start, ASSEMBLE_SLICE_ROWS).columns, *rows.columns]
                    writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                    del rows, cols
                # Drop this bucket before the next is read: holding two at once made the peak grow
                # with the number of buckets (and so with the manifest), not stay at one bucket's.
                del chunk, results, pick
                release_unused()
                written += n
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def _bucket_parts(parts: Path, bucket: int, n: int, part_schema: pa.Schema) -> tuple[pa.Table, pa.Array]:
    """A bucket's parts, concatenated, and which of their rows to take, in row order."""
    # Parts are small (hundreds of rows): reading each on its own thread pool costs more than it saves.
    tables = [pq.read_table(p, schema=part_schema, use_threads=False) for p, _ in part_files(parts, bucket)]
    t = pa.concat_tables(tables) if tables else part_schema.empty_table()
    rows = t.column(ROW).to_numpy() - bucket * BUCKET_ROWS
    # Keep the last written outcome of each row (parts are in write order).
    order = np.argsort(rows, kind="stable")
    rows_sorted = rows[order]
    last = np.ones(len(rows_sorted), dtype=bool)
    last[:-1] = rows_sorted[1:] != rows_sorted[:-1]
    pick = order[last]
    if len(pick) != n or not np.array_equal(rows[pick], np.arange(n)):
        raise LedgerError(f"bucket {bucket} of {parts} does not cover its rows; the state is damaged")
    return t, pa.array(pick)


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
