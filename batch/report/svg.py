"""Small inline-SVG charts drawn in Python: no JavaScript, no library, no external resource.

Each function returns one ``<svg>`` element as text. Every mark carries its number
(``data-value``) and a ``<title>`` (the browser's tooltip); every text is escaped. Bars are at
least one pixel wide when their value is not zero, so a small value never disappears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "bars", "column_chart", "histogram", "scatter", "timeline"]

_FONT = 12
_LABEL_W = 120
_VALUE_W = 110


@dataclass(frozen=True, slots=True)
class Series:
    """One set of values drawn in one colour, one value per category."""

    name: str
    color: str
    values: Sequence[float]


def bars(
    chart: str,
    categories: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    *,
    width: int = 640,
    title: str,
    category_colors: Sequence[str] | None = None,
) -> str:
    """Horizontal bars: one group per category, one bar per series, value printed after each bar.
    ``category_colors`` colours each category's bars instead of the series colour."""
    bar_h, gap = 16, 12
    group_h = bar_h * len(series) + gap
    legend_h = 22 if len(series) > 1 else 0
    height = legend_h + group_h * len(categories) + 4
    area = width - _LABEL_W - _VALUE_W
    top = max((v for s in series for v in s.values), default=0.0)
    parts = [_open(chart, width, height, title), _legend(series, 0) if legend_h else ""]
    for i, category in enumerate(categories):
        y0 = legend_h + i * group_h
        parts.append(_text(_LABEL_W - 8, y0 + group_h / 2 - gap / 2 + 4, category, anchor="end", cls="cat"))
        for j, s in enumerate(series):
            value = s.values[i]
            w = _length(value, top, area)
            y = y0 + j * bar_h
            tip = f"{category}, {s.name}: {fmt(value)}"
            color = category_colors[i] if category_colors else s.color
            parts.append(_rect(_LABEL_W, y, w, bar_h - 3, color, value, tip, f"bar s{j}"))
            parts.append(_text(_LABEL_W + w + 6, y + bar_h - 6, fmt(value), cls="val"))
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    chart: str,
    categories: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    *,
    width: int = 420,
    height: int = 260,
    title: str,
) -> str:
    """Vertical bars side by side per category (e.g. estimated vs billed tokens per detail)."""
    left, bottom, top_pad = 64, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max((v for s in series for v in s.values), default=0.0)
    parts = [_open(chart, width, height, title), _legend(series, 0), _y_axis(left, top_pad, plot_h, top, fmt)]
    slot = plot_w / max(len(categories), 1)
    bar_w = min(48.0, slot * 0.8 / max(len(series), 1))
    for i, category in enumerate(categories):
        x0 = left + i * slot + (slot - bar_w * len(series)) / 2
        for j, s in enumerate(series):
            value = s.values[i]
            h = _length(value, top, plot_h)
            x = x0 + j * bar_w
            tip = f"{category}, {s.name}: {fmt(value)}"
            parts.append(_rect(x, top_pad + plot_h - h, bar_w - 2, h, s.color, value, tip, f"bar s{j}"))
        parts.append(_text(left + i * slot + slot / 2, height - bottom + 16, category, anchor="middle", cls="cat"))
    parts.append(_axis_line(left, top_pad + plot_h, left + plot_w, top_pad + plot_h))
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    chart: str,
    bins: Sequence[tuple[int, int, int]],
    color: str,
    *,
    xlabel: str,
    width: int = 420,
    height: int = 240,
    title: str,
) -> str:
    """Rows per bin, bins of equal width left to right; ``bins`` are (low, high inclusive, rows)."""
    left, bottom, top_pad = 56, 44, 12
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    top = max((n for _, _, n in bins), default=0)
    parts = [_open(chart, width, height, title), _y_axis(left, top_pad, plot_h, top, lambda v: f"{v:,.0f}")]
    step = plot_w / max(len(bins), 1)
    for i, (lo, hi, n) in enumerate(bins):
        h = _length(n, top, plot_h)
        label = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
        tip = f"{label} tokens: {n:,} rows"
        parts.append(_rect(left + i * step + 0.5, top_pad + plot_h - h, max(step - 1, 1), h, color, n, tip, "bar"))
    ticks = sorted({0, len(bins) // 2, len(bins) - 1}) if bins else []
    for i in ticks:
        parts.append(
            _text(left + i * step + step / 2, top_pad + plot_h + 16, f"{bins[i][0]:,}", anchor="middle", cls="tick")
        )
    parts.append(_text(left + plot_w / 2, height - 6, xlabel, anchor="middle", cls="axis"))
    parts.append(_axis_line(left, top_pad + plot_h, left + plot_w, top_pad + plot_h))
    parts.append("</svg>")
    return "".join(parts)


def scatter(
    chart: str,
    points: Sequence[tuple[float, float, str]],
    colors: dict[str, str],
    *,
    xlabel: str,
    ylabel: str,
    size: int = 300,
    title: str,
) -> str:
    """Points (x, y, group) on equal axes with the y = x diagonal (a perfect estimate lies on it)."""
    left, bottom, pad = 64, 44, 14
    width, height = left + size + pad, pad + size + bottom
    top = max((max(x, y) for x, y, _ in points), default=0.0) or 1.0
    parts = [_open(chart, width, height, title)]
    parts.append(_axis_line(left, pad + size, left + size, pad + size))
    parts.append(_axis_line(left, pad, left, pad + size))
    parts.append(
        f'<line class="diagonal" x1="{left}" y1="{pad + size}" x2="{left + size}" y2="{pad}" '
        'stroke="#999" stroke-dasharray="4 3"/>'
    )
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        parts.append(_text(left + size * frac, pad + size + 16, f"{v:,.0f}", anchor="middle", cls="tick"))
        parts.append(_text(left - 6, pad + size - size * frac + 4, f"{v:,.0f}", anchor="end", cls="tick"))
    for x, y, group in points:
        cx, cy = left + size * x / top, pad + size - size * y / top
        color = colors.get(group, "#777")
        tip = f"{group}: estimated {x:,.0f}, billed {y:,.0f}"
        parts.append(
            f'<circle class="pt" cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}" fill-opacity="0.75" '
            f'data-x="{x:g}" data-y="{y:g}" data-value="{y:g}"><title>{escape(tip)}</title></circle>'
        )
    parts.append(_text(left + size / 2, height - 6, xlabel, anchor="middle", cls="axis"))
    parts.append(
        f'<text class="axis" x="14" y="{pad + size / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {pad + size / 2})">{escape(ylabel)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def timeline(
    chart: str,
    minutes: Sequence[tuple[int, int, int]],
    limit: int | None,
    color: str,
    *,
    width: int = 640,
    height: int = 240,
    title: str,
) -> str:
    """Tokens per minute as columns, with the deployment's limit as a dashed line when known."""
    left, bottom, top_pad = 72, 40, 14
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    span = (minutes[-1][0] + 1) if minutes else 1
    top = max([t for _, t, _ in minutes] + ([limit] if limit else []), default=0)
    parts = [_open(chart, width, height, title), _y_axis(left, top_pad, plot_h, top, lambda v: f"{v:,.0f}")]
    step = plot_w / span
    for minute, tokens, rows in minutes:
        h = _length(tokens, top, plot_h)
        tip = f"minute {minute + 1}: {tokens:,} tokens, {rows:,} rows"
        x = left + minute * step + 0.5
        parts.append(_rect(x, top_pad + plot_h - h, max(step - 1, 1), h, color, tokens, tip, "bar"))
    if limit:
        y = top_pad + plot_h - _length(limit, top, plot_h)
        parts.append(
            f'<line class="limit" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="#c0392b" stroke-dasharray="6 4" data-value="{limit}"/>'
        )
        parts.append(_text(left + plot_w, y - 4, f"limit {limit:,} TPM", anchor="end", cls="val"))
    for minute in sorted({0, span // 2, span - 1}):
        parts.append(
            _text(
                left + minute * step + step / 2, top_pad + plot_h + 16, f"{minute + 1:,}", anchor="middle", cls="tick"
            )
        )
    parts.append(_text(left + plot_w / 2, height - 6, "minute of the run", anchor="middle", cls="axis"))
    parts.append(_axis_line(left, top_pad + plot_h, left + plot_w, top_pad + plot_h))
    parts.append("</svg>")
    return "".join(parts)


# --- pieces -----------------------------------------------------------------------------------


def _open(chart: str, width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(chart)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
    )


def _length(value: float, top: float, room: float) -> float:
    if value <= 0 or top <= 0:
        return 0.0
    return max(room * value / top, 1.0)


def _rect(x: float, y: float, w: float, h: float, color: str, value: float, tip: str, cls: str) -> str:
    return (
        f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}" '
        f'data-value="{value:g}"><title>{escape(tip)}</title></rect>'
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "") -> str:
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'


def _legend(series: Sequence[Series], y: int) -> str:
    out, x = [], 0
    for s in series:
        out.append(f'<rect class="key" x="{x}" y="{y + 3}" width="12" height="12" fill="{s.color}"/>')
        out.append(_text(x + 17, y + 13, s.name, cls="legend"))
        x += 24 + 7 * len(s.name)
    return "".join(out)


def _y_axis(left: int, top_pad: int, plot_h: int, top: float, fmt: Callable[[float], str]) -> str:
    out = [_axis_line(left, top_pad, left, top_pad + plot_h)]
    for frac in (0.0, 0.5, 1.0) if top > 0 else (0.0,):
        y = top_pad + plot_h - plot_h * frac
        out.append(_text(left - 6, y + 4, fmt(top * frac), anchor="end", cls="tick"))
        if frac:
            out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + 4}" y2="{y:.1f}" stroke="#bbb"/>')
    return "".join(out)


def _axis_line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="axisline" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#888"/>'
