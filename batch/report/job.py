"""What a finished run really cost, from its result Parquet, and how far the estimate was off.

:func:`build_report` streams the result file in record batches (``ParquetFile.iter_batches``,
reading only the columns it needs: never the answers) and keeps, whatever the file's size:

* integer token sums per *fine group* (detail used x finish reason x status x model): every
  breakdown, the totals and the costs are derived from these at the end, each group priced
  with :func:`batch.core.prices.cost` at its model's standard and Batch rates;
* two bounded heaps: the N most expensive rows, and the N rows whose estimate was furthest off;
* fixed histograms of prompt and completion tokens per row (one bucket per token up to 4,096,
  then 256-token buckets up to 2^20), coarsened to a few dozen bars at the end;
* a thinned sample of (estimated, actual) prompt tokens for the scatter plot: rows whose
  position is a multiple of a stride that doubles whenever the sample outgrows its cap;
* per-minute token sums from the ``completed_at`` timestamp column (every result file of the run
  has one; an older file without it gets a note instead of a guessed chart).

Costs come from ``usage`` as billed (``prompt_tokens``, ``completion_tokens``) and the price of the
``model`` column, as the service named it (``gpt-4o-2024-08-06`` resolves to the ``gpt-4o`` entry),
at the prices of the row's ``route``: a Batch API row at Batch prices, an online row (or any row of
a file without the column) at standard prices. The same rows all at standard and all at Batch
prices are shown beside it as what-ifs. Rows without usage (refused before sending, failed) cost
nothing and are counted. A row with usage whose model has no price stops the report
(:class:`~batch.core.errors.UnknownModelError`): a cost is never silently zero. Cached-input
discounts are not applied (the result file does not say which prompt tokens were cached): the
figures are an upper bound when caching happened.

The estimate error of a row is ``estimated_prompt_tokens - prompt_tokens`` (positive: the
estimate was high), in % of the actual count.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..core import load_prices
from ..ledger import RESULT_SCHEMA
from .build import build
from .fields import DATA_COLUMN, FieldFill
from .model import Report
from .stream import BATCH_ID_COLUMN, REQUIRED, ROUTE_COLUMN, TIMELINE_COLUMN, Accumulator, ReportError

__all__ = ["DEFAULT_TOP", "Report", "ReportError", "build_report"]

#: Rows listed in the "most expensive" and "largest estimate error" tables by default.
DEFAULT_TOP = 10
_BATCH_ROWS = 65536


def build_report(
    path: Path,
    *,
    prices: Path | None = None,
    top: int = DEFAULT_TOP,
    tpm: int | None = None,
    id_column: str | None = None,
    batch_rows: int = _BATCH_ROWS,
) -> Report:
    """Read the result Parquet at ``path`` once, in batches of ``batch_rows``, and report on it.

    ``prices`` is a user price file (as for ``batch estimate``), ``top`` the length of the row
    tables, ``tpm`` the deployment's limit to draw on the timeline, ``id_column`` the column that
    names a row (default ``id`` when the file has one, else the row's position).
    Raises :class:`ReportError` for a file that is not a result file and
    :class:`~batch.core.errors.UnknownModelError` for a billed row whose model has no price.
    """
    if top < 0:
        raise ReportError(f"--top must be 0 or more, got {top}")
    table = load_prices(prices)
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise ReportError(f"results file {path} does not exist") from None
    except (OSError, pa.ArrowException) as exc:
        raise ReportError(f"{path} is not a Parquet file: {exc}") from None
    schema = parquet.schema_arrow
    _check_columns(path, schema)
    if id_column is None:
        id_column = "id" if "id" in schema.names else None
    elif id_column not in schema.names:
        raise ReportError(f"{path} has no column {id_column!r} to name rows (columns: {', '.join(schema.names)})")
    timed = TIMELINE_COLUMN in schema.names and pa.types.is_timestamp(schema.field(TIMELINE_COLUMN).type)
    columns = [*REQUIRED, "error_code"] if "error_code" in schema.names else list(REQUIRED)
    columns += [c for c in (ROUTE_COLUMN, BATCH_ID_COLUMN) if c in schema.names]  # older files: all online
    if id_column is not None and id_column not in columns:
        columns.append(id_column)
    if timed:
        columns.append(TIMELINE_COLUMN)
    # A run with [output].schema: its typed answers, for how often each field is filled.
    fill = FieldFill() if DATA_COLUMN in schema.names and pa.types.is_struct(schema.field(DATA_COLUMN).type) else None
    if fill is not None:
        columns.append(DATA_COLUMN)

    acc = Accumulator(table, top, id_column, timed)
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            acc.add(batch)
            if fill is not None:
                fill.add(batch.column(DATA_COLUMN))
    except (OSError, pa.ArrowException) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    report = build(acc, str(path), tpm)
    return report if fill is None else replace(report, fields=fill.lines(), data_rows=fill.rows)


# --- reading ----------------------------------------------------------------------------------


def _check_columns(path: Path, schema: pa.Schema) -> None:
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise ReportError(
            f"{path} is not a result file of `batch run`: missing column(s) {', '.join(missing)} "
            "(see schemas/result.schema.json)"
        )
    for name in REQUIRED:
        kind = schema.field(name).type
        expected = RESULT_SCHEMA.field(name).type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
        if (pa.types.is_integer(expected) and not numeric) or (pa.types.is_string(expected) and not text):
            raise ReportError(f"{path}: column {name} has type {kind}, expected {expected}")
