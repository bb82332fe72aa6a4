"""The page's own hyphen glyph, learned from where it was read, and how well a spot matches it.

The same hyphen glyph is printed, and usually read, many times on a statement page: inside dates
(``2026-03-31``) and account numbers (``0482-331907-62``). :func:`hyphen_model` learns its look
from those (a mean template, and where it sits relative to the next digit); :func:`minus_score`
scores a spot of the page against it. :mod:`.minus` uses both to put back lost minus signs,
:mod:`.separators` shares the page's glyph boxes (:data:`Box`) and contrast floor.

Pure numpy on the page image and the recognised glyphs: no OCR engine is needed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MIN_CONTRAST", "Box", "HyphenModel", "hyphen_model", "ink_left", "minus_score"]

Box = tuple[int, int, int, int]  # left, top, right, bottom (pixels, right/bottom exclusive)

MIN_EXEMPLARS = 4  # hyphens needed to learn the page's minus sign
EXEMPLAR_CONF = 90.0  # Tesseract symbol confidence (0-100) a hyphen needs to serve as an exemplar
_SHIFT_X, _SHIFT_Y = 3, 2  # search around the expected spot, in pixels of the (upscaled) page

_HYPHEN = re.compile(r"(?<=\d)-(?=\d)")


@dataclass(frozen=True, slots=True)
class HyphenModel:
    """What a hyphen looks like on this page and where it sits before a digit."""

    template: npt.NDArray[np.float32]  # zero-mean, unit-norm window around a hyphen
    width: int
    height: int
    offset: int  # from the hyphen's centre to the left edge of the digit after it
    ink: float  # median contrast (norm of the zero-mean window) of the exemplars
    advance: int  # digit-to-digit step and each digit's width: to place the first digit of an
    digit_widths: dict[str, int]  # amount whose box swallowed the lost minus before it
    ink_offset: int | None = None  # from the hyphen's centre to the digit's first inked column


def _window(a: npt.NDArray[np.float32], cx: int, cy: int, w: int, h: int) -> npt.NDArray[np.float32] | None:
    x0, y0 = cx - w // 2, cy - h // 2
    if x0 < 0 or y0 < 0 or x0 + w > a.shape[1] or y0 + h > a.shape[0]:
        return None
    return a[y0 : y0 + h, x0 : x0 + w]


def _normalised(w: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], float]:
    z = w - w.mean()
    n = float(np.linalg.norm(z))
    return (z / n if n > 0 else z), n


def _digit_metrics(chars: list[str], boxes: list[Box | None]) -> tuple[int, dict[str, int]] | None:
    """Median step from a digit to the next, and the median width of each digit's box."""
    steps = [
        b2[0] - b1[0]
        for c1, c2, b1, b2 in zip(chars, chars[1:], boxes, boxes[1:], strict=False)
        if c1.isdigit() and c2.isdigit() and b1 is not None and b2 is not None and b2[0] > b1[0]
    ]
    if len(steps) < 10:
        return None
    widths: dict[str, list[int]] = {}
    for c, b in zip(chars, boxes, strict=True):
        if c.isdigit() and b is not None:
            widths.setdefault(c, []).append(b[2] - b[0])
    # Capped: on a page of negative balances, the boxes of a digit that follows the minus are wide.
    cap = int(np.median([w for ws in widths.values() for w in ws])) + 2
    return int(np.median(steps)), {c: min(cap, int(np.median(w))) for c, w in widths.items()}


def hyphen_model(
    a: npt.NDArray[np.float32], chars: list[str], boxes: list[Box | None], confs: list[float]
) -> HyphenModel | None:
    """Learn the page's hyphen from confidently read ``digit-digit`` hyphens; None if too few."""
    metrics = _digit_metrics(chars, boxes)
    if metrics is None:
        return None
    advance, digit_widths = metrics
    text = "".join(chars)
    spots: list[tuple[int, int, int, int, int]] = []  # centre x, centre y, offset, width, digit height
    for m in _HYPHEN.finditer(text):
        i = m.start()
        hb, nb = boxes[i], boxes[i + 1]
        if hb is None or nb is None or confs[i] < EXEMPLAR_CONF:
            continue
        cx = (hb[0] + hb[2]) // 2
        if not 0 < nb[0] - cx < 2 * advance:
            continue
        spots.append((cx, (nb[1] + nb[3]) // 2, nb[0] - cx, hb[2] - hb[0], nb[3] - nb[1]))
    if len(spots) < MIN_EXEMPLARS:
        return None
    offset = int(np.median([s[2] for s in spots]))
    width = int(np.median([s[3] for s in spots])) + 4
    height = int(np.median([s[4] for s in spots])) + 4
    windows, inks = [], []
    for cx, cy, *_ in spots:
        w = _window(a, cx, cy, width, height)
        if w is not None:
            z, n = _normalised(w)
            windows.append(z)
            inks.append(n)
    if len(windows) < MIN_EXEMPLARS:
        return None
    template, _ = _normalised(np.mean(windows, axis=0))
    edges = [ink_left(a, cx + offset, cy, height - 4, advance) for cx, cy, *_ in spots]
    ink_offsets = [e - cx for e, (cx, *_) in zip(edges, spots, strict=True) if e is not None]
    ink_offset = int(np.median(ink_offsets)) if len(ink_offsets) >= MIN_EXEMPLARS else None
    return HyphenModel(template, width, height, offset, float(np.median(inks)), advance, digit_widths, ink_offset)


def ink_left(a: npt.NDArray[np.float32], x: int, cy: int, height: int, advance: int) -> int | None:
    """First inked column of the glyph at column ``x`` (scanning left to the paper before it), in
    the band of rows ``height`` tall around ``cy``; None if none is found within a digit step."""
    y0, x0 = max(0, cy - height // 2), max(0, x - 2 * advance)
    band = a[y0 : cy + height // 2 + 1, x0 : x + advance]
    if band.size == 0 or x - x0 >= band.shape[1]:
        return None
    dark = np.clip(np.percentile(band, 90) - band, 0.0, None).max(axis=0)
    inked = dark > 0.35 * float(dark.max()) if dark.max() > 0 else np.zeros_like(dark, dtype=bool)
    k = x - x0
    while k < band.shape[1] and not inked[k]:  # the box may start before the ink
        k += 1
    if k >= band.shape[1] or k - (x - x0) > advance // 2:
        return None
    while k > 0 and inked[k - 1]:
        k -= 1
    return x0 + k if (x - x0) - k <= advance else None


def minus_score(a: npt.NDArray[np.float32], model: HyphenModel, cx: int, cy: int) -> tuple[float, float]:
    """Best correlation with the hyphen template near (cx, cy), and the ink there relative to it."""
    best, ink = -1.0, 0.0
    for dy in range(-_SHIFT_Y, _SHIFT_Y + 1):
        for dx in range(-_SHIFT_X, _SHIFT_X + 1):
            w = _window(a, cx + dx, cy + dy, model.width, model.height)
            if w is None:
                continue
            z, n = _normalised(w)
            score = float(np.sum(z * model.template))
            if score > best:
                best, ink = score, n / model.ink
    return best, ink


MIN_CONTRAST = 40.0  # grey levels between paper and ink for a band to be read at all
