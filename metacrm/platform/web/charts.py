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


def line(spec: dict) -> Markup:
    """A line per series over the categories (periods, in order)."""
    categories, series = spec["categories"], spec["series"]
    fmt = spec.get("format", "count")
    top = _nice_max(max((float(v or 0) for s in series for v in s["values"]), default=0))
    height, base, left, right = 220, 180, 40, 12
    step = (WIDTH - left - right) / max(len(categories) - 1, 1)
    parts = [(f'<svg class="chart chart-line" viewBox="0 0 {WIDTH} {height}" role="img" '
              f'aria-label="{escape(spec.get("title", ""))}" xmlns="http://www.w3.org/2000/svg">')]
    for tick in (0, 0.5, 1.0):
        y = base - (base - 16) * tick
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(short_number(top * tick))}</text>')
    every = max(1, len(categories) // 6)
    for i, category in enumerate(categories):
        if i % every == 0:
            parts.append(f'<text class="cat" x="{left + step * i:.1f}" y="{base + 16}" text-anchor="middle">'
                         f'{escape(_trim(str(category), 10))}</text>')
    for k, s in enumerate(series):
        points = [(left + step * i, base - (base - 16) * float(v or 0) / top) for i, v in enumerate(s["values"])]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline class="line series-{k % SERIES_COLOURS}" points="{path}"/>')
        for i, (x, y) in enumerate(points):
            title = escape(f'{categories[i]} · {s["label"]}: {number_text(s["values"][i] or 0, fmt)}')
            parts.append(f'<circle class="dot series-{k % SERIES_COLOURS}" cx="{x:.1f}" cy="{y:.1f}" r="3.5">'
                         f'<title>{title}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def pie(spec: dict) -> Markup:
    """A ring of the first series' shares, one slice per category (a legend names them)."""
    import math

    categories, values = spec["categories"], [max(float(v or 0), 0) for v in spec["series"][0]["values"]]
    fmt = spec.get("format", "count")
    total = sum(values) or 1.0
    size, radius, hole = 220, 100, 56
    cx = cy = size / 2
    parts = [(f'<svg class="chart chart-pie" viewBox="0 0 {size} {size}" role="img" '
              f'aria-label="{escape(spec.get("title", ""))}" xmlns="http://www.w3.org/2000/svg">')]
    angle = -math.pi / 2
    for i, value in enumerate(values):
        if value <= 0:
            continue
        sweep = 2 * math.pi * value / total
        title = escape(f"{categories[i]}: {number_text(spec['series'][0]['values'][i], fmt)} "
                       f"({value / total:.0%})")
        cls = f"slice series-{i % SERIES_COLOURS}"
        if sweep >= 2 * math.pi - 1e-9:
            parts.append(f'<circle class="{cls}" cx="{cx}" cy="{cy}" r="{radius}"><title>{title}</title></circle>')
        else:
            x1, y1 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
            x2, y2 = cx + radius * math.cos(angle + sweep), cy + radius * math.sin(angle + sweep)
            large = 1 if sweep > math.pi else 0
            parts.append(f'<path class="{cls}" d="M{cx},{cy} L{x1:.2f},{y1:.2f} A{radius},{radius} 0 {large} 1 '
                         f'{x2:.2f},{y2:.2f} Z"><title>{title}</title></path>')
        angle += sweep
    parts.append(f'<circle class="pie-hole" cx="{cx}" cy="{cy}" r="{hole}"/>')
    parts.append(f'<text class="val pie-total" x="{cx}" y="{cy + 5}" text-anchor="middle">'
                 f'{escape(short_number(sum(values)))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def funnel(spec: dict) -> Markup:
    """Centred bars narrowing down the categories in order (stages), each with its value."""
    categories, values = spec["categories"], spec["series"][0]["values"]
    top = max((float(v or 0) for v in values), default=0) or 1.0
    row_h, bar_h, label_w = 30, 22, 118
    plot_w = WIDTH - label_w - 8
    height = row_h * len(categories) + 8
    parts = [(f'<svg class="chart chart-funnel" viewBox="0 0 {WIDTH} {height}" role="img" '
              f'aria-label="{escape(spec.get("title", ""))}" xmlns="http://www.w3.org/2000/svg">')]
    links = spec.get("links") or [None] * len(categories)
    for i, category in enumerate(categories):
        y = i * row_h + 4
        w = max(plot_w * float(values[i] or 0) / top, 2.0)
        x = label_w + (plot_w - w) / 2
        label = (f'<text class="cat" x="{label_w - 8}" y="{y + bar_h / 2 + 4:.1f}" text-anchor="end">'
                 f'{escape(_trim(str(category), 17))}</text>')
        parts.append(f'<a href="{escape(links[i])}">{label}</a>' if links[i] else label)
        parts.append(f'<rect class="bar series-{i % SERIES_COLOURS}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                     f'height="{bar_h}" rx="3"><title>{escape(category)}: '
                     f'{escape(number_text(values[i] or 0, spec.get("format", "count")))}</title></rect>')
        parts.append(f'<text class="val funnel-val" x="{label_w + plot_w / 2:.1f}" y="{y + bar_h / 2 + 4:.1f}" '
                     f'text-anchor="middle">{escape(short_number(values[i] or 0))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def number(spec: dict) -> Markup:
    """One big figure (the total of the first series, or spec["value"])."""
    value = spec.get("value")
    if value is None:
        value = sum((Decimal(str(v or 0)) for v in spec["series"][0]["values"]), Decimal(0)) if spec.get(
            "series") else 0
    return Markup(f'<p class="chart-number" role="img" aria-label="{escape(spec.get("title", ""))}">'
                  f'{escape(number_text(value, spec.get("format", "count")))}</p>')


RENDERERS = {"bars": bars, "columns": columns, "line": line, "pie": pie, "funnel": funnel, "number": number}


def render(spec: dict) -> Markup:
    renderer = RENDERERS.get(spec.get("type", "bars"))
    return renderer(spec) if renderer else Markup("")
