"""The terminal view of a :class:`~.model.Report`, and the number formats the page shares.

Only layout lives here: every figure comes from the report object (also the ``--json`` output).
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Report
from .parts import Line

__all__ = ["count", "pct", "render_report", "share", "usd"]


def render_report(report: Report) -> str:
    """A fixed-width report: totals, breakdowns, cut-short answers, estimate vs actual, top rows."""
    r = report
    lines = _totals(r)
    for title, label, group in (
        ("By detail used", "detail", r.by_detail),
        ("By finish reason", "finish", r.by_finish_reason),
        ("By status", "status", r.by_status),
        ("By route (billed: online at standard prices, batch at Batch prices)", "route", r.by_route),
    ):
        lines += ["", f"{title}:", *_lines_table(label, group)]
    if r.error_codes:
        lines += ["", "Error codes: " + ", ".join(f"{code} {count(n)}" for code, n in r.error_codes.items())]
    if r.fields:
        width = max(len(f.path) for f in r.fields)
        lines += ["", f"Schema fields filled ({count(r.data_rows)} rows with data; inside lists: of the items):"]
        lines += [f"  {f.path:<{width}}  {count(f.filled):>8} of {count(f.of):<8} {share(f.share)}" for f in r.fields]

    g = r.length
    lines += [
        "",
        f"Cut short (finish_reason length): {count(g.rows)} of {count(g.answered_rows)} answered rows "
        f"({share(g.share if g.answered_rows else None)}), {count(g.completion_tokens)} completion tokens, "
        f"{usd(g.cost_billed)} billed for them (all at standard {usd(g.cost_standard)}, "
        f"all at Batch {usd(g.cost_batch)})",
    ]
    lines += ["", *_accuracy(r)]
    if r.top:
        lines += ["", f"Most expensive rows (top {len(r.top)}):", *_top_rows(r)]
    lines += ["", "Tokens per minute:"]
    tl = r.timeline
    if tl.available:
        limit = f" (limit {count(tl.tpm)} TPM)" if tl.tpm else ""
        lines.append(f"  {len(tl.minutes)} minute(s), peak {count(tl.peak)} tokens/min{limit}")
    lines.append(f"  {tl.note}")
    lines += ["", "Notes:", *(f"  - {note}" for note in r.notes)]
    return "\n".join(lines)


def _totals(r: Report) -> list[str]:
    """The heading: rows, tokens and cost over the whole file, and each model's price."""
    t = r.total
    lines = [
        f"Cost report for {r.source}",
        f"  rows      {count(t.rows)}: {count(t.usage_rows)} billed, {count(r.rows_without_usage)} without usage ($0)",
        f"  tokens    {count(t.prompt_tokens)} prompt + {count(t.completion_tokens)} completion "
        f"= {count(t.total_tokens)} total",
        f"  billed    {usd(t.cost_billed)}: {_route_split(r)}",
        f"  what-if   {usd(t.cost_standard)} all at standard prices, {usd(t.cost_batch)} all at Batch prices",
    ]
    if r.batches:
        lines.append(f"  batches   {count(r.batches)} (distinct batch ids of the batch rows)")
    for m in r.models:
        p = m.price
        lines.append(
            f"  model     {m.model} -> price {p.name}: {_rate(p.input)} in / {_rate(p.output)} out per 1M tokens, "
            f"Batch {_rate(p.batch_input)} / {_rate(p.batch_output)}{' (derived)' if p.batch_derived else ''}"
        )
    return lines


def _route_split(r: Report) -> str:
    """Which rows the billed cost prices how: "12 online rows at standard prices, 30 batch rows at Batch"."""
    how = {"batch": "Batch"}  # any other route is billed at standard prices (build.py)
    parts = [f"{count(x.usage_rows)} {x.key} row(s) at {how.get(x.key, 'standard')} prices" for x in r.by_route]
    return ", ".join(parts) or "no rows"


