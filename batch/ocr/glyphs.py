"""Glyph-level repair of OCR output, using the shapes of the page's own glyphs.

Tesseract's LSTM misses the thin minus sign of small print: the short 1-pixel stroke before an
amount (``-67,373.56``) comes out as nothing, or as ``“``, ``+`` or ``~``. The same hyphen glyph is
printed, and usually read, many times on the same page: inside dates (``2026-03-31``) and account
numbers (``0482-331907-62``). :func:`restore_minus_signs` learns its look from those (a mean
template, and where it sits relative to the next digit), then checks the spot just left of every
amount that has no minus sign: where the template matches well, the minus is put back.

The decision is by normalised cross-correlation (shape) and ink (a blank spot has little), with
thresholds chosen on generated statements so that not one positive amount in thousands gained a
minus. Tesseract's box of the first digit is often loose (it swallows the minus, or is shifted):
when the spot it gives does not match, the spot is placed again from the digit's own ink, and
the ink before the digit is checked for a lone bar in the hyphen's rows, as long as the page's
hyphen, with paper around it (or, joined to the digit, at least half a digit step long: a 4's
crossbar is a shorter bar). A page with too few hyphens to learn from is left as it is.

Small print also loses decimal points and thousands separators (``4248`` for ``-42.48``):
:func:`restore_separators` cuts the number's band of the page into glyphs at blank columns and
puts back a separator where a small mark sits on the baseline between two digits, when that makes
the number an amount with two decimals.

Pure numpy on the page image and the recognised glyphs: no OCR engine is needed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "HyphenModel", "hyphen_model", "minus_score", "restore_minus_signs", "restore_separators"]

Box = tuple[int, int, int, int]  # left, top, right, bottom (pixels, right/bottom exclusive)

MIN_EXEMPLARS = 4  # hyphens needed to learn the page's minus sign
EXEMPLAR_CONF = 90.0  # Tesseract symbol confidence (0-100) a hyphen needs to serve as an exemplar
MATCH = 0.65  # correlation with the template that counts as a minus sign
MATCH_REPLACE = 0.7  # stricter, to turn a sign read as something else ("+", "“") into a minus
MIN_INK = 0.5  # contrast of the spot relative to the exemplars' (a blank spot has almost none)
_SHIFT_X, _SHIFT_Y = 3, 2  # search around the expected spot, in pixels of the (upscaled) page
GLUED_BAR = 0.5  # a bar joined to the digit after it: at least half a digit step long

# An amount as read: an optional sign-like character glued to it, then digit groups ending in two
# decimals; Tesseract may put a space beside a separator or in place of one ("6 396,749.62").
_AMOUNT = re.compile(r"(?<![\w.,\-])([^\s\w.,]?)(\d{1,3}(?:(?: ?[,.] ?| )\d{3})*(?: ?[.,] ?)\d{2})(?!\w)")
_HYPHEN = re.compile(r"(?<=\d)-(?=\d)")
# Characters Tesseract prints for a faint minus (a dash of another kind is fixed by clean-up).
_SIGN_LOOKALIKES = frozenset("+“”\"'‘’~=°_»")


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
    edges = [_ink_left(a, cx + offset, cy, height - 4, advance) for cx, cy, *_ in spots]
    ink_offsets = [e - cx for e, (cx, *_) in zip(edges, spots, strict=True) if e is not None]
    ink_offset = int(np.median(ink_offsets)) if len(ink_offsets) >= MIN_EXEMPLARS else None
    return HyphenModel(template, width, height, offset, float(np.median(inks)), advance, digit_widths, ink_offset)


def _minus_by_ink(a: npt.NDArray[np.float32], model: HyphenModel, middle: int, cy: int) -> bool:
    """The hyphen template matched where the ink of the digit whose body is at ``middle`` says a
    minus sign would be (the exemplars' distance from their hyphen to the next digit's ink)."""
    if model.ink_offset is None:
        return False
    edge = _ink_left(a, middle, cy, model.height - 4, model.advance)
    if edge is None:
        return False
    score, ink = minus_score(a, model, edge - model.ink_offset, cy)
    return score >= MATCH and ink >= MIN_INK


def _ink_left(a: npt.NDArray[np.float32], x: int, cy: int, height: int, advance: int) -> int | None:
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


# A number as read, without a decimal part or with its thousands unseparated: digits, maybe a
# minus, maybe some separators ("4248", "4125.79"); hyphenated numbers are dates and ids.
_BARE = re.compile(r"(?<![\w.,\-])-?\d[\d,.]*\d(?![\w\-]|[.,]\d)")
_WHOLE_AMOUNT = re.compile(r"-?\d{1,3}(?:[.,]\d{3})*[.,]\d{2}")  # separators are normalised later
MIN_CONTRAST = 40.0  # grey levels between paper and ink for a band to be read at all


def restore_separators(
    pixels: npt.NDArray[np.uint8], chars: list[str], boxes: list[Box | None], confs: list[float]
) -> tuple[list[str], list[Box | None], list[float]]:
    """The glyphs with the decimal points and thousands separators Tesseract dropped from amounts
    (``4248`` for ``42.48``, ``4125.79`` for ``4,125.79``) put back where the ink shows them.

    The number's band of the page is cut into glyphs at blank columns: tall ones are digits,
    small ones sitting on the baseline between two digits are separators. A number is changed
    only when the glyphs are one per digit read, and the separators found turn it into an amount
    with two decimals (``2026`` with a speck under it stays ``2026``): nothing is removed. Each
    separator put back is a ``.`` with its ink's box (clean-up gives it the page's convention).
    New lists are returned.
    """
    text = "".join(chars)
    after: dict[int, Box] = {}  # index of a digit -> box of the separator found after it
    for m in _BARE.finditer(text):
        idx = [i for i in range(m.start(), m.end()) if text[i].isdigit()]
        if len(idx) < 3 or any(boxes[i] is None for i in idx):
            continue
        marks = _separator_marks(pixels, [b for b in (boxes[i] for i in idx) if b is not None])
        if marks is None:
            continue
        read_after = {k for k, i in enumerate(idx[:-1]) if not text[i + 1].isdigit()}
        if set(marks) <= read_after:
            continue
        rebuilt = "-" if m.group(0).startswith("-") else ""
        for k, i in enumerate(idx):
            rebuilt += text[i] + (text[i + 1] if k in read_after else "." if k in marks else "")
        if _WHOLE_AMOUNT.fullmatch(rebuilt):
            after |= {idx[k]: box for k, box in marks.items() if k not in read_after}
    if not after:
        return chars, boxes, confs
    out_chars: list[str] = []
    out_boxes: list[Box | None] = []
    out_confs: list[float] = []
    for i, (ch, box, conf) in enumerate(zip(chars, boxes, confs, strict=True)):
        out_chars.append(ch)
        out_boxes.append(box)
        out_confs.append(conf)
        if i in after:
            out_chars.append(".")
            out_boxes.append(after[i])
            out_confs.append(0.0)
    return out_chars, out_boxes, out_confs


def _separator_marks(pixels: npt.NDArray[np.uint8], digit_boxes: list[Box]) -> dict[int, Box] | None:
    """The separators in the ink (a point or comma between digit k and k + 1) by k, with their
    boxes; None when the ink does not split into exactly one glyph per digit."""
    top = int(np.median([b[1] for b in digit_boxes]))
    bottom = int(np.median([b[3] for b in digit_boxes]))
    height = bottom - top
    if height < 6:
        return None
    x0, x1 = max(0, digit_boxes[0][0] - 2), digit_boxes[-1][2] + 2
    y0, y1 = max(0, top - height // 4), bottom + height // 3
    band = pixels[y0:y1, x0:x1].astype(np.float32)
    if band.size == 0:
        return None
    paper, ink = float(np.percentile(band, 90)), float(np.percentile(band, 2))
    if paper - ink < MIN_CONTRAST:
        return None
    mask = band < (paper + ink) / 2
    cols = np.flatnonzero(np.diff(np.concatenate(([0], mask.any(axis=0).astype(np.int8), [0]))))
    glyphs: list[tuple[str, Box]] = []  # "d" digit, "." separator, "-" minus, "?" anything else
    lo, hi = top + 0.6 * height, bottom + 0.3 * height  # where a point or comma's ink lies
    for a, b in zip(cols[::2], cols[1::2], strict=True):
        rows = np.flatnonzero(mask[:, a:b].any(axis=1)) + y0
        tall = rows[-1] - rows[0] + 1
        box = (int(x0 + a), int(rows[0]), int(x0 + b), int(rows[-1] + 1))
        if tall >= 0.6 * height:
            # a separator touching the digit before it: its last columns hold ink only down low
            split = b
            while split > a and _low_column(mask[:, split - 1], y0, lo, hi, bottom - 0.15 * height):
                split -= 1
            if 2 <= b - split <= 0.4 * height and split - a >= 0.45 * height:
                glyphs += [("d", (box[0], box[1], int(x0 + split), box[3])), (".", (int(x0 + split), *box[1:]))]
            else:
                glyphs.append(("d", box))
        elif tall <= 0.35 * height and rows[0] >= lo and bottom - 0.15 * height <= rows[-1] <= hi:
            glyphs.append((".", box))
        elif not glyphs and tall <= 0.3 * height and 0.3 <= ((rows[0] + rows[-1]) / 2 - top) / height <= 0.75:
            glyphs.append(("-", box))  # a minus sign inside the first digit's box: not a separator
        else:
            glyphs.append(("?", box))
    if glyphs and glyphs[0][0] == "-":
        glyphs = glyphs[1:]
    kinds = "".join(g for g, _ in glyphs)
    if "?" in kinds or kinds.count("d") != len(digit_boxes) or not kinds.startswith("d") or ".." in kinds:
        return None
    marks: dict[int, Box] = {}
    k = -1
    for g, box in glyphs:
        if g == "d":
            k += 1
        else:
            marks[k] = box
    return marks


def _low_column(column: npt.NDArray[np.bool_], y0: int, lo: float, hi: float, base: float) -> bool:
    """The column's ink lies between ``lo`` and ``hi`` and reaches ``base`` (sits on the baseline:
    a 4's crossbar is low too, but above it)."""
    rows = np.flatnonzero(column) + y0
    return rows.size > 0 and rows[0] >= lo and base <= rows[-1] <= hi


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
