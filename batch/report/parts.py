"""The parts of ``batch report``'s numbers: one line of a breakdown, per-model lines, the ``length``
share, the estimate's accuracy, the costliest rows, the timeline.

Costs are USD; token counts are as billed (``usage``). Each cost comes three ways: *billed* (every
row at the price of the route it took: online at standard prices, the Batch API at Batch prices),
and the what-ifs *standard* (all rows at standard prices) and *batch* (all at Batch prices). An
estimate error is ``estimated - actual`` prompt tokens (positive: the estimate was high), in % of
the actual count. :class:`~.model.Report` holds them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core import Price

__all__ = [
    "ACCURACY_BUCKETS",
    "Accuracy",
    "AccuracyLine",
    "LengthShare",
    "Line",
    "ModelLine",
    "NONE",
    "RowCost",
    "RowMiss",
    "SamplePoint",
    "Timeline",
]


#: Label of a null key (no finish reason on an error row, no detail on a refused one, ...).
NONE = "(none)"
#: Estimate error buckets, in % of the actual prompt tokens: [low, high) below zero, (low, high]
#: above, so that exactly -1% and +1% both fall in the buckets next to "exact".
ACCURACY_BUCKETS = (
    "< -10%",
    "-10% to -5%",
    "-5% to -1%",
    "-1% to 0%",
    "exact",
    "0% to +1%",
    "+1% to +5%",
    "+5% to +10%",
    "> +10%",
)


@dataclass(frozen=True, slots=True)
class Line:
    """Rows, billed tokens and cost of one breakdown key (or of the whole file)."""

    key: str
    rows: int
    usage_rows: int  # rows that carry usage (were billed)
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_standard: float  # what-if: every row at standard prices
    cost_batch: float  # what-if: every row at Batch prices
    cost_billed: float  # each row at the price of its route


@dataclass(frozen=True, slots=True)
class ModelLine:
    """One model as the service named it, and the price entry it resolved to."""

    model: str
    price: Price
    line: Line


@dataclass(frozen=True, slots=True)
class LengthShare:
    """Answers cut short by ``max_tokens`` (``finish_reason: length``): paid for, possibly useless."""

    rows: int
    answered_rows: int  # rows with any finish reason
    share: float  # rows / answered_rows (0 when nothing was answered)
    completion_tokens: int
    cost_standard: float
    cost_batch: float
    cost_billed: float


@dataclass(frozen=True, slots=True)
class AccuracyLine:
    """Estimated against billed prompt tokens over the rows of one detail level that have both."""

    key: str
    rows: int
    estimated: int
    actual: int
    exact_rows: int

    @property
    def error_pct(self) -> float | None:
        return _pct(self.estimated - self.actual, self.actual)


@dataclass(frozen=True, slots=True)
class RowMiss:
    """One row's estimate against its billed prompt tokens."""

    row: int
    id: str
    detail: str
    estimated: int
    actual: int

    @property
    def error(self) -> int:
        return self.estimated - self.actual

    @property
    def error_pct(self) -> float | None:
        return _pct(self.error, self.actual)


@dataclass(frozen=True, slots=True)
class SamplePoint:
    estimated: int
    actual: int
    detail: str


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Estimate against actual prompt tokens, over rows with both (``rows``)."""

    rows: int
    estimated: int
    actual: int
    exact_rows: int
    within_1pct_rows: int
    mean_abs_pct_error: float | None  # over rows with actual > 0
    buckets: Mapping[str, int]  # ACCURACY_BUCKETS -> rows
    by_detail: tuple[AccuracyLine, ...]
    largest: tuple[RowMiss, ...]  # largest absolute differences, largest first
    sample: tuple[SamplePoint, ...]  # thinned, for the scatter plot
    sample_stride: int  # the sample holds the rows whose position is a multiple of this

    @property
    def error(self) -> int:
        return self.estimated - self.actual

    @property
    def error_pct(self) -> float | None:
        return _pct(self.error, self.actual) if self.rows else None

    @property
    def exact_share(self) -> float | None:
        return self.exact_rows / self.rows if self.rows else None


@dataclass(frozen=True, slots=True)
class RowCost:
    """One of the most expensive rows."""

    row: int
    id: str
    model: str
    detail: str
    status: str
    finish_reason: str
    route: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_billed: float
    cost_standard: float
    cost_batch: float


@dataclass(frozen=True, slots=True)
class Timeline:
    """Billed tokens per minute of the run, when the file says when rows finished."""

    available: bool
    note: str
    tpm: int | None
    minutes: tuple[tuple[int, int, int], ...] = ()  # (minute from the first completion, tokens, rows)

    @property
    def peak(self) -> int:
        return max((t for _, t, _ in self.minutes), default=0)


def _pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None if part else 0.0
    return part * 100.0 / whole
