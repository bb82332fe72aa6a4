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
# "~" or an opening quote for a minus are measured confusions; only at the start of an amount with
# a decimal part, and not when a closing quote follows it.
_TILDE_MINUS = re.compile(r'(?<!\S)[~“"](?=\d{1,3}(?:[,.]\d{3})*[,.]\d{2}(?![\d,.”"]))')
# A minus read twice, as two sign-like marks: "-~2,427,346.84", "~+4,447,081.82", "-+5.61".
_DOUBLE_MINUS = re.compile(r"(?<!\S)(?:-[~+“]|[~“]-|~\+)(?=\d)")
# "$" read for a 5: inside a number, before a separator, or opening a hyphenated account number
# ("7,405,$74.15", "$,502,234.12", "$130-940672-99"). A currency sign before digits stays.
_DOLLAR_FIVE = re.compile(r"(?<=[\d,.])\$(?=\d)|(?<![\w$])\$(?=[,.]\d{3}|\d{2,}(?:-\d{2,}){2,}(?![\w.]))")
# An account number with a point for one of its hyphens: "4093-386059.07", "3387.439270-52".
_DOTTED_ID = re.compile(r"(?<![\w.,-])\d{2,}(?:[-.]\d{2,}){2,}(?!\w|[.,-]\d)")
# Hyphenated digit groups (account numbers, dates), to learn the page's shapes and mend a lost hyphen.
_HYPHEN_ID = re.compile(r"(?<![\w.,-])\d+(?:-\d+)+(?!\w|[.,-]\d)")
_MIN_ID_DIGITS = 10  # shorter hyphenated numbers (phone numbers, references) are re-cut only into a date
_ISO_DATE = re.compile(r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])")

# Spaces inside a number: after a separator before a digit group, or before a separator (also
# when spaces stand on both sides of it, as monospaced print reads: "840 , 468.36").
_SPACE_AFTER_SEP = re.compile(r"(?<=\d[,.]) (?=\d{3}(?!\d)|\d{2}(?![\d,.]))")
_SPACE_BEFORE_SEP = re.compile(r"(?<=\d) (?=[,.]\d|[,.] \d{3}(?!\d))")
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

# A grouped amount with a thousands separator lost: "1544,424.08", "7,436473.17" (groups re-cut).
_MISGROUPED = re.compile(r"(?<![\w.,])(-?)(\d{1,6}(?:[.,]\d{3,6})+)([.,])(\d{2})(?![\w,]|[.,]\d)")

# Letters Tesseract reads for digits; applied only where the whole token then reads as a number.
_LETTER_DIGITS = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "S": "5", "§": "5", "B": "8"})
# "B" for 8 only in an amount with a decimal part ("B37.02"): "B12" is more likely a reference.
_B_AMOUNT = re.compile(r"-?\d{1,3}(?:[,.]\d{3})*[,.]\d{2}")
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
    text = _DOLLAR_FIVE.sub("5", text)
    text = _DOUBLE_MINUS.sub("-", text)
    text = _TILDE_MINUS.sub("-", text)
    text = _DOTTED_ID.sub(_undot_id, text)
    text = _mend_hyphen_ids(text)
    convention = convention or decimal_convention(text)
    if convention is None:
        return text
    point = convention == "point"
    group, decimal = (",", ".") if point else (".", ",")

    def normalise(match: re.Match[str]) -> str:
        head, _, cents = _SEPARATOR_RUN.sub(group, match.group(0)).rpartition(group)
        return head + decimal + cents

    for _ in range(2):  # again once separators are normalised: "17,263 882,54" -> "17,263 882.54"
        text = _SPACE_DECIMAL[convention].sub(r"\1" + decimal + r"\2", text)
        text = _SPACE_THOUSANDS[convention].sub(r"\1" + group + r"\2", text)
        text = _LOOSE_AMOUNT.sub(normalise, text)
    return _MISGROUPED.sub(lambda m: _regroup(m, group, decimal), text)


def _regroup(match: re.Match[str], group: str, decimal: str) -> str:
    """Re-cut the thousands groups of an amount where a separator was lost (groups of 4-6 digits)."""
    sign, body, sep, cents = match.groups()
    if sep != decimal:
        return match.group(0)
    groups = re.split(r"[.,]", body)
    digits = "".join(groups)
    if any(len(g) not in (3, 6) for g in groups[1:]) or all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
        return match.group(0)  # not misgrouped (or groups of other sizes: not an amount to guess at)
    head = len(digits) % 3 or 3
    cut = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return sign + group.join(cut) + decimal + cents


def _undot_id(match: re.Match[str]) -> str:
    token = match.group(0)
    return token.replace(".", "-") if "-" in token and "." in token else token


def _mend_hyphen_ids(text: str) -> str:
    """Re-insert a hyphen lost from an account number, using the shapes of the page's others.

    A shape (group lengths, like 4-6-2) seen twice or more among well-formed hyphenated numbers is
    the page's; a token with fewer hyphens whose cuts all fall on that shape's cuts, with the same
    number of digits, is cut like it: ``5914172702-89`` -> ``5914-172702-89``.
    """
    counts: dict[tuple[int, ...], int] = {}
    for token in _HYPHEN_ID.findall(text):
        shape = tuple(len(g) for g in token.split("-"))
        if len(shape) >= 3 and min(shape) >= 2:
            counts[shape] = counts.get(shape, 0) + 1
    shapes = [shape for shape, n in counts.items() if n >= 2]
    if not shapes:
        return text

    def mend(match: re.Match[str]) -> str:
        groups = match.group(0).split("-")
        lengths = tuple(len(g) for g in groups)
        if lengths in counts and counts[lengths] >= 2:
            return match.group(0)
        cuts = set(_cuts(lengths))
        fits = [s for s in shapes if sum(s) == sum(lengths) and len(s) > len(lengths) and cuts <= set(_cuts(s))]
        if len(fits) != 1:
            return match.group(0)
        digits = "".join(groups)
        edges = [0, *_cuts(fits[0]), len(digits)]
        mended = "-".join(digits[a:b] for a, b in zip(edges, edges[1:], strict=False))
        if sum(fits[0]) < _MIN_ID_DIGITS and not _ISO_DATE.fullmatch(mended):
            return match.group(0)  # short: only a valid date ("2026-1009"), never "2024-1234"
        return mended

    return _HYPHEN_ID.sub(mend, text)


def _cuts(lengths: tuple[int, ...]) -> list[int]:
    total, out = 0, []
    for n in lengths[:-1]:
        total += n
        out.append(total)
    return out


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
    if "B" in body and not _B_AMOUNT.fullmatch(mapped):
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
