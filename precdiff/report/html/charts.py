"""Server-side SVG charts: a log-scale line chart and a colour-bucketed heatmap.

Why SVG written here rather than a charting library: the page must open offline from ``file://``, print,
and add no dependency that fetches assets. SVG is vector (prints sharp), needs no script to appear, and
the browser test can count its elements. Hover values come from ``report.js``, which reads the exact
numbers from ``data-*`` attributes; nothing here is computed beyond placing given numbers on axes.

Sizes matter (an 8B-model compare must stay under 2 MB), so a series is one ``<path>`` (no element per
point) and a heatmap is one ``<path>`` per colour bucket (one ``M…z`` sub-path per cell).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from precdiff.report.html.page import esc, exact

# Plot area inside the SVG (pixels). Wide charts adapt their width to the number of x positions.
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 18, 120
_HEIGHT = 360


@dataclass(frozen=True)
class Series:
    """One line of a chart. ``None`` values are gaps; values ≤ 0 sit on the bottom edge of a log axis."""

    name: str
    values: Sequence[float | None]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _decades(values: Sequence[float]) -> tuple[int, int]:
    """The decade range [lo, hi] (powers of ten) that holds every positive finite value."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return -1, 0
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    return lo, max(hi, lo + 1)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def line_chart(
    *,
    chart_id: str,
    labels: Sequence[str],
    series: Sequence[Series],
    y_title: str,
    band: Sequence[float | None] | None = None,
    band_title: str = "noise floor",
    mark: int | None = None,
    mark_title: str = "",
) -> str:
    """A log-scale line chart over categorical x positions (layers, positions, tensors).

    Args:
        chart_id: element id (the browser test looks charts up by it).
        labels: one label per x position, shown under the axis (thinned when crowded) and on hover.
        series: the lines; each must have ``len(labels)`` values.
        y_title: the y axis title.
        band: per-position upper edge of a shaded band drawn from the bottom (the noise floor).
        mark: x position to mark with a vertical line (the jump), ``mark_title`` its label.

    Returns:
        The ``<figure>`` holding the SVG, with the data the hover script needs in ``data-*`` attributes.
    """
    n = len(labels)
    if n == 0:
        return ""
    everything = [v for s in series for v in s.values if _finite(v)] + [v for v in (band or []) if _finite(v)]
    lo, hi = _decades([float(v) for v in everything if v is not None])
    step = max(2.0, min(120.0, 1000.0 / max(n, 1)))
    width = _LEFT + _RIGHT + step * max(n - 1, 1)
    bottom = _HEIGHT - _BOTTOM

    def x(i: int) -> float:
        return _LEFT + step * i if n > 1 else _LEFT + step / 2

    def y(value: float) -> float:
        position = (math.log10(value) - lo) / (hi - lo) if value > 0 else 0.0
        return bottom - max(0.0, min(1.0, position)) * (bottom - _TOP)

    parts = [
        f'<svg class="chart line" id="{esc(chart_id)}" viewBox="0 0 {_num(width)} {_HEIGHT}" '
        f'width="{_num(width)}" height="{_HEIGHT}" role="img" aria-label="{esc(y_title)}" '
        f'data-n="{n}" data-x0="{_LEFT}" data-dx="{_num(step)}" data-top="{_TOP}" data-bottom="{bottom}">'
    ]
    for decade in range(lo, hi + 1):
        gy = y(10.0**decade)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_num(width - _RIGHT)}" y1="{_num(gy)}" y2="{_num(gy)}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{_num(gy + 4)}" text-anchor="end">1e{decade}</text>'
        )
    if band is not None:
        edge = [(x(i), y(v)) for i, v in enumerate(band) if _finite(v) and v is not None]
        if edge:
            pts = " ".join(f"{_num(px)},{_num(py)}" for px, py in edge)
            first, last = edge[0][0], edge[-1][0]
            parts.append(
                f'<polygon class="band" points="{_num(first)},{bottom} {pts} {_num(last)},{bottom}">'
                f"<title>{esc(band_title)}</title></polygon>"
            )
    # Labels at least 14 px apart, rotated; long names keep their informative end (``…mlp.act_fn``).
    label_every = max(1, math.ceil(14 / step))
    for i, label in enumerate(labels):
        if i % label_every == 0:
            shown = label if len(label) <= 24 else "…" + label[-23:]
            parts.append(
                f'<text class="xlabel" transform="translate({_num(x(i) - 3)},{bottom + 8}) rotate(65)">'
                f"{esc(shown)}</text>"
            )
    if mark is not None and 0 <= mark < n:
        mx = _num(x(mark))
        parts.append(
            f'<line class="mark" x1="{mx}" x2="{mx}" y1="{_TOP}" y2="{bottom}"/>'
            f'<text class="marklabel" x="{mx}" y="{_TOP - 4}" text-anchor="middle">{esc(mark_title)}</text>'
        )
    for k, s in enumerate(series):
        d, pen_down = [], False
        for i, v in enumerate(s.values):
            if v is None or math.isnan(v):
                pen_down = False
                continue
            if pen_down:
                d.append(f"L{_num(x(i))} {_num(y(v))}")
            else:
                # A point with no neighbour (gaps on both sides) would draw nothing: a 6 px tick shows it.
                alone = (
                    i + 1 >= len(s.values) or s.values[i + 1] is None or math.isnan(s.values[i + 1] or 0.0)
                )
                d.append(f"M{_num(x(i) - 3 if alone else x(i))} {_num(y(v))}" + ("h6" if alone else ""))
            pen_down = True
        values = "[" + ",".join("null" if v is None else json.dumps(exact(v)) for v in s.values) + "]"
        parts.append(
            f'<g class="series s{k}" data-name="{esc(s.name)}" data-values="{esc(values)}">'
            f'<path d="{" ".join(d)}"/></g>'
        )
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{bottom}"/>')
    parts.append(
        f'<text class="ytitle" transform="translate(14,{_TOP + (bottom - _TOP) // 2}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_title)}</text></svg>'
    )
    legend = "".join(f'<span class="key s{k}">{esc(s.name)}</span>' for k, s in enumerate(series))
    if band is not None:
        legend += f'<span class="key band">{esc(band_title)}</span>'
    labels_json = esc(json.dumps(list(labels), ensure_ascii=False))
    return (
        f'<figure class="chartbox" data-labels="{labels_json}">{"".join(parts)}'
        f'<figcaption class="legend">{legend}</figcaption></figure>'
    )


