"""The layer × token error view and the massive-activation tokens, for the console.

Compact: one row per stage, one glyph per token position (positions grouped by their largest error
when the prompt is wider than :data:`MAX_COLUMNS`), log scale over :data:`DECADES` decades below the
largest per-token error of the comparison. The JSON report holds the full matrix (``token_errors``).
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape

from precdiff.compare.results import Comparison

GLYPHS = " ▁▂▃▄▅▆▇█"
MAX_COLUMNS = 64
DECADES = 4.0


def _glyph(value: float, largest: float) -> str:
    if math.isnan(value):
        return "!"
    if value <= 0.0 or largest <= 0.0:
        return "·"
    level = 1.0 + math.log10(value / largest) / DECADES  # 1 at the largest, 0 at DECADES below
    return GLYPHS[max(1, min(len(GLYPHS) - 1, math.ceil(level * (len(GLYPHS) - 1))))]


def _columns(values: tuple[float, ...], width: int) -> list[float]:
    if len(values) <= width:
        return list(values)
    size = math.ceil(len(values) / width)
    groups = [values[i : i + size] for i in range(0, len(values), size)]
    return [math.nan if any(math.isnan(v) for v in g) else max(g) for g in groups]


def print_token_view(comparison: Comparison, console: Console) -> None:
    """Massive-activation tokens, then the compact layer × token rel-L2 view (if any tensor has one)."""
    for m in comparison.massive_tokens:
        text = f" {m.token_text!r}" if m.token_text is not None else ""
        console.print(
            f"[yellow]massive activation[/yellow]: position {m.position} (token id {m.token_id}{escape(text)}) "
            f"has ×{m.norm_ratio:.0f} the median token norm from {escape(m.first_stage)} on; per-token "
            "errors below keep it from hiding the other tokens' error"
        )
    rows = [(s.label, s.token_rel_l2) for s in comparison.layers if len(s.token_rel_l2) > 1]
    if not rows:
        return
    finite = [v for _, values in rows for v in values if math.isfinite(v)]
    largest = max(finite, default=0.0)
    positions = len(rows[0][1])
    group = math.ceil(positions / MAX_COLUMNS)
    massive = {m.position // group for m in comparison.massive_tokens}
    console.print(
        f"Per-token rel-L2 of each stage's output ({positions} positions"
        + (f", {group} per column" if group > 1 else "")
        + f"; log scale, █ = {largest:.2e}, ▁ = {DECADES:g} decades below, · = exact; ^ = massive activation)"
    )
    width = max(len(label) for label, _ in rows)
    for label, values in rows:
        glyphs = "".join(_glyph(v, largest) for v in _columns(values, MAX_COLUMNS))
        console.print(f"  {escape(label.ljust(width))} │{glyphs}│", highlight=False)
    marks = "".join("^" if i in massive else " " for i in range(len(_columns(rows[0][1], MAX_COLUMNS))))
    if massive:
        console.print(f"  {' ' * width}  {marks}", highlight=False)
