"""Charts as inline SVG, drawn on the server from a chart spec (no JavaScript library, no
CDN, nothing to download: the product works offline, and the CSP forbids inline styles,
so colours come from CSS classes `.series-N`).

A chart spec is a dict:
    {"type": "bars" | "columns" | "stats",
     "categories": [str, ...],
     "series": [{"label": str, "values": [number, ...]}, ...],   # several = stacked
     "format": "count" | "money",
     "links": [url or None per category] (optional)}
"""

from __future__ import annotations

from decimal import Decimal

from babel import numbers as babel_numbers
from markupsafe import Markup, escape

from ..i18n import babel_locale, format_number
from .i18n import current_locale

SERIES_COLOURS = 8
WIDTH = 420


def number_text(value: Decimal | float, fmt: str = "count") -> str:
    """A value as the reader's locale writes it: money with two decimals, counts without."""
    if fmt == "money":
        return format_number(Decimal(str(value)).quantize(Decimal("0.01")), current_locale(), 2)
    number = Decimal(str(value))
    return format_number(number, current_locale(), 0 if number == number.to_integral_value() else None)


def short_number(value: Decimal | float) -> str:
    """12 500 000 -> 12.5M (1250万 in Chinese): axis and bar labels stay short."""
    number = Decimal(str(value))
    if abs(number) < 1000:
        return number_text(number)
    return babel_numbers.format_compact_decimal(number, format_type="short", fraction_digits=1,
                                                locale=babel_locale(current_locale()))


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bars(spec: dict) -> Markup:
    """Horizontal bars, one row per category, stacked when there are several series."""
    categories, series = spec["categories"], spec["series"]
    fmt = spec.get("format", "count")
    totals = [sum(float(s["values"][i] or 0) for s in series) for i in range(len(categories))]
    top = _nice_max(max(totals, default=0))
    label_w, value_w, row_h, bar_h = 118, 58, 30, 18
    plot_w = WIDTH - label_w - value_w
    height = row_h * len(categories) + 8
    parts = [(f'<svg class="chart chart-bars" viewBox="0 0 {WIDTH} {height}" role="img" '
              f'aria-label="{escape(spec.get("title", ""))}" xmlns="http://www.w3.org/2000/svg">')]
    for tick in (0.25, 0.5, 0.75, 1.0):
        x = label_w + plot_w * tick
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 8}"/>')
    links = spec.get("links") or [None] * len(categories)
    for i, category in enumerate(categories):
        y = i * row_h + 4
        text = escape(_trim(str(category), 17))
        label = f'<text class="cat" x="{label_w - 8}" y="{y + bar_h / 2 + 4:.1f}" text-anchor="end">{text}</text>'
        if links[i]:
            label = f'<a href="{escape(links[i])}">{label}</a>'
        parts.append(label)
        parts.append(f'<rect class="track" x="{label_w}" y="{y}" width="{plot_w}" height="{bar_h}" rx="3"/>')
        x = float(label_w)
        for k, s in enumerate(series):
            value = float(s["values"][i] or 0)
            if value <= 0:
                continue
            w = plot_w * value / top
            title = escape(f'{category} · {s["label"]}: {number_text(s["values"][i], fmt)}')
            parts.append(f'<rect class="bar series-{k % SERIES_COLOURS}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                         f'height="{bar_h}" rx="3"><title>{title}</title></rect>')
            x += w
        total = sum((s["values"][i] or 0) for s in series)
        parts.append(f'<text class="val" x="{WIDTH - value_w + 6}" y="{y + bar_h / 2 + 4:.1f}">'
                     f'{escape(short_number(total))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(spec: dict) -> Markup:
    """Vertical columns, one per category (a single series)."""
    categories, values = spec["categories"], spec["series"][0]["values"]
    fmt = spec.get("format", "count")
    top = _nice_max(max((float(v or 0) for v in values), default=0))
    height, base, left = 220, 180, 34
    slot = (WIDTH - left) / max(len(categories), 1)
    bar_w = min(44.0, slot * 0.62)
    parts = [(f'<svg class="chart chart-columns" viewBox="0 0 {WIDTH} {height}" role="img" '
              f'aria-label="{escape(spec.get("title", ""))}" xmlns="http://www.w3.org/2000/svg">')]
    for tick in (0, 0.5, 1.0):
        y = base - (base - 16) * tick
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(short_number(top * tick))}</text>')
    for i, category in enumerate(categories):
        value = float(values[i] or 0)
        h = (base - 16) * value / top
        x = left + slot * i + (slot - bar_w) / 2
        title = escape(f"{category}: {number_text(values[i], fmt)}")
        parts.append(f'<rect class="bar series-{i % SERIES_COLOURS}" x="{x:.1f}" y="{base - h:.1f}" '
                     f'width="{bar_w:.1f}" height="{max(h, 0):.1f}" rx="3"><title>{title}</title></rect>')
        parts.append(f'<text class="val" x="{x + bar_w / 2:.1f}" y="{base - h - 5:.1f}" text-anchor="middle">'
                     f'{escape(short_number(values[i] or 0))}</text>')
        parts.append(f'<text class="cat" x="{x + bar_w / 2:.1f}" y="{base + 16}" text-anchor="middle">'
                     f'{escape(_trim(str(category), max(4, int(slot / 7))))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


RENDERERS = {"bars": bars, "columns": columns}


def render(spec: dict) -> Markup:
    renderer = RENDERERS.get(spec.get("type", "bars"))
    return renderer(spec) if renderer else Markup("")
