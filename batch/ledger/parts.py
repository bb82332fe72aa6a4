"""Part files: a run's finished rows in ``<output>.parts/``, a bucket of manifest positions per file.

Each part is written to a temporary name and renamed, so it is either whole or absent. Names carry
the bucket and a write sequence number (``b000001-000000042.parquet``): for any row, the part
written last holds its latest outcome.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..core import Outcome
from .schema import ResultLayout, outcomes_table

__all__ = ["BUCKET_ROWS", "part_files", "parts_dir_for", "release_unused", "write_part"]

BUCKET_ROWS = 65536
_PART_NAME = re.compile(r"^b(\d{6})-(\d{9})\.parquet$")


def parts_dir_for(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def part_files(parts: Path, bucket: int | None = None) -> Iterator[tuple[Path, int]]:
    """The part files (of one bucket, or all), in name order, with their sequence numbers."""
    pattern = "b*.parquet" if bucket is None else f"b{bucket:06d}-*.parquet"
    for path in sorted(parts.glob(pattern)):
        m = _PART_NAME.match(path.name)
        if m:
            yield path, int(m.group(2))


def write_part(parts: Path, bucket: int, seq: int, rows: list[Outcome], layout: ResultLayout | None = None) -> None:
    """Rows of one bucket, sorted by position, as one part file (temporary name, then renamed)."""
    rows.sort(key=lambda o: o.index)
    final = parts / f"b{bucket:06d}-{seq:09d}.parquet"
    tmp = final.with_suffix(".tmp")
    pq.write_table(outcomes_table(rows, layout), tmp, compression="zstd")
    os.replace(tmp, final)


def release_unused() -> None:
    """Hand back the memory Arrow's allocator keeps for reuse after a part or a bucket is written.

    Arrow's default pool (mimalloc) keeps freed pages in the heap of the thread that freed them,
    and parts are written from whichever worker thread is free: left alone, the process's peak RSS
    crept up over a long run (by ~90 MB at 1M rows), for no data held.
    """
    pa.default_memory_pool().release_unused()
