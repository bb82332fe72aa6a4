"""The HTML report's section on the estimate: estimated against billed prompt tokens, per row and per detail.

A scatter of the sampled rows, columns per detail level, the summary with its ``data-key`` figures,
the rows-by-error buckets and the largest differences.
"""

from __future__ import annotations

from html import escape

from .html_parts import (
    BILLED,
    DETAIL_COLORS,
    ESTIMATED,
    section,
)
from .model import Report
from .parts import Accuracy
from .render import count, pct
from .svg import Series, column_chart, scatter

__all__ = ["accuracy_section"]


def accuracy_section(r: Report) -> str:
    a = r.accuracy
    title = "Estimate vs billed prompt tokens"
    if not a.rows:
        return section(title, '<p class="empty">No row has both an estimate and billed usage.</p>')
    buckets = " &middot; ".join(f"{escape(k)}: {count(n)}" for k, n in a.buckets.items() if n)
    body = (
        f'{_summary(a)}<div class="grid2">{_charts(a)}</div>'
        f'{_by_detail_table(a)}<p class="note">Rows by error: {buckets}</p>{_largest_table(a)}'
    )
    return section(title, body)


def _charts(a: Accuracy) -> str:
    """Two cells: the per-row scatter with its legend, and estimated vs billed per detail level."""
    points = [(p.estimated, p.actual, p.detail) for p in a.sample]
    sampled = f" (one row in {a.sample_stride:,})" if a.sample_stride > 1 else ""
    left = scatter(
        "estimate-scatter",
        points,
        DETAIL_COLORS,
        xlabel="estimated prompt tokens",
        ylabel="billed prompt tokens",
        title=f"Estimated against billed prompt tokens per row{sampled}",
    )
    legend = " ".join(
        f'<span style="color:{DETAIL_COLORS.get(d, "#777")}">&#9679;</span> {escape(d)}'
        for d in dict.fromkeys(p.detail for p in a.sample)
    )
    right = column_chart(
        "estimate-by-detail",
        [x.key for x in a.by_detail],
        [
            Series("estimated", ESTIMATED, [x.estimated for x in a.by_detail]),
            Series("billed", BILLED, [x.actual for x in a.by_detail]),
        ],
        lambda v: f"{v:,.0f}",
        title="Estimated and billed prompt tokens per detail level",
    )
    return f'<div>{left}<p class="note">{legend}</p></div><div>{right}</div>'


def _summary(a: Accuracy) -> str:
    return (
        f'<p>Over {count(a.rows)} rows: estimated <b data-key="estimate.estimated_prompt_tokens" '
        f'data-value="{a.estimated}">{count(a.estimated)}</b>, billed <b data-key="estimate.actual_prompt_tokens" '
        f'data-value="{a.actual}">{count(a.actual)}</b>, error {a.error:+,} tokens ({pct(a.error_pct)}); '
        f'<b data-key="estimate.exact_rows" data-value="{a.exact_rows}">{count(a.exact_rows)}</b> rows exact, '
        f"{count(a.within_1pct_rows)} within 1%, mean absolute error per row "
        f"{pct(a.mean_abs_pct_error, signed=False)}. Points on the dashed diagonal are exact.</p>"
    )


def _by_detail_table(a: Accuracy) -> str:
    rows = "".join(
        f"<tr><td class=l>{escape(x.key)}</td><td>{count(x.rows)}</td><td>{count(x.estimated)}</td>"
        f"<td>{count(x.actual)}</td><td>{pct(x.error_pct)}</td><td>{count(x.exact_rows)}</td></tr>"
        for x in a.by_detail
    )
    return (
        "<table><tr><th class=l>detail</th><th>rows</th><th>estimated</th><th>billed</th><th>error</th>"
        f"<th>exact rows</th></tr>{rows}</table>"
    )


def _largest_table(a: Accuracy) -> str:
    if not a.largest:
        return ""
    rows = "".join(
        f'<tr><td class="l id">{escape(m.id)}</td><td class=l>{escape(m.detail)}</td><td>{count(m.estimated)}</td>'
        f"<td>{count(m.actual)}</td><td>{m.error:+,} ({pct(m.error_pct)})</td></tr>"
        for m in a.largest
    )
    return (
        f"<h2>Largest differences</h2><table><tr><th class=l>id</th><th class=l>detail</th><th>estimated</th>"
        f"<th>billed</th><th>error</th></tr>{rows}</table>"
    )
