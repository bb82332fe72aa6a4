"""The report's one pass over a result file: running sums of each record batch, in bounded memory.

:class:`Accumulator` keeps integer token sums per *fine group* (detail used x finish reason x
status x model), the bounded heaps of the most expensive rows and the largest estimate errors,
the token histograms, the estimate's accuracy (:mod:`.stream_accuracy`: error buckets, largest
errors, a thinned sample for the scatter plot) and, when the file has a completion time,
per-minute sums. :mod:`.build` turns them into the typed report.

A fine group also carries the row's route (``route`` column: ``online`` or ``batch``; a file
written before the Batch route has no such column and reads as all online), so that each row is
billed at the price of the route it took, and the distinct ``batch_id`` values (one per batch
created, not per row) are counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ..core import BatchError, Price, PriceTable, UnknownModelError
from .parts import NONE, RowCost
from .stream_accuracy import AccuracySums
from .streamstats import TokenHistogram, TopN

__all__ = [
    "BATCH_ID_COLUMN",
    "BATCH_ROUTE",
    "KEY_COLUMNS",
    "ONLINE",
    "REQUIRED",
    "ROUTE_COLUMN",
    "SUMS",
    "TIMELINE_COLUMN",
    "Accumulator",
    "GroupKey",
    "IntArray",
    "ReportError",
]

_MAX_ERROR_CODES = 50
TIMELINE_COLUMN = "completed_at"
_TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens", "estimated_prompt_tokens")
KEY_COLUMNS = ("detail_used", "finish_reason", "status", "model")
REQUIRED = (*_TOKEN_COLUMNS, *KEY_COLUMNS)
# Optional: absent from files written before the Batch route (every row then went online).
ROUTE_COLUMN, BATCH_ID_COLUMN = "route", "batch_id"
ONLINE, BATCH_ROUTE = "online", "batch"
_GROUP_COLUMNS = (*KEY_COLUMNS, ROUTE_COLUMN)
# Sums kept per fine group, in this order.
SUMS = ("rows", "usage_rows", "prompt", "completion", "total", "pairs", "estimated", "actual", "exact")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GroupKey = tuple[str, str, str, str, str]  # detail used, finish reason, status, model, route


class ReportError(BatchError):
    """The file is not a result file this report can read (not Parquet, missing columns)."""


def _ints(column: pa.Array) -> tuple[IntArray, BoolArray]:
    """Values (nulls as 0) and validity of a token column."""
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    values = pc.fill_null(pc.cast(column, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64), valid


def _labels(column: pa.Array) -> pa.Array:
    return pc.fill_null(pc.cast(column, pa.string()), NONE)


@dataclass(slots=True)
class Accumulator:
    """Running state of one pass; nothing here grows with the number of rows."""

    table: PriceTable
    top_n: int
    id_column: str | None
    timed: bool
    rows_seen: int = 0
    groups: dict[GroupKey, IntArray] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)
    prices: dict[str, Price | None] = field(default_factory=dict)  # distinct model names only
    top: TopN[RowCost] = field(init=False)
    prompt_hist: TokenHistogram = field(default_factory=TokenHistogram)
    completion_hist: TokenHistogram = field(default_factory=TokenHistogram)
    accuracy: AccuracySums = field(init=False)
    minutes: dict[int, list[int]] = field(default_factory=dict)  # epoch minute -> [tokens, rows]
    batch_ids: set[str] = field(default_factory=set)  # one per batch created (a batch holds many rows)
    routed: bool = False  # some record batch had a route column

    def __post_init__(self) -> None:
        self.top = TopN(self.top_n)
        self.accuracy = AccuracySums(self.top_n)

    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        if n == 0:
            return
        rows = np.arange(self.rows_seen, self.rows_seen + n, dtype=np.int64)
        self.rows_seen += n
        prompt, has_usage = _ints(batch.column("prompt_tokens"))
        completion, _ = _ints(batch.column("completion_tokens"))
        total, _ = _ints(batch.column("total_tokens"))
        estimated, has_estimate = _ints(batch.column("estimated_prompt_tokens"))
        keys = {name: _labels(batch.column(name)) for name in KEY_COLUMNS}
        keys[ROUTE_COLUMN] = self._routes(batch)
        on_batch = np.asarray(pc.equal(keys[ROUTE_COLUMN], BATCH_ROUTE).to_numpy(zero_copy_only=False), np.bool_)
        rate_in, rate_out, batch_in, batch_out = self._rates(batch.column("model"), has_usage, rows, batch)
        paired = has_usage & has_estimate
        diff = estimated - prompt
        exact = paired & (diff == 0)

        self._add_groups(keys, has_usage, prompt, completion, total, paired, estimated, exact)
        if "error_code" in batch.schema.names:
            for entry in pc.value_counts(batch.column("error_code").drop_null()).to_pylist():
                self._count_error(str(entry["values"]), int(entry["counts"]))

        billed = np.nonzero(has_usage)[0]
        self.prompt_hist.add(prompt[billed])
        self.completion_hist.add(completion[billed])
        standard = (prompt * rate_in + completion * rate_out) / 1_000_000
        at_batch = (prompt * batch_in + completion * batch_out) / 1_000_000
        costs = (np.where(on_batch, at_batch, standard), standard, at_batch)  # billed, all standard, all Batch
        self.top.offer(
            costs[0][billed],
            rows[billed],
            lambda idx: self._row_costs(batch, keys, billed[idx], rows, (prompt, completion, total), costs),
        )
        self.accuracy.add(
            keys["detail_used"], rows, paired, estimated, prompt, diff, lambda idx: self._ids(batch, idx, rows)
        )
        if self.timed:
            self._add_minutes(batch.column(TIMELINE_COLUMN), has_usage, total)

    # -- pieces of add() --

    def _routes(self, batch: pa.RecordBatch) -> pa.Array:
        """Each row's route; ``online`` when the file has no route column (or the cell is null)."""
        if ROUTE_COLUMN not in batch.schema.names:
            return pa.array([ONLINE] * batch.num_rows, pa.string())
        self.routed = True
        if BATCH_ID_COLUMN in batch.schema.names:
            ids = pc.unique(pc.cast(batch.column(BATCH_ID_COLUMN), pa.string()).drop_null())
            self.batch_ids.update(str(x) for x in ids.to_pylist())
        return pc.fill_null(pc.cast(batch.column(ROUTE_COLUMN), pa.string()), ONLINE)

    def _rates(
        self, model: pa.Array, has_usage: BoolArray, rows: IntArray, batch: pa.RecordBatch
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per-row prices (USD per 1M tokens) by the row's model; 0 for rows without usage."""
        encoded = pc.dictionary_encode(pc.cast(model, pa.string()))
        index = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        names = [str(x) for x in encoded.dictionary.to_pylist()]
        unpriced = has_usage & (index < 0)
        if unpriced.any():
            i = int(np.argmax(unpriced))
            raise ReportError(
                f"row {int(rows[i])}{self._named(batch, i)} has token usage but no model: its cost cannot be priced"
            )
        table = np.zeros((len(names) + 1, 4))  # last line: rows without a model (no usage either)
        for j, name in enumerate(names):
            price = self._price(name, required=bool((has_usage & (index == j)).any()))
            if price is not None:
                table[j] = (price.input, price.output, price.batch_input, price.batch_output)
        per_row = table[index]  # index -1 picks the zero line
        zero = ~has_usage
        per_row[zero] = 0.0
        return per_row[:, 0], per_row[:, 1], per_row[:, 2], per_row[:, 3]

    def _price(self, name: str, *, required: bool) -> Price | None:
        if name not in self.prices:
            try:
                self.prices[name] = self.table.price_for(name)
            except UnknownModelError:
                self.prices[name] = None
        price = self.prices[name]
        if price is None and required:
            self.table.price_for(name)  # raises the pricing module's message (how to add a price)
        return price

    def _named(self, batch: pa.RecordBatch, i: int) -> str:
        if self.id_column is None:
            return ""
        return f" (id {batch.column(self.id_column)[i].as_py()!r})"

    def _add_groups(
        self,
        keys: Mapping[str, pa.Array],
        has_usage: BoolArray,
        prompt: IntArray,
        completion: IntArray,
        total: IntArray,
        paired: BoolArray,
        estimated: IntArray,
        exact: BoolArray,
    ) -> None:
        values = {
            "rows": np.ones(len(prompt), dtype=np.int64),
            "usage_rows": has_usage.astype(np.int64),
            "prompt": prompt,
            "completion": completion,
            "total": total,
            "pairs": paired.astype(np.int64),
            "estimated": np.where(paired, estimated, 0),
            "actual": np.where(paired, prompt, 0),
            "exact": exact.astype(np.int64),
        }
        grouped = (
            pa.table({**{k: keys[k] for k in _GROUP_COLUMNS}, **values})
            .group_by(list(_GROUP_COLUMNS))
            .aggregate([(name, "sum") for name in SUMS])
            .to_pydict()
        )
        for i in range(len(grouped["model"])):
            key: GroupKey = (
                grouped["detail_used"][i],
                grouped["finish_reason"][i],
                grouped["status"][i],
                grouped["model"][i],
                grouped[ROUTE_COLUMN][i],
            )
            sums = np.array([grouped[f"{name}_sum"][i] for name in SUMS], dtype=np.int64)
            if key in self.groups:
                self.groups[key] += sums
            else:
                self.groups[key] = sums

    def _count_error(self, code: str, count: int) -> None:
        if code not in self.error_codes and len(self.error_codes) >= _MAX_ERROR_CODES:
            code = "(other)"
        self.error_codes[code] = self.error_codes.get(code, 0) + count

    def _row_costs(
        self,
        batch: pa.RecordBatch,
        keys: Mapping[str, pa.Array],
        idx: IntArray,
        rows: IntArray,
        tokens: tuple[IntArray, IntArray, IntArray],
        costs: tuple[FloatArray, FloatArray, FloatArray],
    ) -> list[RowCost]:
        ids = self._ids(batch, idx, rows)
        picked = {name: keys[name].take(pa.array(idx)).to_pylist() for name in _GROUP_COLUMNS}
        (prompt, completion, total), (billed, standard, at_batch) = tokens, costs
        return [
            RowCost(
                row=int(rows[i]),
                id=ids[k],
                model=picked["model"][k],
                detail=picked["detail_used"][k],
                status=picked["status"][k],
                finish_reason=picked["finish_reason"][k],
                route=picked[ROUTE_COLUMN][k],
                prompt_tokens=int(prompt[i]),
                completion_tokens=int(completion[i]),
                total_tokens=int(total[i]),
                cost_billed=float(billed[i]),
                cost_standard=float(standard[i]),
                cost_batch=float(at_batch[i]),
            )
            for k, i in enumerate(idx.tolist())
        ]

    def _ids(self, batch: pa.RecordBatch, idx: IntArray, rows: IntArray) -> list[str]:
        if self.id_column is None:
            return [f"#{int(rows[i])}" for i in idx.tolist()]
        return [str(v) for v in batch.column(self.id_column).take(pa.array(idx)).to_pylist()]

    def _add_minutes(self, column: pa.Array, has_usage: BoolArray, total: IntArray) -> None:
        ms = pc.cast(pc.cast(column, pa.timestamp("ms")), pa.int64())
        valid = np.asarray(ms.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_) & has_usage
        minute = np.asarray(pc.fill_null(ms, 0).to_numpy(zero_copy_only=False), dtype=np.int64) // 60_000
        for m, tokens, count in _sum_by(minute[valid], total[valid]):
            slot = self.minutes.setdefault(m, [0, 0])
            slot[0] += tokens
            slot[1] += count


def _sum_by(keys: IntArray, values: IntArray) -> list[tuple[int, int, int]]:
    """(key, sum of values, count) per distinct key."""
    if len(keys) == 0:
        return []
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=values.astype(np.float64), minlength=len(uniq))
    return [(int(k), int(round(s)), int(c)) for k, s, c in zip(uniq, sums, counts, strict=True)]
