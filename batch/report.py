"""What a finished run really cost, from its result Parquet, and how far the estimate was off.

:func:`build_report` streams the result file in record batches (``ParquetFile.iter_batches``,
reading only the columns it needs: never the answers) and keeps, whatever the file's size:

* integer token sums per *fine group* (detail used x finish reason x status x model): every
  breakdown, the totals and the costs are derived from these at the end, each group priced
  with :func:`batch.pricing.cost` at its model's standard and Batch rates;
* two bounded heaps: the N most expensive rows, and the N rows whose estimate was furthest off;
* fixed histograms of prompt and completion tokens per row (one bucket per token up to 4,096,
  then 256-token buckets up to 2^20), coarsened to a few dozen bars at the end;
* a thinned sample of (estimated, actual) prompt tokens for the scatter plot: rows whose
  position is a multiple of a stride that doubles whenever the sample outgrows its cap;
* per-minute token sums, only if the file has a ``completed_at`` timestamp column (the run's
  result schema has none today: the report says so instead of drawing a guess).

Costs come from ``usage`` as billed (``prompt_tokens``, ``completion_tokens``) and the price of
the ``model`` column, as the service named it (``gpt-4o-2024-08-06`` resolves to the ``gpt-4o``
entry). Rows without usage (refused before sending, failed) cost nothing and are counted. A row
with usage whose model has no price stops the report (:class:`~batch.errors.UnknownModelError`):
a cost is never silently zero. Cached-input discounts are not applied (the result file does not
say which prompt tokens were cached): the figures are an upper bound when caching happened.

The estimate error of a row is ``estimated_prompt_tokens - prompt_tokens`` (positive: the
estimate was high), in % of the actual count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import BatchError, UnknownModelError
from .pricing import Price, PriceTable, cost, load_prices
from .report_model import (
    ACCURACY_BUCKETS,
    NONE,
    Accuracy,
    AccuracyLine,
    LengthShare,
    Line,
    ModelLine,
    Report,
    RowCost,
    RowMiss,
    SamplePoint,
    Timeline,
)
from .results import RESULT_SCHEMA
from .streamstats import ThinnedSample, TokenHistogram, TopN

__all__ = ["DEFAULT_TOP", "Report", "ReportError", "build_report"]

#: Rows listed in the "most expensive" and "largest estimate error" tables by default.
DEFAULT_TOP = 10
_BUCKET_EDGES = np.array([-10.0, -5.0, -1.0, 0.0, 1.0, 5.0, 10.0])
_SAMPLE_CAP = 2000
_BATCH_ROWS = 65536
_MAX_ERROR_CODES = 50
_TIMELINE_COLUMN = "completed_at"
_TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens", "estimated_prompt_tokens")
_KEY_COLUMNS = ("detail_used", "finish_reason", "status", "model")
_REQUIRED = (*_TOKEN_COLUMNS, *_KEY_COLUMNS)
_DETAIL_ORDER = ("low", "high", "auto")
_STATUS_ORDER = ("ok", "filtered", "error")
# Sums kept per fine group, in this order.
_SUMS = ("rows", "usage_rows", "prompt", "completion", "total", "pairs", "estimated", "actual", "exact")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GroupKey = tuple[str, str, str, str]  # detail used, finish reason, status, model


class ReportError(BatchError):
    """The file is not a result file this report can read (not Parquet, missing columns)."""


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
    :class:`~batch.errors.UnknownModelError` for a billed row whose model has no price.
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
    timed = _TIMELINE_COLUMN in schema.names and pa.types.is_timestamp(schema.field(_TIMELINE_COLUMN).type)
    columns = [*_REQUIRED, "error_code"] if "error_code" in schema.names else list(_REQUIRED)
    if id_column is not None:
        columns.append(id_column)
    if timed:
        columns.append(_TIMELINE_COLUMN)

    acc = _Accumulator(table, top, id_column, timed)
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            acc.add(batch)
    except (OSError, pa.ArrowException) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    return acc.report(str(path), tpm)


# --- reading ----------------------------------------------------------------------------------


def _check_columns(path: Path, schema: pa.Schema) -> None:
    missing = [c for c in _REQUIRED if c not in schema.names]
    if missing:
        raise ReportError(
            f"{path} is not a result file of `batch run`: missing column(s) {', '.join(missing)} "
            "(see schemas/result.schema.json)"
        )
    for name in _REQUIRED:
        kind = schema.field(name).type
        expected = RESULT_SCHEMA.field(name).type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
        if (pa.types.is_integer(expected) and not numeric) or (pa.types.is_string(expected) and not text):
            raise ReportError(f"{path}: column {name} has type {kind}, expected {expected}")


def _ints(column: pa.Array) -> tuple[IntArray, BoolArray]:
    """Values (nulls as 0) and validity of a token column."""
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    values = pc.fill_null(pc.cast(column, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64), valid


def _labels(column: pa.Array) -> pa.Array:
    return pc.fill_null(pc.cast(column, pa.string()), NONE)


# --- accumulating -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Accumulator:
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
    misses: TopN[RowMiss] = field(init=False)
    prompt_hist: TokenHistogram = field(default_factory=TokenHistogram)
    completion_hist: TokenHistogram = field(default_factory=TokenHistogram)
    buckets: IntArray = field(default_factory=lambda: np.zeros(len(ACCURACY_BUCKETS), dtype=np.int64))
    within_1pct: int = 0
    abs_pct_sum: float = 0.0
    abs_pct_rows: int = 0
    sample: ThinnedSample[SamplePoint] = field(default_factory=lambda: ThinnedSample(_SAMPLE_CAP))
    minutes: dict[int, list[int]] = field(default_factory=dict)  # epoch minute -> [tokens, rows]

    def __post_init__(self) -> None:
        self.top = TopN(self.top_n)
        self.misses = TopN(self.top_n)

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
        keys = {name: _labels(batch.column(name)) for name in _KEY_COLUMNS}
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
        self.top.offer(
            standard[billed],
            rows[billed],
            lambda idx: self._row_costs(batch, keys, billed[idx], rows, prompt, completion, total, standard, at_batch),
        )
        self._add_accuracy(batch, keys, rows, paired, estimated, prompt, diff)
        if self.timed:
            self._add_minutes(batch.column(_TIMELINE_COLUMN), has_usage, total)

    # -- pieces of add() --

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
            pa.table({**{k: keys[k] for k in _KEY_COLUMNS}, **values})
            .group_by(list(_KEY_COLUMNS))
            .aggregate([(name, "sum") for name in _SUMS])
            .to_pydict()
        )
        for i in range(len(grouped["model"])):
            key = (grouped["detail_used"][i], grouped["finish_reason"][i], grouped["status"][i], grouped["model"][i])
            sums = np.array([grouped[f"{name}_sum"][i] for name in _SUMS], dtype=np.int64)
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
        prompt: IntArray,
        completion: IntArray,
        total: IntArray,
        standard: FloatArray,
        at_batch: FloatArray,
    ) -> list[RowCost]:
        ids = self._ids(batch, idx, rows)
        picked = {name: keys[name].take(pa.array(idx)).to_pylist() for name in _KEY_COLUMNS}
        return [
            RowCost(
                row=int(rows[i]),
                id=ids[k],
                model=picked["model"][k],
                detail=picked["detail_used"][k],
                status=picked["status"][k],
                finish_reason=picked["finish_reason"][k],
                prompt_tokens=int(prompt[i]),
                completion_tokens=int(completion[i]),
                total_tokens=int(total[i]),
                cost_standard=float(standard[i]),
                cost_batch=float(at_batch[i]),
            )
            for k, i in enumerate(idx.tolist())
        ]

    def _ids(self, batch: pa.RecordBatch, idx: IntArray, rows: IntArray) -> list[str]:
        if self.id_column is None:
            return [f"#{int(rows[i])}" for i in idx.tolist()]
        return [str(v) for v in batch.column(self.id_column).take(pa.array(idx)).to_pylist()]

    def _add_accuracy(
        self,
        batch: pa.RecordBatch,
        keys: Mapping[str, pa.Array],
        rows: IntArray,
        paired: BoolArray,
        estimated: IntArray,
        actual: IntArray,
        diff: IntArray,
    ) -> None:
        where = np.nonzero(paired)[0]
        if len(where) == 0:
            return
        d, a = diff[where], actual[where]
        positive = a > 0
        pct = np.where(positive, d * 100.0 / np.maximum(a, 1), np.where(d > 0, np.inf, np.where(d < 0, -np.inf, 0.0)))
        self.abs_pct_sum += float(np.abs(pct[positive]).sum())
        self.abs_pct_rows += int(np.count_nonzero(positive))
        self.within_1pct += int(np.count_nonzero(np.abs(pct) <= 1.0))
        is_exact = d == 0
        self.buckets[4] += int(np.count_nonzero(is_exact))
        off_pct = pct[~is_exact]
        # Below zero the buckets are [low, high), above (low, high]: exactly -1% and +1% are "within 1%".
        slot = np.where(
            off_pct < 0, np.digitize(off_pct, _BUCKET_EDGES), np.digitize(off_pct, _BUCKET_EDGES, right=True)
        )
        slot = np.where(slot >= 4, slot + 1, slot)  # skip the "exact" bucket
        self.buckets += np.bincount(slot, minlength=len(ACCURACY_BUCKETS)).astype(np.int64)

        details = keys["detail_used"]
        off = where[~is_exact]
        self.misses.offer(
            np.abs(diff[off]).astype(np.float64),
            rows[off],
            lambda idx: self._misses(batch, details, off[idx], rows, estimated, actual),
        )
        self._add_sample(details, where, rows, estimated, actual)

    def _misses(
        self,
        batch: pa.RecordBatch,
        details: pa.Array,
        idx: IntArray,
        rows: IntArray,
        estimated: IntArray,
        actual: IntArray,
    ) -> list[RowMiss]:
        ids = self._ids(batch, idx, rows)
        names = details.take(pa.array(idx)).to_pylist()
        return [
            RowMiss(int(rows[i]), ids[k], names[k], int(estimated[i]), int(actual[i]))
            for k, i in enumerate(idx.tolist())
        ]

    def _add_sample(
        self, details: pa.Array, where: IntArray, rows: IntArray, estimated: IntArray, actual: IntArray
    ) -> None:
        take = where[self.sample.wanted(rows[where])]
        names = details.take(pa.array(take)).to_pylist()
        self.sample.extend(
            [int(rows[i]) for i in take.tolist()],
            [SamplePoint(int(estimated[i]), int(actual[i]), str(names[k])) for k, i in enumerate(take.tolist())],
        )

    def _add_minutes(self, column: pa.Array, has_usage: BoolArray, total: IntArray) -> None:
        ms = pc.cast(pc.cast(column, pa.timestamp("ms")), pa.int64())
        valid = np.asarray(ms.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_) & has_usage
        minute = np.asarray(pc.fill_null(ms, 0).to_numpy(zero_copy_only=False), dtype=np.int64) // 60_000
        for m, tokens, count in _sum_by(minute[valid], total[valid]):
            slot = self.minutes.setdefault(m, [0, 0])
            slot[0] += tokens
            slot[1] += count

    # -- the report --

    def report(self, source: str, tpm: int | None) -> Report:
        total = self._line("total", lambda key: True)
        by_detail = self._breakdown(0, _DETAIL_ORDER)
        by_finish = self._breakdown(1, ())
        by_status = self._breakdown(2, _STATUS_ORDER)
        length = next((x for x in by_finish if x.key == "length"), None)
        answered = sum(x.rows for x in by_finish if x.key != NONE)
        models = tuple(
            ModelLine(name, price, self._line(name, _key_is(3, name)))
            for name, price in sorted(self.prices.items())
            if price is not None
        )
        accuracy = self._accuracy()
        return Report(
            source=source,
            id_column=self.id_column,
            total=total,
            models=models,
            by_detail=by_detail,
            by_finish_reason=by_finish,
            by_status=by_status,
            error_codes=dict(sorted(self.error_codes.items(), key=lambda kv: (-kv[1], kv[0]))),
            length=LengthShare(
                rows=length.rows if length else 0,
                answered_rows=answered,
                share=(length.rows / answered) if length and answered else 0.0,
                completion_tokens=length.completion_tokens if length else 0,
                cost_standard=length.cost_standard if length else 0.0,
                cost_batch=length.cost_batch if length else 0.0,
            ),
            accuracy=accuracy,
            top=tuple(self.top.items()),
            prompt_histogram=self.prompt_hist.display(),
            completion_histogram=self.completion_hist.display(),
            timeline=self._timeline(tpm),
            notes=tuple(self._notes(total, accuracy, models)),
        )

    def _line(self, name: str, match: Callable[[GroupKey], bool]) -> Line:
        sums = np.zeros(len(_SUMS), dtype=np.int64)
        standard = at_batch = 0.0
        for key, group in self.groups.items():
            if not match(key):
                continue
            sums += group
            price = self.prices.get(key[3])
            if price is not None:
                p, c = int(group[2]), int(group[3])
                standard += cost(p, c, price)
                at_batch += cost(p, c, price, batch=True)
        return Line(name, int(sums[0]), int(sums[1]), int(sums[2]), int(sums[3]), int(sums[4]), standard, at_batch)

    def _breakdown(self, position: int, order: Sequence[str]) -> tuple[Line, ...]:
        names = {key[position] for key in self.groups}
        lines = [self._line(name, _key_is(position, name)) for name in names]
        rank = {name: i for i, name in enumerate(order)}
        lines.sort(key=lambda x: (rank.get(x.key, len(rank)), x.key == NONE, -x.rows, x.key))
        return tuple(lines)

    def _accuracy(self) -> Accuracy:
        sums = np.zeros(len(_SUMS), dtype=np.int64)
        for group in self.groups.values():
            sums += group
        by_detail: dict[str, IntArray] = {}
        for key, group in self.groups.items():
            if group[5]:
                by_detail[key[0]] = by_detail.get(key[0], np.zeros(len(_SUMS), dtype=np.int64)) + group
        rank = {name: i for i, name in enumerate(_DETAIL_ORDER)}
        lines = sorted(
            (AccuracyLine(k, int(g[5]), int(g[6]), int(g[7]), int(g[8])) for k, g in by_detail.items()),
            key=lambda x: (rank.get(x.key, len(rank)), x.key),
        )
        return Accuracy(
            rows=int(sums[5]),
            estimated=int(sums[6]),
            actual=int(sums[7]),
            exact_rows=int(sums[8]),
            within_1pct_rows=self.within_1pct,
            mean_abs_pct_error=self.abs_pct_sum / self.abs_pct_rows if self.abs_pct_rows else None,
            buckets=dict(zip(ACCURACY_BUCKETS, (int(x) for x in self.buckets), strict=True)),
            by_detail=tuple(lines),
            largest=tuple(self.misses.items()),
            sample=tuple(self.sample.values()),
            sample_stride=self.sample.stride,
        )

    def _timeline(self, tpm: int | None) -> Timeline:
        if not self.timed:
            return Timeline(
                False,
                "tokens per minute over the run: not available. The result file says how long each row took "
                "(latency_ms) but not when it finished; a per-row completion time column "
                f"({_TIMELINE_COLUMN}, timestamp) is needed to place rows on a timeline.",
                tpm,
            )
        if not self.minutes:
            return Timeline(False, f"tokens per minute: no billed row has a {_TIMELINE_COLUMN} time", tpm)
        first = min(self.minutes)
        minutes = tuple((m - first, t, r) for m, (t, r) in sorted(self.minutes.items()))
        note = "billed tokens (prompt + completion) per minute of completion, from the first finished row"
        if tpm is not None:
            note += f"; the limit drawn is {tpm:,} TPM (Azure counts prompt + max_tokens at admission)"
        return Timeline(True, note, tpm, minutes)

    def _notes(self, total: Line, accuracy: Accuracy, models: Iterable[ModelLine]) -> list[str]:
        notes = [
            "cost = usage x the price of the model the service named; cached-input discounts are not applied "
            "(the result file does not say which prompt tokens were cached)",
        ]
        if total.rows > total.usage_rows:
            notes.append(f"{total.rows - total.usage_rows:,} row(s) without usage (refused or failed) cost $0")
        for m in models:
            derived = " (Batch prices derived: 50%)" if m.price.batch_derived else ""
            notes.append(f"prices for {m.model}: entry {m.price.name} from {m.price.source}, {m.price.date}{derived}")
        if accuracy.rows < total.usage_rows:
            notes.append(
                f"{total.usage_rows - accuracy.rows:,} billed row(s) have no estimate: left out of estimate vs actual"
            )
        if accuracy.sample_stride > 1:
            notes.append(
                f"the scatter plot shows one row in {accuracy.sample_stride:,} ({len(accuracy.sample):,} points)"
            )
        return notes


def _key_is(position: int, name: str) -> Callable[[GroupKey], bool]:
    return lambda key: key[position] == name


def _sum_by(keys: IntArray, values: IntArray) -> list[tuple[int, int, int]]:
    """(key, sum of values, count) per distinct key."""
    if len(keys) == 0:
        return []
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=values.astype(np.float64), minlength=len(uniq))
    return [(int(k), int(round(s)), int(c)) for k, s, c in zip(uniq, sums, counts, strict=True)]
