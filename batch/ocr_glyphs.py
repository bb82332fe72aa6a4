"""Glyph-level repair of OCR output, using the shapes of the page's own glyphs.

Tesseract's LSTM misses the thin minus sign of small print: the short 1-pixel stroke before an
amount (``-67,373.56``) comes out as nothing, or as ``“``, ``+`` or ``~``. The same hyphen glyph is
printed, and usually read, many times on the same page: inside dates (``2026-03-31``) and account
numbers (``0482-331907-62``). :func:`restore_minus_signs` learns its look from those (a mean
template, and where it sits relative to the next digit), then checks the spot just left of every
amount that has no minus sign: where the template matches well, the minus is put back.

The decision is by normalised cross-correlation (shape) and ink (a blank spot has little), with
thresholds chosen on generated statements so that not one positive amount in thousands gained a
minus. A page with too few hyphens to learn from is left as it is.

Pure numpy on the page image and the recognised glyphs: no OCR engine is needed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "HyphenModel", "hyphen_model", "minus_score", "restore_minus_signs"]

Box = tuple[int, int, int, int]  # left, top, right, bottom (pixels, right/bottom exclusive)

MIN_EXEMPLARS = 4  # hyphens needed to learn the page's minus sign
EXEMPLAR_CONF = 90.0  # Tesseract symbol confidence (0-100) a hyphen needs to serve as an exemplar
MATCH = 0.65  # correlation with the template that counts as a minus sign
MATCH_REPLACE = 0.7  # stricter, to turn a sign read as something else ("+", "“") into a minus
MIN_INK = 0.5  # contrast of the spot relative to the exemplars' (a blank spot has almost none)
_SHIFT_X, _SHIFT_Y = 3, 2  # search around the expected spot, in pixels of the (upscaled) page

# An amount as read: an optional sign-like character glued to it, then digit groups ending in two
# decimals; Tesseract may put a space beside a separator or in place of one ("6 396,749.62").
_AMOUNT = re.compile(r"(?<![\w.,\-])([^\s\w.,]?)(\d{1,3}(?:(?: ?[,.] ?| )\d{3})*(?: ?[.,] ?)\d{2})(?!\w)")
_HYPHEN = re.compile(r"(?<=\d)-(?=\d)")
# Characters Tesseract prints for a faint minus (a dash of another kind is fixed by clean-up).
_SIGN_LOOKALIKES = frozenset("+“”\"'‘’~=°_")


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
    return HyphenModel(template, width, height, offset, float(np.median(inks)), advance, digit_widths)


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


def _first_digit_left(model: HyphenModel, text: str, boxes: list[Box | None], start: int) -> int:
    """Left edge of the digit at ``start``. Its box may also cover a lost minus before it, or the
    character after it: the box's right end is checked against the next box, and the digit's
    width on this page is taken back from there."""
    box, nxt = boxes[start], boxes[start + 1]
    assert box is not None
    width = model.digit_widths.get(text[start], box[2] - box[0])
    right = box[2]
    if nxt is not None and nxt[0] < right:
        right = nxt[0] - max(1, model.advance - width)
    left = max(box[0], right - width)
    if nxt is not None and text[start + 1].isdigit():
        left = max(left, nxt[0] - model.advance)
    return left


def restore_minus_signs(
    pixels: npt.NDArray[np.uint8], chars: list[str], boxes: list[Box | None], confs: list[float]
) -> list[str]:
    """``chars`` (one per recognised character, spaces and newlines with box None) with lost
    minus signs of amounts put back; the input lists are not changed."""
    a = pixels.astype(np.float32)
    model = hyphen_model(a, chars, boxes, confs)
    if model is None:
        return chars
    out = list(chars)
    text = "".join(chars)
    for m in _AMOUNT.finditer(text):
        sign, start = m.group(1), m.start(2)
        if sign == "-" or (sign and sign not in _SIGN_LOOKALIKES):
            continue
        digits = [boxes[i] for i in range(start, m.end(2)) if text[i].isdigit()]
        box = boxes[start]
        if box is None or any(b is None for b in digits):
            continue
        cy = int(np.median([(b[1] + b[3]) // 2 for b in digits if b is not None]))
        if sign:
            sb = boxes[m.start(1)]
            if sb is None:
                continue
            cx, need = (sb[0] + sb[2]) // 2, MATCH_REPLACE
        else:
            left = _first_digit_left(model, text, boxes, start)
            cx, need = left - model.offset, MATCH
        score, ink = minus_score(a, model, cx, cy)
        if score >= need and ink >= MIN_INK:
            if sign:
                out[m.start(1)] = "-"
            else:
                out[start] = "-" + out[start]
    return out
