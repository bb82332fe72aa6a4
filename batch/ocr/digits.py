"""Check each recognised digit against the page's own digits, and correct the ones that disagree.

Small print defeats Tesseract's LSTM in ways that are systematic per font: on one page every
dotted zero of DejaVu Sans Mono may risk becoming a 6, on another a serif 9 a 0. The same page
prints each digit hundreds of times, mostly read right, so it carries its own answer:
:func:`verify_digits` builds a template per digit from the page itself (the mean of the
windows around every digit read as that digit, each re-centred on the template twice) and scores
every digit against all ten by normalised cross-correlation, allowing a shift of a couple of
pixels. A digit is changed only when it is both

- atypical for the digit it was read as (its score is in the lower half of that digit's scores on
  the page), and
- typical for another digit (it scores at least as well as three quarters of that digit's own
  members) which is also its best match.

Windows are placed from Tesseract's character boxes, which are loose: each run of digits between
separators is anchored on the median of its own boxes and stepped by the page's digit pitch
(digits share one width in nearly all fonts). Tokens much taller or shorter than the page's
digits (a heading) are left out. On 280 generated statement pages (``bench/ocr_accuracy.py``) it
mended 235 numbers and spoilt 2; most were 10-11 px print: a serif 9 read as 0, DejaVu Sans
Mono's dotted 0 read as 6, 8 or 9, a condensed 1 read as 2.

A ``$`` or ``#`` read just before a digit of a number (``$15.20`` for ``515.20``) is scored the
same way, one digit pitch left of that digit, and becomes the digit it is typical of; a real
currency sign matches no digit that well (on generated statements: 6 numbers mended, none spoilt).

A digit Tesseract read twice from one glyph is dropped by :mod:`.doubled`, which shares the
digit pitch measured here (:func:`digit_pitch`).

Pure numpy on the page image and the recognised characters: no OCR engine is needed here.
"""

from __future__ import annotations

import re
from statistics import median

import numpy as np
import numpy.typing as npt

from .glyphs import Box

__all__ = ["NUMBER", "digit_pitch", "verify_digits"]

# A number: digits with separators inside (amounts, dates, account numbers), 4 digits or more.
NUMBER = re.compile(r"(?<![\w.,\-])-?\d[\d,.\-]*\d(?!\w)")
MIN_DIGITS = 4  # per number: shorter ones (page numbers, days) are too few to matter
MIN_STEPS = 20  # digit-to-digit steps needed to know the page's digit pitch
MIN_MEMBERS = 8  # digits read as a class before its template and its score spread are trusted
ATYPICAL = 50.0  # percentile of its own class's scores under which a digit is doubted
TYPICAL = 15.0  # percentile of the other class's own scores the doubted digit must reach
_DIGIT_LOOKALIKES = frozenset("$#")  # signs Tesseract reads for a digit of small print
SHIFT_X, SHIFT_Y = 3, 2  # pixels either way a window may move to fit a template
MAX_EXEMPLARS = 40  # members of a class used to build its template (evenly spread over the page)
_HEIGHT_TOLERANCE = 0.25  # numbers whose digits are this much taller or shorter are left out

Floats = npt.NDArray[np.float32]


