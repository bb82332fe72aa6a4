"""Digits Tesseract read twice from one glyph, dropped where that mends a malformed number.

:func:`drop_doubled_digits` removes a digit whose box is centred much closer to its neighbour's
than a digit pitch (``8330925`` for ``833925``), only where that turns a malformed number into a
well-formed one (an amount with two decimals, a grouped number, or an id shaped like the page's
other ids). Pure Python on the recognised characters and their boxes.
"""

from __future__ import annotations

import re

from .digits import NUMBER, digit_pitch
from .glyphs import Box

# A glyph read twice: two digits whose boxes are centred this close (in digit pitches) are one.
DOUBLED = 0.36
_ID_NUMBER = re.compile(r"(?<![\w.,\-])\d+(?:-\d+)+(?![\w\-])")
_AMOUNT_GROUPS = re.compile(r"\d{1,3}(?:[,.]\d{3})*[,.]\d{2}")  # separators are normalised later
# A number that may be whole, or the first part of one ("2,405" of "2,405, 123.47"): not malformed.
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})*(?:\.\d{2})?|\d{1,3}(?:\.\d{3})*(?:,\d{2})?|\d+")


def drop_doubled_digits(
    chars: list[str], boxes: list[Box | None], confs: list[float]
) -> tuple[list[str], list[Box | None], list[float]]:
    """Remove a digit Tesseract read twice from one glyph (``8330925`` for ``833925``).

    The two readings have boxes centred much closer than the page's digit pitch; the one with
    the lower confidence goes, but only where that turns a malformed number (a thousands group
    or an account-number group of the wrong length, three decimals) into a well-formed one:
    a number that already reads right is never touched. New lists are returned.
    """
    pitch = digit_pitch(chars, boxes)
    if pitch is None:
        return chars, boxes, confs
    text = "".join(chars)
    shapes = _id_shapes(text)
    drop: set[int] = set()
    for m in NUMBER.finditer(text):
        token = m.group(0)
        if _well_formed(token, shapes, _GROUPED):
            continue
        doubled = []
        for i in range(m.start(), m.end() - 1):
            a, b = boxes[i], boxes[i + 1]
            if text[i].isdigit() and text[i + 1].isdigit() and a is not None and b is not None:
                if abs((b[0] + b[2]) - (a[0] + a[2])) / 2 < DOUBLED * pitch:
                    doubled.append(i if confs[i] < confs[i + 1] else i + 1)
        # One glyph may be read three times ("9093" for "93"): up to two readings go.
        for cut in [{i} for i in doubled] + [{i, j} for i in doubled for j in doubled if i < j]:
            if _well_formed("".join(c for k, c in enumerate(token, m.start()) if k not in cut), shapes):
                drop |= cut
                break
    if not drop:
        return chars, boxes, confs
    keep = [i for i in range(len(chars)) if i not in drop]
    return [chars[i] for i in keep], [boxes[i] for i in keep], [confs[i] for i in keep]


def _id_shapes(text: str) -> set[tuple[int, ...]]:
    """Group lengths of the hyphenated numbers printed twice or more on the page (4-6-2, 4-2-2)."""
    counts: dict[tuple[int, ...], int] = {}
    for token in _ID_NUMBER.findall(text):
        shape = tuple(len(g) for g in token.split("-"))
        counts[shape] = counts.get(shape, 0) + 1
    return {shape for shape, n in counts.items() if n >= 2 and len(shape) >= 3}


def _well_formed(token: str, shapes: set[tuple[int, ...]], amount: re.Pattern[str] = _AMOUNT_GROUPS) -> bool:
    body = token.removeprefix("-")
    if "-" in body:
        return tuple(len(g) for g in body.split("-")) in shapes
    return amount.fullmatch(body) is not None
