"""Minus signs put back before amounts, where the page's own hyphen glyph is printed but was not read.

Tesseract's LSTM misses the thin minus sign of small print: the short 1-pixel stroke before an
amount (``-67,373.56``) comes out as nothing, or as ``“``, ``+`` or ``~``. :func:`restore_minus_signs`
checks the spot just left of every amount that has no minus sign against the page's hyphen
(:func:`~.glyphs.hyphen_model`): where the template matches well, the minus is put back.

The decision is by normalised cross-correlation (shape) and ink (a blank spot has little), with
thresholds chosen on generated statements so that not one positive amount in thousands gained a
minus. Tesseract's box of the first digit is often loose (it swallows the minus, or is shifted):
when the spot it gives does not match, the spot is placed again from the digit's own ink, and
the ink before the digit is checked for a lone bar in the hyphen's rows, as long as the page's
hyphen, with paper around it (or, joined to the digit, at least half a digit step long: a 4's
crossbar is a shorter bar). A page with too few hyphens to learn from is left as it is.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from .glyphs import MIN_CONTRAST, Box, HyphenModel, hyphen_model, ink_left, minus_score

__all__ = ["restore_minus_signs"]


MATCH = 0.65  # correlation with the template that counts as a minus sign
MATCH_REPLACE = 0.7  # stricter, to turn a sign read as something else ("+", "“") into a minus
MIN_INK = 0.5  # contrast of the spot relative to the exemplars' (a blank spot has almost none)
GLUED_BAR = 0.5  # a bar joined to the digit after it: at least half a digit step long


# An amount as read: an optional sign-like character glued to it, then digit groups ending in two
# decimals; Tesseract may put a space beside a separator or in place of one ("6 396,749.62").
_AMOUNT = re.compile(r"(?<![\w.,\-])([^\s\w.,]?)(\d{1,3}(?:(?: ?[,.] ?| )\d{3})*(?: ?[.,] ?)\d{2})(?!\w)")


# Characters Tesseract prints for a faint minus (a dash of another kind is fixed by clean-up).
_SIGN_LOOKALIKES = frozenset("+“”\"'‘’~=°_»")


def _minus_by_ink(a: npt.NDArray[np.float32], model: HyphenModel, middle: int, cy: int) -> bool:
    """The hyphen template matched where the ink of the digit whose body is at ``middle`` says a
    minus sign would be (the exemplars' distance from their hyphen to the next digit's ink)."""
    if model.ink_offset is None:
        return False
    edge = ink_left(a, middle, cy, model.height - 4, model.advance)
    if edge is None:
        return False
    score, ink = minus_score(a, model, edge - model.ink_offset, cy)
    return score >= MATCH and ink >= MIN_INK


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
        found = score >= need and ink >= MIN_INK
        if not found:
            # Tesseract's box of the first digit may be off: look again from the digit's own ink
            # (a "+" read for a minus is one only if the ink is a lone bar: a real plus is not).
            middle = (
                _first_digit_left(model, text, boxes, start) + model.digit_widths.get(text[start], model.advance) // 2
            )
            found = not sign and _minus_by_ink(a, model, middle, cy) or _bar_before(a, model, digits, middle, cy)
        if found:
            if sign:
                out[m.start(1)] = "-"
            else:
                out[start] = "-" + out[start]
    return out


def _bar_before(a: npt.NDArray[np.float32], model: HyphenModel, digits: list[Box | None], middle: int, cy: int) -> bool:
    """Whether the ink just left of the first digit (whose body is at column ``middle``) is a lone
    bar shaped and placed like the page's hyphen: columns whose ink lies only in the hyphen's rows,
    about as wide as the hyphen, with paper before them and, unless the bar is long, after them."""
    rows = model.template.mean(axis=1)
    bar_rows = np.flatnonzero(rows < 0.5 * rows.min())
    cols = model.template.mean(axis=0)
    narrow = int(np.count_nonzero(cols < 0.5 * cols.min()))  # the template's dark core
    bar_width = model.width - 4  # the exemplars' median box width
    centre = cy + float(bar_rows.mean()) - model.height // 2
    tol = max(2.0, float(bar_rows.size))
    tops = [b[1] for b in digits if b is not None]
    bottoms = [b[3] for b in digits if b is not None]
    height = int(np.median(bottoms)) - int(np.median(tops))
    y0, x0 = max(0, int(np.median(tops)) - height // 3), max(0, middle - 3 * model.advance)
    band = a[y0 : int(np.median(bottoms)) + height // 3, x0 : middle + 1]
    if band.size == 0 or narrow < 2 or height < 6:
        return False
    paper, ink = float(np.percentile(band, 90)), float(np.percentile(band, 2))
    if paper - ink < MIN_CONTRAST:
        return False
    mask = band < (paper + ink) / 2

    def kind(col: int) -> int:  # 0 paper, 1 bar, 2 other ink
        ys = np.flatnonzero(mask[:, col]) + y0
        if ys.size == 0:
            return 0
        return 1 if centre - tol <= ys[0] and ys[-1] <= centre + tol else 2

    k = band.shape[1] - 1
    if kind(k) != 2:
        return False
    while k >= 0 and kind(k) == 2:  # the digit
        k -= 1
    gap = 0
    while k >= 0 and kind(k) == 0 and gap <= model.advance // 2:
        k, gap = k - 1, gap + 1
    run = 0
    while k >= 0 and kind(k) == 1:
        k, run = k - 1, run + 1
    if k < 0 or kind(k) != 0 or run > 1.5 * bar_width:
        return False
    # Joined to the digit, the bar must be half a digit step long: a 4's crossbar is shorter.
    return run >= (0.5 * narrow if gap else GLUED_BAR * model.advance)
