"""Decimal points and thousands separators put back into amounts, from small marks on the baseline.

Small print loses them (``4248`` for ``-42.48``): :func:`restore_separators` cuts the number's band of
the page into glyphs at blank columns and puts back a separator where a small mark sits on the
baseline between two digits, when that makes the number an amount with two decimals.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from .glyphs import MIN_CONTRAST, Box

__all__ = ["restore_separators"]


# A number as read, without a decimal part or with its thousands unseparated: digits, maybe a
# minus, maybe some separators ("4248", "4125.79"); hyphenated numbers are dates and ids.
_BARE = re.compile(r"(?<![\w.,\-])-?\d[\d,.]*\d(?![\w\-]|[.,]\d)")
_WHOLE_AMOUNT = re.compile(r"-?\d{1,3}(?:[.,]\d{3})*[.,]\d{2}")  # separators are normalised later


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