def verify_digits(pixels: npt.NDArray[np.uint8], chars: list[str], boxes: list[Box | None]) -> list[str]:
    """``chars`` (one character per entry, spaces and newlines with box None) with the digits that
    look like another digit of this page changed to it; the input lists are not changed."""
    pitch = digit_pitch(chars, boxes)
    if pitch is None:
        return chars
    index, centres, heights = _digit_positions(chars, boxes, pitch)
    if len(index) < 3 * MIN_MEMBERS:
        return chars
    height = float(np.median(heights))
    keep = np.abs(np.asarray(heights) / height - 1.0) <= _HEIGHT_TOLERANCE
    index = [i for i, k in zip(index, keep, strict=True) if k]
    centres = [c for c, k in zip(centres, keep, strict=True) if k]
    labels = np.array([int(chars[i]) for i in index])
    w, h = round(pitch) + 2, round(height) + 4
    blocks = _blocks(pixels, centres, w + 2 * SHIFT_X, h + 2 * SHIFT_Y)
    classes = [c for c in range(10) if np.count_nonzero(labels == c) >= MIN_MEMBERS]
    if len(classes) < 2:
        return chars
    templates = _templates(blocks, labels, classes, w, h)
    scores = _best_scores(blocks, templates, w, h)  # (digits, classes)
    column = {c: j for j, c in enumerate(classes)}
    out = list(chars)
    own_col = np.array([column.get(int(c), -1) for c in labels])
    own = np.where(own_col >= 0, scores[np.arange(len(labels)), np.maximum(own_col, 0)], np.nan)
    low = {c: float(np.percentile(own[labels == c], ATYPICAL)) for c in classes}
    high = {c: float(np.percentile(own[labels == c], TYPICAL)) for c in classes}
    for k, i in enumerate(index):
        read = int(labels[k])
        if read not in column:
            continue
        best = classes[int(np.argmax(scores[k]))]
        if best != read and own[k] < low[read] and scores[k, column[best]] >= high[best]:
            out[i] = str(best)
    # A sign read for a digit just before one ("$15.20" for "515.20", "#545-201142-49"): the spot
    # one pitch left of the digit is scored the same way, and becomes the digit it is typical of.
    where = {i: centres[k] for k, i in enumerate(index)}
    spots = [i for i in range(len(chars) - 1) if chars[i] in _DIGIT_LOOKALIKES and i + 1 in where]
    if spots:
        at = [(where[i + 1][0] - round(pitch), where[i + 1][1]) for i in spots]
        extra = _best_scores(_blocks(pixels, at, w + 2 * SHIFT_X, h + 2 * SHIFT_Y), templates, w, h)
        for i, row in zip(spots, extra, strict=True):
            best = classes[int(np.argmax(row))]
            if row[column[best]] >= high[best]:
                out[i] = str(best)
    return out


def digit_pitch(chars: list[str], boxes: list[Box | None]) -> float | None:
    steps = [
        b2[0] - b1[0]
        for c1, c2, b1, b2 in zip(chars, chars[1:], boxes, boxes[1:], strict=False)
        if c1.isdigit() and c2.isdigit() and b1 is not None and b2 is not None and b2[0] > b1[0]
    ]
    return float(np.median(steps)) if len(steps) >= MIN_STEPS else None


def _digit_positions(
    chars: list[str], boxes: list[Box | None], pitch: float
) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """Indexes of the digits of numbers, their window centres, and their boxes' heights."""
    text = "".join(chars)
    index: list[int] = []
    centres: list[tuple[int, int]] = []
    heights: list[int] = []
    for m in NUMBER.finditer(text):
        digits = [i for i in range(m.start(), m.end()) if text[i].isdigit()]
        if len(digits) < MIN_DIGITS or any(boxes[i] is None for i in digits):
            continue
        cy = round(median((_box(boxes, i)[1] + _box(boxes, i)[3]) / 2 for i in digits))
        height = round(median(_box(boxes, i)[3] - _box(boxes, i)[1] for i in digits))
        start = 0
        while start < len(digits):  # runs of adjacent digits, each anchored on its own boxes
            end = start + 1
            while end < len(digits) and digits[end] == digits[end - 1] + 1:
                end += 1
            run = digits[start:end]
            x0 = median((_box(boxes, i)[0] + _box(boxes, i)[2]) / 2 - k * pitch for k, i in enumerate(run))
            for k, i in enumerate(run):
                index.append(i)
                centres.append((round(x0 + k * pitch), cy))
                heights.append(height)
            start = end
    return index, centres, heights


def _box(boxes: list[Box | None], i: int) -> Box:
    box = boxes[i]
    assert box is not None
    return box


def _blocks(pixels: npt.NDArray[np.uint8], centres: list[tuple[int, int]], bw: int, bh: int) -> Floats:
    """The (bh, bw) patch around each centre; the page is padded with its edge so all fit."""
    pad = max(bw, bh)
    page = np.pad(pixels, pad, mode="edge")
    ys = np.array([cy for _, cy in centres]) + pad - bh // 2
    xs = np.array([cx for cx, _ in centres]) + pad - bw // 2
    rows = ys[:, None, None] + np.arange(bh)[None, :, None]
    cols = xs[:, None, None] + np.arange(bw)[None, None, :]
    return page[rows, cols].astype(np.float32)


