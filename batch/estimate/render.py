"""The terminal view of an :class:`~batch.estimate.EstimateReport` (the CLI prints it).

Kept apart from the arithmetic so that the numbers have one home (``EstimateReport``, also the
``--json`` output) and this module only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import EstimateReport, Totals
from .shards import render_shards
from .video import video_lines

__all__ = ["render_estimate"]

_COST_HEADERS = ["standard exp", "standard max", "batch exp", "batch max"]


def _checked(r: EstimateReport) -> str:
    if not r.images.checked:
        return "headers only: a truncated file may be counted as sendable"
    return f"{r.images.checked:,} structure-checked as the run checks them, the rest by header"


def render_estimate(report: EstimateReport) -> str:
    """A readable, fixed-width report: inputs, per-detail totals, time, what-if, skipped rows, notes."""
    r = report
    p = r.price
    t = r.total
    lines = [
        f"Estimate for {r.job} (no API calls made)",
        f"  manifest  {r.manifest}: {r.rows_read:,} rows read, {t.rows:,} to send, {r.rows_skipped:,} skipped"
        + (f" (documents: {t.images:,} pages and images in {t.requests:,} requests)" if t.requests != t.rows else ""),
        f"  images    {r.images.local:,} local ({_checked(r)}), {r.images.inline:,} data URLs, "
        f"{r.images.remote:,} http(s) URLs (not downloaded)",
        f"  model     {r.model} (deployment {r.deployment}, rules {r.catalogue_model}), tokenizer {r.tokenizer}",
        f"  prices    {p.name}: {_rate(p.input)} in / {_rate(p.output)} out per 1M tokens; "
        f"Batch {_rate(p.batch_input)} / {_rate(p.batch_output)}{' (derived: 50%)' if p.batch_derived else ''}",
        f"  limits    {_limits(r)}",
        "",
    ]
    headers = ["detail", "rows", "image tok", "text tok", "prompt tok", "max out", "exp. out", *_COST_HEADERS]
    body = [_detail_row(d, x) for d, x in r.by_detail.items()]
    if len(r.by_detail) != 1:
        body.append(_detail_row("total", t))
    lines += _table(headers, body)
    lines += video_lines(r.video)
    lines += ["", _time_line(r)]

    lines += ["", "What if (same rows, same pass; 'job' = each row's own detail; minutes at this job's limits):"]
    headers = ["model", "detail", "image tok", "prompt tok", *_COST_HEADERS, "minutes"]
    body = [
        [s.model, s.detail, _n(s.totals.image_tokens), _n(s.totals.prompt_tokens), *_costs(s.totals), _min(s.totals)]
        for s in r.what_if
    ]
    lines += _table(headers, body, left=2)

    if r.batch_route is not None:
        lines += ["", *render_shards(r.batch_route)]
    if r.addons_if_enabled:
        shown = ", ".join(f"{name} {_usd(usd)}" for name, usd in r.addons_if_enabled.items())
        lines += ["", f"Enhancement add-ons if enabled on every image: {shown}"]
    if r.skipped:
        counts = ", ".join(f"{code} {n:,}" for code, n in r.skipped.items())
        lines += ["", f"Skipped rows (the run would not send them; not counted above): {counts}"]
        lines += [f"  {s.id}: {s.message}" for s in r.skipped_examples]
    lines += ["", "Notes:"]
    lines += [f"  - {note}" for note in (*r.notes, *([r.ocr_hint.note()] if r.ocr_hint else []))]
    return "\n".join(lines)


def _limits(r: EstimateReport) -> str:
    parts = []
    if r.tpm is not None:
        parts.append(f"{r.tpm:,} TPM")
    if r.rpm is not None:
        parts.append(f"{r.rpm:,} RPM")
    return ", ".join(parts) if parts else "none set in the job"


def _time_line(r: EstimateReport) -> str:
    t = r.total
    if t.minutes is None:
        return "Time: unknown (the job sets no [limits].tpm or rpm)"
    why = (
        f"bound by tokens: {t.admission_tokens:,} admission tokens = prompt + max output"
        if t.bound_by == "tokens"
        else f"bound by requests: {t.requests:,}"
    )
    return f"Time at {_limits(r)}: {_duration(t.minutes)} ({why})"


def _detail_row(name: str, t: Totals) -> list[str]:
    return [
        name,
        _n(t.rows),
        _n(t.image_tokens),
        _n(t.text_tokens),
        _n(t.prompt_tokens),
        _n(t.max_completion_tokens),
        _n(t.expected_completion_tokens),
        *_costs(t),
    ]


def _costs(t: Totals) -> list[str]:
    c = t.costs
    return [_usd(c.standard_expected), _usd(c.standard_max), _usd(c.batch_expected), _usd(c.batch_max)]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` are labels (left-aligned), the rest numbers."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [f"{c:<{w}}" if i < left else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _n(value: int) -> str:
    return f"{value:,}"


def _usd(value: float) -> str:
    # Cents hide the cost of a small sample; beyond $100 they are noise.
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _rate(value: float) -> str:
    """A price per 1M tokens: at least cents, more digits only when the price has them ($0.075)."""
    text = f"{value:.4f}".rstrip("0")
    return "$" + (text + "0" * (2 - len(text.split(".")[1])) if "." in text else text)


def _min(t: Totals) -> str:
    if t.minutes is None:
        return "-"
    return f"{t.minutes:,.2f}" if t.minutes < 10 else f"{t.minutes:,.1f}"


def _duration(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"