# Heatmap colours: cool (below the pivot, e.g. the noise floor) to warm (above), in quarter decades.
_DECADES_BELOW, _DECADES_ABOVE, _PER_DECADE = 3, 3, 4
_COOL = ((0xF1, 0xF4, 0xF8), (0x7F, 0xA3, 0xC8))
_WARM = ((0xFE, 0xE0, 0x8B), (0xB2, 0x18, 0x2B))
EXACT_COLOUR, NONFINITE_COLOUR, MISSING_COLOUR = "#ffffff", "#3f007d", "#e5e5e5"


def _mix(pair: tuple[tuple[int, int, int], tuple[int, int, int]], t: float) -> str:
    a, b = pair
    return "#" + "".join(f"{round(a[i] + (b[i] - a[i]) * t):02x}" for i in range(3))


@functools.cache
def bucket_colours() -> tuple[str, ...]:
    """Colour of each bucket, lowest first: ``_DECADES_BELOW`` cool decades, then warm ones."""
    below, above = _DECADES_BELOW * _PER_DECADE, _DECADES_ABOVE * _PER_DECADE
    cool = [_mix(_COOL, i / max(below - 1, 1)) for i in range(below)]
    warm = [_mix(_WARM, i / max(above - 1, 1)) for i in range(above)]
    return tuple(cool + warm)


def bucket(value: float, pivot: float) -> str:
    """The fill colour of one cell: by ``log10(value / pivot)``; exact zero and non-finite get their own."""
    if not math.isfinite(value):
        return NONFINITE_COLOUR
    if value <= 0:
        return EXACT_COLOUR
    colours = bucket_colours()
    ratio = math.log10(value / pivot) if pivot > 0 else _DECADES_ABOVE
    index = math.floor((ratio + _DECADES_BELOW) * _PER_DECADE)
    return colours[max(0, min(len(colours) - 1, index))]


