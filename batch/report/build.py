"""The typed :class:`~.model.Report` from the sums of one pass (:mod:`.stream`).

Every breakdown, the totals and the costs are derived from the fine groups' token sums, each
group priced with :func:`batch.core.prices.cost` at its model's standard and Batch rates; its
billed cost is the one of its route (Batch API rows at Batch prices, online rows at standard).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..core import cost
from .model import Report
from .parts import (
    ACCURACY_BUCKETS,
    NONE,
    Accuracy,
    AccuracyLine,
    LengthShare,
    Line,
    ModelLine,
    Timeline,
)
from .stream import (
    BATCH_ID_COLUMN,
    BATCH_ROUTE,
    ONLINE,
    ROUTE_COLUMN,
    SUMS,
    TIMELINE_COLUMN,
    Accumulator,
    GroupKey,
    IntArray,
)

__all__ = ["build"]

_DETAIL_ORDER = ("low", "high", "auto")
_STATUS_ORDER = ("ok", "filtered", "refused", "error")
_ROUTE_ORDER = (ONLINE, BATCH_ROUTE)


def build(acc: Accumulator, source: str, tpm: int | None) -> Report:
    total = _line(acc, "total", lambda key: True)
    by_detail = _breakdown(acc, 0, _DETAIL_ORDER)
    by_finish = _breakdown(acc, 1, ())
    by_status = _breakdown(acc, 2, _STATUS_ORDER)
    by_route = _breakdown(acc, 4, _ROUTE_ORDER)
    length = next((x for x in by_finish if x.key == "length"), None)
    answered = sum(x.rows for x in by_finish if x.key != NONE)
    models = tuple(
        ModelLine(name, price, _line(acc, name, _key_is(3, name)))
        for name, price in sorted(acc.prices.items())
        if price is not None
    )
    accuracy = _accuracy(acc)
    return Report(
        source=source,
        id_column=acc.id_column,
        total=total,
        models=models,
        by_detail=by_detail,
        by_finish_reason=by_finish,
        by_status=by_status,
        by_route=by_route,
        batches=len(acc.batch_ids),
        error_codes=dict(sorted(acc.error_codes.items(), key=lambda kv: (-kv[1], kv[0]))),
        length=LengthShare(
            rows=length.rows if length else 0,
            answered_rows=answered,
            share=(length.rows / answered) if length and answered else 0.0,
            completion_tokens=length.completion_tokens if length else 0,
            cost_standard=length.cost_standard if length else 0.0,
            cost_batch=length.cost_batch if length else 0.0,
            cost_billed=length.cost_billed if length else 0.0,
        ),
        accuracy=accuracy,
        top=tuple(acc.top.items()),
        prompt_histogram=acc.prompt_hist.display(),
        completion_histogram=acc.completion_hist.display(),
        timeline=_timeline(acc, tpm),
        notes=tuple(_notes(acc, total, accuracy, models)),
    )


def _line(acc: Accumulator, name: str, match: Callable[[GroupKey], bool]) -> Line:
    sums = np.zeros(len(SUMS), dtype=np.int64)
    standard = at_batch = billed = 0.0
    for key, group in acc.groups.items():
        if not match(key):
            continue
        sums += group
        price = acc.prices.get(key[3])
        if price is not None:
            p, c = int(group[2]), int(group[3])
            standard += cost(p, c, price)
            at_batch += cost(p, c, price, batch=True)
            billed += cost(p, c, price, batch=key[4] == BATCH_ROUTE)
    return Line(name, int(sums[0]), int(sums[1]), int(sums[2]), int(sums[3]), int(sums[4]), standard, at_batch, billed)


def _breakdown(acc: Accumulator, position: int, order: Sequence[str]) -> tuple[Line, ...]:
    names = {key[position] for key in acc.groups}
    lines = [_line(acc, name, _key_is(position, name)) for name in names]
    rank = {name: i for i, name in enumerate(order)}
    lines.sort(key=lambda x: (rank.get(x.key, len(rank)), x.key == NONE, -x.rows, x.key))
    return tuple(lines)


def _accuracy(acc: Accumulator) -> Accuracy:
    sums = np.zeros(len(SUMS), dtype=np.int64)
    for group in acc.groups.values():
        sums += group
    by_detail: dict[str, IntArray] = {}
    for key, group in acc.groups.items():
        if group[5]:
            by_detail[key[0]] = by_detail.get(key[0], np.zeros(len(SUMS), dtype=np.int64)) + group
    rank = {name: i for i, name in enumerate(_DETAIL_ORDER)}
    lines = sorted(
        (AccuracyLine(k, int(g[5]), int(g[6]), int(g[7]), int(g[8])) for k, g in by_detail.items()),
        key=lambda x: (rank.get(x.key, len(rank)), x.key),
    )
    sums_of = acc.accuracy
    return Accuracy(
        rows=int(sums[5]),
        estimated=int(sums[6]),
        actual=int(sums[7]),
        exact_rows=int(sums[8]),
        within_1pct_rows=sums_of.within_1pct,
        mean_abs_pct_error=sums_of.abs_pct_sum / sums_of.abs_pct_rows if sums_of.abs_pct_rows else None,
        buckets=dict(zip(ACCURACY_BUCKETS, (int(x) for x in sums_of.buckets), strict=True)),
        by_detail=tuple(lines),
        largest=tuple(sums_of.misses.items()),
        sample=tuple(sums_of.sample.values()),
        sample_stride=sums_of.sample.stride,
    )


def _timeline(acc: Accumulator, tpm: int | None) -> Timeline:
    if not acc.timed:
        return Timeline(
            False,
            "tokens per minute over the run: not available. The result file says how long each row took "
            "(latency_ms) but not when it finished; a per-row completion time column "
            f"({TIMELINE_COLUMN}, timestamp) is needed to place rows on a timeline.",
            tpm,
        )
    if not acc.minutes:
        return Timeline(False, f"tokens per minute: no billed row has a {TIMELINE_COLUMN} time", tpm)
    first = min(acc.minutes)
    minutes = tuple((m - first, t, r) for m, (t, r) in sorted(acc.minutes.items()))
    note = "billed tokens (prompt + completion) per minute of completion, from the first finished row"
    if tpm is not None:
        note += f"; the limit drawn is {tpm:,} TPM (Azure counts prompt + max_tokens at admission)"
    return Timeline(True, note, tpm, minutes)


def _notes(acc: Accumulator, total: Line, accuracy: Accuracy, models: Iterable[ModelLine]) -> list[str]:
    notes = [
        "cost = usage x the price of the model the service named; cached-input discounts are not applied "
        "(the result file does not say which prompt tokens were cached)",
        "billed = each row at the price of its route: online rows at standard prices, Batch API rows at "
        "Batch prices; 'all at standard' and 'all at Batch' are what the same rows would cost at one price",
    ]
    if not acc.routed:
        notes.append(f"the file has no {ROUTE_COLUMN} column (written before the Batch route): every row is online")
    elif acc.batch_ids:
        notes.append(f"batches: {len(acc.batch_ids):,} distinct {BATCH_ID_COLUMN} value(s) among the batch rows")
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
        notes.append(f"the scatter plot shows one row in {accuracy.sample_stride:,} ({len(accuracy.sample):,} points)")
    return notes


def _key_is(position: int, name: str) -> Callable[[GroupKey], bool]:
    return lambda key: key[position] == name
