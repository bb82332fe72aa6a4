"""Bounded-memory summaries of a stream of record batches: whatever the number of rows, each of
these holds a fixed amount of state.

* :class:`TopN` keeps the ``n`` rows with the largest key (a heap of ``n`` entries; a batch is
  pre-sorted in numpy so at most ``n`` of its rows reach Python);
* :class:`TokenHistogram` counts token counts in fixed buckets and coarsens them for display;
* :class:`ThinnedSample` keeps the rows whose position is a multiple of a stride, doubling the
  stride whenever the sample outgrows its cap (so it stays spread over the whole stream).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["Histogram", "ThinnedSample", "TokenHistogram", "TopN"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")


@dataclass(slots=True)
class TopN(Generic[T]):
    """The ``n`` largest rows by a key; ties keep the earlier row. Holds at most ``n`` entries."""

    n: int
    heap: list[tuple[float, int, T]] = field(default_factory=list)

    def offer(self, keys: FloatArray, rows: IntArray, make: Callable[[IntArray], list[T]]) -> None:
        """Offer a batch: ``keys[i]`` belongs to row ``rows[i]``; ``make(indices)`` builds the items
        for the (at most ``n``) indices into ``keys`` that may be kept."""
        if self.n == 0 or len(keys) == 0:
            return
        if len(self.heap) == self.n and float(keys.max()) < self.heap[0][0]:
            return
        order = np.lexsort((rows, -keys))[: self.n]  # largest key first, then earliest row
        for i, item in zip(order.tolist(), make(order), strict=True):
            entry = (float(keys[i]), -int(rows[i]), item)
            if len(self.heap) < self.n:
                heapq.heappush(self.heap, entry)
            elif entry[:2] > self.heap[0][:2]:
                heapq.heapreplace(self.heap, entry)

    def items(self) -> list[T]:
        """The kept items, largest key first (earlier row first on ties)."""
        return [item for _, _, item in sorted(self.heap, key=lambda e: (-e[0], -e[1]))]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Rows per token-count bin: ``bins`` are (low, high inclusive, rows), all ``width`` wide."""

    rows: int
    min: int | None
    max: int | None
    width: int
    bins: tuple[tuple[int, int, int], ...]


class TokenHistogram:
    """Fixed buckets: one per token below 4,096, then 256 tokens wide up to 2^20, then one more."""

    FINE = 4096
    WIDE = 256
    LIMIT = 1 << 20

    def __init__(self) -> None:
        self.fine = np.zeros(self.FINE, dtype=np.int64)
        self.wide = np.zeros((self.LIMIT - self.FINE) // self.WIDE, dtype=np.int64)
        self.beyond = 0
        self.rows = 0
        self.min: int | None = None
        self.max: int | None = None

    def add(self, values: IntArray) -> None:
        if len(values) == 0:
            return
        values = np.maximum(values, 0)
        self.rows += len(values)
        lo, hi = int(values.min()), int(values.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.fine += np.bincount(values[values < self.FINE], minlength=self.FINE)
        big = values[(values >= self.FINE) & (values < self.LIMIT)]
        if len(big):
            self.wide += np.bincount((big - self.FINE) // self.WIDE, minlength=len(self.wide))
        self.beyond += int(np.count_nonzero(values >= self.LIMIT))

    def display(self, max_bars: int = 32) -> Histogram:
        """At most ``max_bars`` equal bins covering min..max, their width a power of two.

        Exact below 4,096 tokens; above, each 256-token bucket goes whole to the bin holding its
        lower edge (exact whenever the bins are 256 or more wide, as they are for such ranges).
        """
        if self.min is None or self.max is None:
            return Histogram(0, None, None, 0, ())
        lo, hi = self.min, self.max
        width = 1
        while (hi - lo // width * width) // width + 1 > max_bars:
            width *= 2
        start = lo // width * width
        counts = np.zeros((hi - start) // width + 1, dtype=np.int64)
        last = len(counts) - 1
        nz = np.nonzero(self.fine)[0]
        np.add.at(counts, np.clip((nz - start) // width, 0, last), self.fine[nz])
        nz = np.nonzero(self.wide)[0]
        edges = np.maximum(self.FINE + nz * self.WIDE, lo)
        np.add.at(counts, np.clip((edges - start) // width, 0, last), self.wide[nz])
        counts[last] += self.beyond
        bins = tuple((start + i * width, start + (i + 1) * width - 1, int(c)) for i, c in enumerate(counts.tolist()))
        return Histogram(self.rows, lo, hi, width, bins)


@dataclass(slots=True)
class ThinnedSample(Generic[T]):
    """Items of rows whose position is a multiple of ``stride``; at most ``cap`` of them."""

    cap: int
    stride: int = 1
    items: list[tuple[int, T]] = field(default_factory=list)

    def wanted(self, rows: IntArray) -> npt.NDArray[np.bool_]:
        """Which of these rows the sample would take now."""
        return np.asarray(rows % self.stride == 0, dtype=np.bool_)

    def extend(self, rows: list[int], items: list[T]) -> None:
        self.items += zip(rows, items, strict=True)
        while len(self.items) > self.cap:
            self.stride *= 2
            self.items = [(row, item) for row, item in self.items if row % self.stride == 0]

    def values(self) -> list[T]:
        return [item for _, item in self.items]