def heatmap(
    *,
    chart_id: str,
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float | None]],
    pivot: float,
    pivot_title: str,
    value_title: str,
) -> str:
    """A rows × cols heatmap coloured by ``log10(value / pivot)``; ``None`` cells are left grey.

    Args:
        chart_id: element id.
        rows, cols: labels (layers; module kinds or token texts).
        values: ``[len(rows)][len(cols)]`` numbers (rel-L2, ULPs…) or None where nothing was measured.
        pivot: the value where colours turn from cool to warm (the noise floor).
        pivot_title, value_title: legend wording.
    """
    if not rows or not cols:
        return ""
    cw = max(3.0, min(48.0, 1000.0 / len(cols)))
    ch = max(4.0, min(18.0, 560.0 / len(rows)))
    left = min(180, 8 + 7 * max(len(r) for r in rows))
    top = 130 if len(cols) <= 120 else 16
    width, height = left + cw * len(cols) + 8, top + ch * len(rows) + 8
    by_colour: dict[str, list[str]] = {}
    cells = 0
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            if value is None:
                continue
            cells += 1
            by_colour.setdefault(bucket(value, pivot), []).append(
                f"M{_num(left + c * cw)} {_num(top + r * ch)}h{_num(cw)}v{_num(ch)}h-{_num(cw)}z"
            )
    grid = "[" + ",".join("[" + ",".join(_cell(v) for v in row) + "]" for row in values) + "]"
    parts = [
        f'<svg class="chart heatmap" id="{esc(chart_id)}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'width="{_num(width)}" height="{_num(height)}" role="img" aria-label="{esc(value_title)}" '
        f'data-x0="{left}" data-y0="{top}" data-cw="{_num(cw)}" data-ch="{_num(ch)}" data-cells="{cells}" '
        f'data-rows="{esc(json.dumps(list(rows), ensure_ascii=False))}" '
        f'data-cols="{esc(json.dumps(list(cols), ensure_ascii=False))}" data-values="{esc(grid)}" '
        f'data-title="{esc(value_title)}">',
        f'<rect x="{left}" y="{top}" width="{_num(cw * len(cols))}" height="{_num(ch * len(rows))}" '
        f'fill="{MISSING_COLOUR}"/>',
    ]
    parts += [f'<path class="cells" fill="{colour}" d="{"".join(d)}"/>' for colour, d in by_colour.items()]
    if ch >= 8:
        parts += [
            f'<text class="rlabel" x="{left - 4}" y="{_num(top + r * ch + ch * 0.75)}" '
            f'text-anchor="end">{esc(label[:26])}</text>'
            for r, label in enumerate(rows)
        ]
    if top > 16:
        parts += [
            f'<text class="clabel" transform="translate({_num(left + c * cw + cw * 0.6)},{top - 4}) '
            f'rotate(-55)">{esc(label if len(label) <= 22 else "…" + label[-21:])}</text>'
            for c, label in enumerate(cols)
            if cw >= 7 or c % math.ceil(7 / cw) == 0
        ]
    parts.append("</svg>")
    return f'<figure class="chartbox">{"".join(parts)}{_heat_legend(pivot, pivot_title)}</figure>'


def _cell(value: float | None) -> str:
    if value is None:
        return "null"
    return json.dumps(exact(value))


def _heat_legend(pivot: float, pivot_title: str) -> str:
    colours = bucket_colours()
    swatches = "".join(f'<i style="background:{c}"></i>' for c in colours)
    low = pivot * 10.0**-_DECADES_BELOW
    high = pivot * 10.0**_DECADES_ABOVE
    return (
        f'<figcaption class="legend heatlegend"><span class="key">≤ {low:.1e}</span>'
        f'<span class="ramp">{swatches}</span><span class="key">≥ {high:.1e}</span>'
        f'<span class="key">warm above {esc(pivot_title)} {pivot:.2e}</span>'
        f'<span class="key"><i style="background:{EXACT_COLOUR}"></i>exact</span>'
        f'<span class="key"><i style="background:{NONFINITE_COLOUR}"></i>NaN/Inf</span>'
        f'<span class="key"><i style="background:{MISSING_COLOUR}"></i>not measured</span></figcaption>'
    )


def bar_chart(*, chart_id: str, labels: Sequence[str], values: Sequence[float], x_title: str) -> str:
    """Horizontal bars on a linear axis from 0 (counts); one ``<rect class="bar">`` per label."""
    if not labels:
        return ""
    top_value = max([v for v in values if math.isfinite(v)] + [1.0])
    left, bar, gap, span = 220, 18, 6, 600
    height = _TOP + len(labels) * (bar + gap) + 24
    parts = [
        f'<svg class="chart bars" id="{esc(chart_id)}" viewBox="0 0 {left + span + 80} {height}" '
        f'width="{left + span + 80}" height="{height}" role="img" aria-label="{esc(x_title)}">'
    ]
    for i, (label, value) in enumerate(zip(labels, values)):
        y0 = _TOP + i * (bar + gap)
        length = span * max(0.0, value) / top_value if math.isfinite(value) else 0.0
        parts.append(
            f'<text class="rlabel" x="{left - 6}" y="{y0 + bar * 0.75}" text-anchor="end">{esc(label[:34])}</text>'
            f'<rect class="bar s{i % 6}" x="{left}" y="{y0}" width="{_num(max(length, 1.0))}" height="{bar}" '
            f'data-v="{esc(json.dumps(exact(value)))}" data-tip="{esc(label)}"/>'
            f'<text class="tick" x="{_num(left + length + 4)}" y="{y0 + bar * 0.75}">{esc(f"{value:g}")}</text>'
        )
    parts.append(f'<text class="tick" x="{left}" y="{height - 6}">{esc(x_title)}</text></svg>')
    return f'<figure class="chartbox">{"".join(parts)}</figure>'