def _top_rows(r: Report) -> list[str]:
    return _table(
        ["id", "detail", "finish", "route", "prompt", "completion", "total", "billed", "all std", "all Batch"],
        [
            [
                x.id,
                x.detail,
                x.finish_reason,
                x.route,
                count(x.prompt_tokens),
                count(x.completion_tokens),
                count(x.total_tokens),
                usd(x.cost_billed),
                usd(x.cost_standard),
                usd(x.cost_batch),
            ]
            for x in r.top
        ],
        left=4,
        indent=2,
    )


_SEND_TIME = "Send-time estimate vs billed prompt tokens"
_SEND_TIME_WHAT = (
    "(the estimate the run made of each request as sent, OCR hint included; not the figure "
    "`batch estimate` printed before the run)"
)


def _accuracy(r: Report) -> list[str]:
    a = r.accuracy
    if not a.rows:
        return [f"{_SEND_TIME}: no row has both an estimate and billed usage"]
    lines = [
        f"{_SEND_TIME} ({count(a.rows)} rows with both):",
        f"  {_SEND_TIME_WHAT}",
        f"  estimated {count(a.estimated)}, billed {count(a.actual)}: error {a.error:+,} tokens ({pct(a.error_pct)})",
        f"  exact rows {count(a.exact_rows)} ({share(a.exact_share)}); within 1%: {count(a.within_1pct_rows)}; "
        f"mean absolute error per row {pct(a.mean_abs_pct_error, signed=False)}",
    ]
    lines += _table(
        ["detail", "rows", "estimated", "billed", "error", "exact rows"],
        [
            [x.key, count(x.rows), count(x.estimated), count(x.actual), pct(x.error_pct), count(x.exact_rows)]
            for x in a.by_detail
        ],
        left=1,
        indent=2,
    )
    spread = [f"{label} {count(n)}" for label, n in a.buckets.items() if n]
    lines.append("  rows by error: " + ", ".join(spread))
    if a.largest:
        lines.append(f"  largest differences (top {len(a.largest)}):")
        lines += _table(
            ["id", "detail", "estimated", "billed", "error"],
            [
                [m.id, m.detail, count(m.estimated), count(m.actual), f"{m.error:+,} ({pct(m.error_pct)})"]
                for m in a.largest
            ],
            left=2,
            indent=4,
        )
    return lines


def _lines_table(label: str, lines: Sequence[Line]) -> list[str]:
    if not lines:
        return ["  (no rows)"]
    return _table(
        [label, "rows", "with usage", "prompt tok", "completion tok", "total tok", "billed", "all std", "all Batch"],
        [
            [
                x.key,
                count(x.rows),
                count(x.usage_rows),
                count(x.prompt_tokens),
                count(x.completion_tokens),
                count(x.total_tokens),
                usd(x.cost_billed),
                usd(x.cost_standard),
                usd(x.cost_batch),
            ]
            for x in lines
        ],
        left=1,
        indent=2,
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int, indent: int = 0) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [f"{c:<{w}}" if i < left else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return (" " * indent + "  ".join(padded)).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def usd(value: float) -> str:
    """Dollars: four decimals below $100 (a sample's cost is cents), two above."""
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def pct(value: float | None, *, signed: bool = True) -> str:
    """A percentage with two decimals (``+0.00%``); ``-`` when undefined."""
    if value is None:
        return "-"
    if value and abs(value) < 0.005:  # not zero, but would print as 0.00%
        return ("-" if value < 0 else "+" if signed else "") + "<0.01%"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def share(value: float | None) -> str:
    """A share 0..1 as a percentage with one decimal."""
    return "-" if value is None else f"{value * 100:.1f}%"


def _rate(value: float) -> str:
    text = f"{value:.4f}".rstrip("0")
    return "$" + (text + "0" * (2 - len(text.split(".")[1])) if "." in text else text)