class _Windows:
    """Correlations of windows inside each block with templates, normalised, at any shift.

    The template is zero-mean, so a window's own mean drops out of the product; its spread comes
    from running sums (integral images) of the block and of its square, computed once.
    """

    def __init__(self, blocks: Floats, w: int, h: int) -> None:
        self.blocks, self.w, self.h = blocks, w, h
        wide = blocks.astype(np.float64)
        self._sum = np.pad(wide.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))
        self._sq = np.pad((wide * wide).cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))

    def _box(self, table: npt.NDArray[np.float64], dy: int, dx: int) -> npt.NDArray[np.float64]:
        y1, x1 = dy + self.h, dx + self.w
        return table[:, y1, x1] - table[:, dy, x1] - table[:, y1, dx] + table[:, dy, dx]

    def spread(self, dy: int, dx: int) -> npt.NDArray[np.float64]:
        """Norm of each zero-mean window at this shift (1 where the window is flat)."""
        n = self.w * self.h
        total = self._box(self._sum, dy, dx)
        var = self._box(self._sq, dy, dx) - total * total / n
        return np.sqrt(np.where(var > 1e-6, var, 1.0))

    def view(self, dy: int, dx: int) -> Floats:
        return self.blocks[:, dy : dy + self.h, dx : dx + self.w]

    def normalised(self, dy: int, dx: int) -> Floats:
        return self._normalise(self.view(dy, dx))

    def at(self, shifts: npt.NDArray[np.int64]) -> Floats:
        """Each block's window at its own shift (rows of ``shifts``: dy, dx), normalised."""
        n = len(self.blocks)
        rows = shifts[:, 0, None, None] + np.arange(self.h)[None, :, None]
        cols = shifts[:, 1, None, None] + np.arange(self.w)[None, None, :]
        return self._normalise(self.blocks[np.arange(n)[:, None, None], rows, cols])

    def _normalise(self, windows: Floats) -> Floats:
        win = windows.reshape(len(windows), self.w * self.h)
        win = win - win.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(win, axis=1, keepdims=True)
        out: Floats = win / np.where(norm > 0, norm, 1.0)
        return out


def _shifts() -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(2 * SHIFT_Y + 1) for dx in range(2 * SHIFT_X + 1)]


def _templates(blocks: Floats, labels: npt.NDArray[np.int_], classes: list[int], w: int, h: int) -> Floats:
    """One unit-norm template per class: mean of (up to MAX_EXEMPLARS of) its members, each moved
    to where it fits the template best, twice over."""
    chosen: list[int] = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        step = max(1, len(members) // MAX_EXEMPLARS)
        chosen += members[::step][:MAX_EXEMPLARS].tolist()
    sub = _Windows(blocks[chosen], w, h)
    sub_labels = labels[chosen]
    centred = sub.normalised(SHIFT_Y, SHIFT_X)
    templates = np.stack([centred[sub_labels == c].mean(axis=0) for c in classes])
    row = {c: j for j, c in enumerate(classes)}
    mine = np.array([row[int(c)] for c in sub_labels])
    for _ in range(2):
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        own = templates[mine].reshape(len(chosen), h, w)
        best = np.full(len(chosen), -np.inf)
        where = np.zeros((len(chosen), 2), dtype=np.int64)
        for dy, dx in _shifts():
            score = np.einsum("nhw,nhw->n", sub.view(dy, dx), own) / sub.spread(dy, dx)
            better = score > best
            best[better] = score[better]
            where[better] = (dy, dx)
        moved = sub.at(where)
        templates = np.stack([moved[sub_labels == c].mean(axis=0) for c in classes])
    norm: Floats = templates / np.linalg.norm(templates, axis=1, keepdims=True)
    return norm


def _best_scores(blocks: Floats, templates: Floats, w: int, h: int) -> Floats:
    """Each window's best correlation with each template over the allowed shifts."""
    windows = _Windows(blocks, w, h)
    shaped = templates.reshape(len(templates), h, w)
    best = np.full((len(blocks), len(templates)), -np.inf, dtype=np.float32)
    for dy, dx in _shifts():
        # einsum, not a matrix product: OpenBLAS would wake a thread per core for these small
        # products and, on a busy machine, spend 4x the CPU time waiting for them.
        score = np.einsum("nhw,chw->nc", windows.view(dy, dx), shaped) / windows.spread(dy, dx)[:, None]
        np.maximum(best, score, out=best, casting="unsafe")
    return best
