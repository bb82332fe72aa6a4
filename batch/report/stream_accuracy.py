"""The estimate's accuracy, summed in the report's one pass: estimated vs billed prompt tokens.

:class:`AccuracySums` keeps, for the rows that have both an estimate and usage, the error buckets
(in % of the actual count), how many were within 1 %, the mean absolute error, the bounded heap
of the largest errors and a thinned sample for the scatter plot: nothing grows with the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .parts import ACCURACY_BUCKETS, RowMiss, SamplePoint
from .streamstats import ThinnedSample, TopN

__all__ = ["AccuracySums"]

_BUCKET_EDGES = np.array([-10.0, -5.0, -1.0, 0.0, 1.0, 5.0, 10.0])
_SAMPLE_CAP = 2000

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
RowIds = Callable[[IntArray], list[str]]  # positions in the batch -> the rows' ids as shown


@dataclass(slots=True)
class AccuracySums:
    """Running accuracy sums of one pass over a result file."""

    top_n: int
    buckets: IntArray = field(default_factory=lambda: np.zeros(len(ACCURACY_BUCKETS), dtype=np.int64))
    within_1pct: int = 0
    abs_pct_sum: float = 0.0
    abs_pct_rows: int = 0
    misses: TopN[RowMiss] = field(init=False)
    sample: ThinnedSample[SamplePoint] = field(default_factory=lambda: ThinnedSample(_SAMPLE_CAP))

    def __post_init__(self) -> None:
        self.misses = TopN(self.top_n)

    def add(
        self,
        details: pa.Array,
        rows: IntArray,
        paired: BoolArray,
        estimated: IntArray,
        actual: IntArray,
        diff: IntArray,
        ids: RowIds,
    ) -> None:
        """One record batch: ``details`` its rows' detail labels, ``paired`` where both counts exist."""
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

        off = where[~is_exact]
        self.misses.offer(
            np.abs(diff[off]).astype(np.float64),
            rows[off],
            lambda idx: self._misses(ids, details, off[idx], rows, estimated, actual),
        )
        self._add_sample(details, where, rows, estimated, actual)

    def _misses(
        self,
        ids_of: RowIds,
        details: pa.Array,
        idx: IntArray,
        rows: IntArray,
        estimated: IntArray,
        actual: IntArray,
    ) -> list[RowMiss]:
        ids = ids_of(idx)
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
