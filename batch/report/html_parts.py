"""Building blocks shared by the HTML report's sections: the palette, a titled section, a breakdown table.

Every value from the data is escaped here; key figures carry ``data-key``/``data-value`` attributes
holding the raw number (see :mod:`.html`).
"""

from __future__ import annotations

from html import escape

from .parts import NONE, Line
from .render import count, usd

__all__ = [
    "BATCH",
    "BILLED",
    "BILLED_COST",
    "DETAIL_COLORS",
    "ESTIMATED",
    "FINISH_COLORS",
    "STANDARD",
    "STATUS_COLORS",
    "lines_table",
    "section",
]

STANDARD, BATCH = "#2f6db5", "#9cc1e8"
ESTIMATED, BILLED = "#e0913a", "#2f6db5"
BILLED_COST = "#1f4f86"  # the cost actually billed (each row at its route's prices), beside the what-ifs
DETAIL_COLORS = {"low": "#3a9d5d", "high": "#2f6db5", "auto": "#8e5bb5", NONE: "#999"}
STATUS_COLORS = {"ok": "#3a9d5d", "filtered": "#e0b03a", "refused": "#8a6bbf", "error": "#d9534f"}
FINISH_COLORS = {"stop": "#3a9d5d", "length": "#d9534f", "content_filter": "#e0b03a"}


def lines_table(lines: tuple[Line, ...], label: str, key: str, *, compact: bool = False) -> str:
    """Rows, tokens and cost per key; ``compact`` leaves out the token columns."""
    heads = ["rows", "with usage"] + ([] if compact else ["prompt tokens", "completion tokens"])
    heads += ["billed", "all at standard", "all at Batch"]
    rows = []
    for x in lines:
        tokens = "" if compact else f"<td>{count(x.prompt_tokens)}</td><td>{count(x.completion_tokens)}</td>"
        rows.append(
            f"<tr><td class=l>{escape(x.key)}</td><td>{count(x.rows)}</td><td>{count(x.usage_rows)}</td>{tokens}"
            f'<td data-key="{key}.{escape(x.key)}.cost_usd.billed" data-value="{x.cost_billed!r}">'
            f"{usd(x.cost_billed)}</td>"
            f'<td data-key="{key}.{escape(x.key)}.cost_usd.standard" data-value="{x.cost_standard!r}">'
            f"{usd(x.cost_standard)}</td><td>{usd(x.cost_batch)}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<table><tr><th class=l>{escape(label)}</th>{head}</tr>{''.join(rows)}</table>"


def section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>"
