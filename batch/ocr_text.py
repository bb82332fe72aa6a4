"""Number-aware clean-up of OCR text, and the hint block that carries it into a prompt.

Tesseract reads the digits of a financial scan well but garbles their punctuation: it inserts
spaces inside numbers (``1, 234,567.89``), reads a thousands comma as a point or the decimal
point as a comma (``-4,160.451.77``, ``1,646,004,11``), splits an account number before a hyphen
(``1600 -598392-43``), prints a minus as a dash of another kind, and reads a digit as a letter
(``1,748,20S.67``). :func:`clean_numbers` repairs exactly those, and only inside tokens that are
numbers: words are never touched, and dates (``2026-03-31``) and account numbers
(``0482-331907-62``) keep their hyphens.

Which separator is the decimal one is decided per text, by majority: a page whose well-formed
amounts look like ``1,234.56`` is "point-decimal", one whose amounts look like ``1.234,56`` is
"comma-decimal", and ambiguous amounts are rewritten to the page's convention. A page with no
well-formed amount is left with its separators as read.

Pure functions on strings: no OCR engine is needed to import or test this module.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["clean_numbers", "decimal_convention", "format_ocr_hint"]

Convention = Literal["point", "comma"]

# Dashes Tesseract prints for a minus sign; glued to a digit they mean minus.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_DASH_BEFORE_DIGIT = re.compile(f"[{_DASHES}](?=\\d)")
# "~" for a minus is a measured confusion; only at the start of an amount with a decimal part.
_TILDE_MINUS = re.compile(r"(?<!\S)~(?=\d{1,3}(?:[,.]\d{3})*[,.]\d{2}(?![\d,.]))")

# Spaces inside a number: after a separator before a digit group, or before a separator.
_SPACE_AFTER_SEP = re.compile(r"(?<=\d[,.]) (?=\d{3}(?!\d)|\d{2}(?![\d,.]))")
_SPACE_BEFORE_SEP = re.compile(r"(?<=\d) (?=[,.]\d)")
# An account number split before its hyphens: "1600 -598392-43", "5992 -435843 -67" (three or more
# digit groups; amounts have a decimal part, so this never glues a number to a negative amount).
_SPLIT_HYPHEN_GROUPS = re.compile(r"(?<![\w.,-])\d{2,}(?: ?-\d{2,}){2,}(?![\w.,]|-\d)")
# A space inside a hyphenated number: "1578-807 683-99", "802 2-266376-58" (joined only when the
# result has three or more groups of two or more digits and neither side was whole on its own).
_SPACED_HYPHEN_NUMBER = re.compile(r"(?<![\w.,-])(\d+(?:-\d+)*) (\d+(?:-\d+)*)(?![\w]|[.,]\d|-\d)")
# Thousands separator read as a space after a minus or a grouped number: "-8 529,399.41".
_SPACE_THOUSANDS = {
    "point": re.compile(r"(?<![\w.,-])(-\d{1,3}|-?\d{1,3}(?:,\d{3})+) (\d{3}(?:,\d{3})*\.\d{2})(?![\w,]|[.,]\d)"),
    "comma": re.compile(r"(?<![\w.,-])(-\d{1,3}|-?\d{1,3}(?:\.\d{3})+) (\d{3}(?:\.\d{3})*,\d{2})(?![\w.]|[.,]\d)"),
}
# Decimal point read as a space: "1,666,028 89" (only after a thousands-grouped number).
_SPACE_DECIMAL = {
    "point": re.compile(r"(?<![\d,.])(-?\d{1,3}(?:,\d{3})+) (\d{2})(?![\d,.])"),
    "comma": re.compile(r"(?<![\d,.])(-?\d{1,3}(?:\.\d{3})+) (\d{2})(?![\d,.])"),
}

# Well-formed amounts of each convention: grouped thousands (or none) and two decimals.
_STRICT = {
    "point": re.compile(r"(?<![\w,.])-?\d{1,3}(?:,\d{3})*\.\d{2}(?![\w,]|[.,]\d)"),
    "comma": re.compile(r"(?<![\w,.])-?\d{1,3}(?:\.\d{3})*,\d{2}(?![\w.]|[.,]\d)"),
}
# An amount with any separators (doubled or underscore ones as Tesseract misreads them).
# (A full stop may follow: "... closing balance 1,234.56.")
_LOOSE_AMOUNT = re.compile(r"(?<![\w,.])-?\d{1,3}(?:[.,_]{1,2}\d{3})*[.,_]{1,2}\d{2}(?![\w,]|[.,_]\d)")
_SEPARATOR_RUN = re.compile(r"[.,_]{1,2}")

# Letters Tesseract reads for digits; applied only where the whole token then reads as a number.
_LETTER_DIGITS = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "S": "5", "§": "5"})
_TOKEN = re.compile(r"[-\w§,.]+")
_NUMERIC = re.compile(
    r"-?\d{1,3}(?:[,.]\d{3})*(?:[,.]\d{1,2})?"  # amounts and plain numbers
    r"|\d{4}-\d{2}-\d{2}"  # ISO dates
    r"|-?\d{2,}(?:-\d{2,})+"  # account numbers (or a piece split off one), hyphenated digit groups
    r"|\d{2,}"
)


def decimal_convention(text: str) -> Convention | None:
    """``point`` (1,234.56) or ``comma`` (1.234,56) by majority of well-formed amounts, else None."""
    point = len(_STRICT["point"].findall(text))
    comma = len(_STRICT["comma"].findall(text))
    if point == comma == 0:
        return None
    return "point" if point >= comma else "comma"


def clean_numbers(text: str, convention: Convention | None = None) -> str:
    """``text`` with OCR damage inside numbers repaired (see the module docstring).

    ``convention`` forces the decimal separator; by default it is inferred from ``text``.
    Idempotent: cleaning cleaned text changes nothing.
    """
    text = _DASH_BEFORE_DIGIT.sub("-", text)
    text = _TOKEN.sub(_letters_to_digits, text)  # before joining: "-S02084-10" must read as digits
    previous = None
    while previous != text:
        previous = text
        text = _SPACE_AFTER_SEP.sub("", text)
        text = _SPACE_BEFORE_SEP.sub("", text)
    text = _SPLIT_HYPHEN_GROUPS.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _SPACED_HYPHEN_NUMBER.sub(_join_hyphen_number, text)
    text = _TOKEN.sub(_letters_to_digits, text)  # and after: "1,748, 20S.67" is whole only now
    text = _TILDE_MINUS.sub("-", text)
    convention = convention or decimal_convention(text)
    if convention is None:
        return text
    point = convention == "point"
    group, decimal = (",", ".") if point else (".", ",")
    text = _SPACE_DECIMAL[convention].sub(r"\1" + decimal + r"\2", text)
    text = _SPACE_THOUSANDS[convention].sub(r"\1" + group + r"\2", text)

    def normalise(match: re.Match[str]) -> str:
        head, _, cents = _SEPARATOR_RUN.sub(group, match.group(0)).rpartition(group)
        return head + decimal + cents

    return _LOOSE_AMOUNT.sub(normalise, text)


def _whole_hyphen_number(token: str) -> bool:
    groups = token.split("-")
    return len(groups) >= 3 and all(len(g) >= 2 for g in groups)


def _join_hyphen_number(match: re.Match[str]) -> str:
    left, right = match.group(1), match.group(2)
    joined = left + right
    if "-" not in joined or _whole_hyphen_number(left) or _whole_hyphen_number(right):
        return match.group(0)
    return joined if _whole_hyphen_number(joined) else match.group(0)


def _letters_to_digits(match: re.Match[str]) -> str:
    """``1,748,20S.67`` -> ``1,748,205.67``; words (``SOLD``, ``TX1234``) stay as they are."""
    token = match.group(0)
    body = token.rstrip(".,")  # a sentence's full stop is not part of the number
    if body.isdigit() or not any(c.isdigit() for c in body):
        return token
    mapped = body.translate(_LETTER_DIGITS)
    if mapped == body or not _NUMERIC.fullmatch(mapped):
        return token
    letters = sum(1 for a, b in zip(body, mapped, strict=True) if a != b)
    digits = sum(c.isdigit() for c in body)
    # Mostly digits already: one letter per three digits at most ("SOS" or "IO" is not a number).
    if digits < 2 or letters > max(1, digits // 3):
        return token
    return mapped + token[len(body) :]


def format_ocr_hint(text: str, *, source: str = "tesseract", page: int | None = None) -> str:
    """The block to append to a prompt: OCR text between tags, with a line saying it may be wrong.

    ``source`` names the engine (``tesseract``, ``azure-read``); ``page`` the document page it
    was read from. A closing tag inside the OCR text is defused so the block cannot be ended early.
    """
    body = text.strip().replace("</ocr_text", "<\\/ocr_text")
    attrs = f'source="{_attr(source)}"' + (f' page="{page}"' if page is not None else "")
    note = (
        "Text read from the image by OCR. It may contain recognition errors: use it to check "
        "digits and spellings, but trust the image where they disagree."
    )
    return f"{note}\n<ocr_text {attrs}>\n{body}\n</ocr_text>"


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
