"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no URL.

The page loads nothing: no font, no stylesheet, no script, no image; a Content-Security-Policy
of ``default-src 'none'`` makes the browser refuse any fetch even if data smuggled one in. Every
value from the data (ids, model names, codes, the file name) is escaped. Key figures carry
``data-key`` attributes holding the raw number, so a test (or a scraper) can read them back.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from .html_accuracy import accuracy_section
from .html_parts import (
    BATCH,
    BILLED,
    BILLED_COST,
    ESTIMATED,
    FINISH_COLORS,
    STANDARD,
    STATUS_COLORS,
    lines_table,
    section,
)
from .job import ReportError
from .model import Report
from .render import count, pct, share, usd
from .svg import Series, bars, histogram, timeline

__all__ = ["render_html", "write_html"]


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d2733;
       background: #f4f6f9; margin: 0; padding: 24px; }
main { max-width: 1120px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 10px; }
.src { color: #5b6775; margin: 0 0 18px; word-break: break-all; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 16px 18px; margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
         background: none; border: 0; padding: 0; }
.card { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 12px 14px; }
.card .label { color: #5b6775; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; margin-top: 2px; }
.card .sub { color: #5b6775; font-size: 12px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.grid2 > div { min-width: 0; }
svg.chart { max-width: 100%; height: auto; display: block; margin: 4px 0 8px; }
svg text { font-size: 12px; fill: #1d2733; }
svg text.tick, svg text.val { fill: #5b6775; font-size: 11px; }
svg text.axis { fill: #5b6775; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #edf0f4; text-align: right; white-space: nowrap; }
th { color: #5b6775; font-weight: 600; background: #f8fafc; }
td.l, th.l { text-align: left; }
td.id { max-width: 320px; overflow: hidden; text-overflow: ellipsis; }
.note { color: #5b6775; }
.empty { color: #5b6775; font-style: italic; }
ul.notes { margin: 0; padding-left: 18px; color: #3b4754; }
.bad { color: #c0392b; }
"""


def write_html(report: Report, path: Path) -> None:
    """Write the page to ``path`` (through a temporary file, so a reader never sees half a page)."""
    page = render_html(report)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"cannot write the HTML report {path}: {exc.strerror or exc}") from None


def render_html(report: Report) -> str:
    """The whole page as one string."""
    r = report
    name = Path(r.source).name
    body = [
        f"<h1>Cost report: {escape(name)}</h1>",
        f'<p class="src">{escape(r.source)} &middot; {count(r.rows)} rows &middot; prices per 1M tokens from the '
        "built-in table or --prices</p>",
        _cards(r),
        _cost_by_detail(r),
        _routes(r),
        _distribution(r),
        accuracy_section(r),
        _outcomes(r),
        _fields(r),
        _timeline(r),
        _top(r),
        _notes(r),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Cost report: {escape(name)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{chr(10).join(body)}\n</main></body></html>\n"
    )


# --- sections ---------------------------------------------------------------------------------


def _cards(r: Report) -> str:
    t, a, g = r.total, r.accuracy, r.length
    cards = [
        _card("Cost, billed", usd(t.cost_billed), "total.cost_usd.billed", t.cost_billed,
              "online rows at standard prices, batch rows at Batch prices"),
        _card("All at standard", usd(t.cost_standard), "total.cost_usd.standard", t.cost_standard,
              "what-if: every row online"),
        _card("All at Batch", usd(t.cost_batch), "total.cost_usd.batch", t.cost_batch,
              "what-if: every row through the Batch API"),
        _card("Rows", count(t.rows), "rows", t.rows,
              f"{count(t.usage_rows)} billed, {count(r.rows_without_usage)} not"),
        _card("Prompt tokens", count(t.prompt_tokens), "total.prompt_tokens", t.prompt_tokens,
              f"{count(t.completion_tokens)} completion"),
        _card("Send-time estimate error", pct(a.error_pct), "estimate.error_pct", a.error_pct,
              f"{count(a.exact_rows)} of {count(a.rows)} rows exact ({share(a.exact_share)})"),
        _card("Cut short (length)", share(g.share if g.answered_rows else None), "length.share", g.share,
              f"{count(g.rows)} rows, {usd(g.cost_billed)} billed"),
    ]  # fmt: skip
    return f'<section class="cards">{"".join(cards)}</section>'


def _card(label: str, shown: str, key: str, raw: float | int | None, sub: str) -> str:
    value = "" if raw is None else repr(raw)
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value" data-key="{escape(key)}" data-value="{escape(value)}">{escape(shown)}</div>'
        f'<div class="sub">{escape(sub)}</div></div>'
    )


def _cost_by_detail(r: Report) -> str:
    if not r.by_detail:
        return section("Cost by detail level", '<p class="empty">No rows.</p>')
    chart = bars(
        "cost-by-detail",
        [x.key for x in r.by_detail],
        [
            Series("billed", BILLED_COST, [x.cost_billed for x in r.by_detail]),
            Series("all at standard", STANDARD, [x.cost_standard for x in r.by_detail]),
            Series("all at Batch", BATCH, [x.cost_batch for x in r.by_detail]),
        ],
        usd,
        title="Cost by detail level: billed, and all at standard or Batch prices",
    )
    return section("Cost by detail level", chart + lines_table(r.by_detail, "detail", "by_detail"))


def _routes(r: Report) -> str:
    """Rows, tokens and billed cost per route: online at standard prices, Batch API at Batch prices."""
    if not r.by_route:
        return section("Cost by route", '<p class="empty">No rows.</p>')
    batches = (
        f'<p>Batches: <span data-key="batches" data-value="{r.batches}">{count(r.batches)}</span> '
        "(distinct batch ids of the batch rows).</p>"
        if r.batches
        else ""
    )
    note = '<p class="note">Billed: online rows at standard prices, batch rows at Batch prices.</p>'
    return section("Cost by route", lines_table(r.by_route, "route", "by_route") + batches + note)


def _distribution(r: Report) -> str:
    cells = []
    for title, hist, color, key in (
        ("Prompt tokens per row", r.prompt_histogram, BILLED, "prompt"),
        ("Completion tokens per row", r.completion_histogram, ESTIMATED, "completion"),
    ):
        if not hist.bins:
            cells.append(f'<div><h2>{title}</h2><p class="empty">No billed rows.</p></div>')
            continue
        chart = histogram(f"hist-{key}", hist.bins, color, xlabel=f"{key} tokens (bins of {hist.width:,})", title=title)
        range_ = f"{count(hist.min)} to {count(hist.max)} tokens over {count(hist.rows)} billed rows"
        cells.append(f'<div><h2>{title}</h2>{chart}<p class="note">{range_}</p></div>')
    return f'<section class="grid2">{"".join(cells)}</section>'


def _outcomes(r: Report) -> str:
    cells = []
    for title, lines, colors, key, label in (
        ("Status", r.by_status, STATUS_COLORS, "status", "by_status"),
        ("Finish reason", r.by_finish_reason, FINISH_COLORS, "finish-reason", "by_finish_reason"),
    ):
        if not lines:
            cells.append(f'<div><h2>{title}</h2><p class="empty">No rows.</p></div>')
            continue
        chart = bars(
            key,
            [x.key for x in lines],
            [Series("rows", "#777", [x.rows for x in lines])],
            lambda v: f"{v:,.0f} rows",
            width=460,
            title=f"Rows by {title.lower()}",
            category_colors=[colors.get(x.key, "#777") for x in lines],
        )
        cells.append(f"<div><h2>{title}</h2>{chart}{lines_table(lines, title.lower(), label, compact=True)}</div>")
    g = r.length
    codes = ""
    if r.error_codes:
        codes = "<p>Error codes: " + ", ".join(f"{escape(c)} {count(n)}" for c, n in r.error_codes.items()) + "</p>"
    cut = (
        f'<p><span class="bad">Cut short by max_tokens</span> (finish_reason length): {count(g.rows)} of '
        f"{count(g.answered_rows)} answered rows ({share(g.share if g.answered_rows else None)}), "
        f"{count(g.completion_tokens)} completion tokens, {usd(g.cost_billed)} billed "
        f"(all at standard {usd(g.cost_standard)}, all at Batch {usd(g.cost_batch)}) "
        "paid for answers that may be useless.</p>"
    )
    return f'<section><div class="grid2">{"".join(cells)}</div>{cut}{codes}</section>'


def _fields(r: Report) -> str:
    """With [output].schema: how often each field of the structured answers is filled."""
    if not r.fields:
        return ""
    rows = "".join(
        f'<tr><td class="l id">{escape(f.path)}</td><td data-key="fields.{i}.filled">{count(f.filled)}</td>'
        f"<td>{count(f.of)}</td><td>{share(f.share)}</td></tr>"
        for i, f in enumerate(r.fields)
    )
    table = f"<table><tr><th class=l>field</th><th>filled</th><th>of</th><th>share</th></tr>{rows}</table>"
    note = f'<p class="note">{count(r.data_rows)} rows with data; fields inside lists count over the items.</p>'
    return section("Schema fields filled", table + note)


def _timeline(r: Report) -> str:
    tl = r.timeline
    if not tl.available:
        return section("Tokens per minute", f'<p class="empty" data-key="timeline.note">{escape(tl.note)}</p>')
    chart = timeline("timeline", tl.minutes, tl.tpm, BILLED, title="Billed tokens per minute of the run")
    return section("Tokens per minute", f'{chart}<p class="note">{escape(tl.note)}</p>')


def _top(r: Report) -> str:
    if not r.top:
        return section("Most expensive rows", '<p class="empty">No billed rows.</p>')
    rows = "".join(
        f'<tr><td class="l id">{escape(x.id)}</td><td class=l>{escape(x.model)}</td>'
        f"<td class=l>{escape(x.detail)}</td><td class=l>{escape(x.status)}</td>"
        f"<td class=l>{escape(x.finish_reason)}</td><td class=l>{escape(x.route)}</td><td>{count(x.prompt_tokens)}</td>"
        f"<td>{count(x.completion_tokens)}</td><td>{count(x.total_tokens)}</td>"
        f'<td data-key="top.{i}.cost_usd.billed" data-value="{x.cost_billed!r}">{usd(x.cost_billed)}</td>'
        f'<td data-key="top.{i}.cost_usd.standard" data-value="{x.cost_standard!r}">{usd(x.cost_standard)}</td>'
        f"<td>{usd(x.cost_batch)}</td></tr>"
        for i, x in enumerate(r.top)
    )
    table = (
        '<table class="top"><tr><th class=l>id</th><th class=l>model</th><th class=l>detail</th><th class=l>status</th>'
        "<th class=l>finish</th><th class=l>route</th><th>prompt</th><th>completion</th><th>total</th>"
        "<th>billed</th><th>all at standard</th><th>all at Batch</th></tr>"
        f"{rows}</table>"
    )
    return section(f"Most expensive rows (top {len(r.top)})", table)


def _notes(r: Report) -> str:
    items = "".join(f"<li>{escape(n)}</li>" for n in r.notes)
    return section("Prices and notes", f'<ul class="notes">{items}</ul>')
