"""Console rendering of a ``precdiff tokens`` result, and its JSON document. Reads, never recomputes."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from precdiff.report.terminal import make_console
from precdiff.templates.diff import make_visible
from precdiff.templates.results import RenderWindow, SideReport, TokensDiff

__all__ = ["print_result", "render_result", "write_json"]

_VERDICT_STYLE = {
    "identical": "bold green",
    "same_text_different_ids": "bold yellow",
    "different": "bold red",
}
_SEGMENT_STYLE = {"text": "", "space": "dim cyan", "special": "bold magenta"}
_OP_STYLE = {"equal": "dim", "replace": "yellow", "insert": "green", "delete": "red"}


def _where(value: int | None, unit: str) -> str:
    return "—" if value is None else f"{unit} {value}"


def _verdict_panel(result: TokensDiff) -> Panel:
    lines = Text()
    lines.append(result.verdict, style=_VERDICT_STYLE[result.verdict])
    if not result.identical:
        lines.append(
            f"   first difference: {_where(result.first_diff_char, 'char')}, "
            f"{_where(result.first_diff_token, 'token')}"
        )
    for side in (result.a, result.b):
        n_ids = "?" if side.token_ids is None else str(len(side.token_ids))
        n_chars = "?" if side.text is None else str(len(side.text))
        lines.append(f"\n{side.label}: {side.spec}  ({side.kind}; {n_chars} chars, {n_ids} tokens)")
    for note in result.notes:
        lines.append(f"\n{note}", style="italic")
    return Panel(lines, title="precdiff tokens", expand=False)


def _sides_table(a: SideReport, b: SideReport) -> Table:
    table = Table(title="Sides", show_lines=False, expand=False)
    table.add_column("")
    table.add_column("A", overflow="fold")
    table.add_column("B", overflow="fold")

    def tok(side: SideReport) -> str:
        if side.tokenizer is None:
            return "none"
        info = side.tokenizer
        borrowed = f" (side {'B' if side.label == 'A' else 'A'}'s)" if side.tokenizer_borrowed else ""
        return f"{info.class_name}, {info.vocab_size} tokens, sha256 {info.sha256[:12]}{borrowed}"

    rows = [
        ("kind", a.kind, b.kind),
        ("text", a.text_origin, b.text_origin),
        ("ids", a.ids_origin, b.ids_origin),
        ("tokenizer", tok(a), tok(b)),
        ("add_special_tokens", str(a.add_special_tokens), str(b.add_special_tokens)),
        ("add_generation_prompt", str(a.add_generation_prompt), str(b.add_generation_prompt)),
        ("template sha256", (a.template_sha256 or "—")[:16], (b.template_sha256 or "—")[:16]),
        ("template kwargs", json.dumps(dict(a.template_kwargs)), json.dumps(dict(b.template_kwargs))),
        ("notes", "\n".join(a.notes), "\n".join(b.notes)),
    ]
    for name, left, right in rows:
        table.add_row(name, escape(left), escape(right))
    return table


def _window_text(window: RenderWindow) -> Text:
    text = Text("…" if window.start > 0 else "")
    offset = 0
    marked = False
    for segment in window.segments:
        style = _SEGMENT_STYLE[segment.kind]
        if not marked and offset + len(segment.text) > window.diff_at:
            marked = True
            if segment.kind == "special" or offset >= window.diff_at:
                text.append("▶", style="bold red")
        # underline from the first differing character on
        if offset + len(segment.text) <= window.diff_at:
            text.append(segment.shown, style=style)
        elif offset >= window.diff_at:
            text.append(segment.shown, style=f"{style} reverse".strip())
        elif segment.kind == "special":
            text.append(segment.shown, style=f"{style} reverse")
        else:
            split = window.diff_at - offset
            text.append(make_visible(segment.text[:split]), style=style)
            text.append("▶", style="bold red")
            text.append(make_visible(segment.text[split:]), style=f"{style} reverse".strip())
        offset += len(segment.text)
    if not marked:
        text.append("▶", style="bold red")  # this side ends where the other goes on
    return text


def _windows(result: TokensDiff) -> Panel | None:
    if result.window_a is None or result.window_b is None:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("A", _window_text(result.window_a))
    grid.add_row("B", _window_text(result.window_b))
    if not result.window_a.segments or not result.window_b.segments:
        grid.add_row("", Text("(one side ends before the difference)", style="italic"))
    title = f"Renders around char {result.first_diff_char} (▶ first difference; · space, ↵ newline, → tab)"
    return Panel(grid, title=title, expand=False)


def _alignment(result: TokensDiff) -> Table | None:
    if not result.alignment:
        return None
    table = Table(title=f"Token alignment around token {result.first_diff_token}", expand=False)
    for column in ("op", "A#", "A id", "A piece", "B#", "B id", "B piece"):
        table.add_column(column, justify="right" if column.endswith(("#", "id")) else "left")

    def cell(value: object) -> str:
        return "" if value is None else escape(str(value))

    for row in result.alignment:
        table.add_row(
            row.op,
            cell(row.a_index),
            cell(row.a_id),
            cell(row.a_piece),
            cell(row.b_index),
            cell(row.b_id),
            cell(row.b_piece),
            style=_OP_STYLE[row.op],
        )
    return table


def _pitfalls(result: TokensDiff) -> Panel | None:
    if not result.pitfalls:
        return None
    body = Text()
    for i, pitfall in enumerate(result.pitfalls):
        if i:
            body.append("\n")
        side = f" [{pitfall.side}]" if pitfall.side else ""
        body.append(f"• {pitfall.title}", style="bold yellow")
        body.append(f" ({pitfall.name}){side}\n  {pitfall.evidence}\n")
        body.append(f"  fix: {pitfall.hint}", style="dim")
    return Panel(body, title="Pitfalls recognised", expand=False)


def render_result(result: TokensDiff) -> Group:
    """The whole report as one rich renderable (verdict, sides, renders, alignment, pitfalls)."""
    parts: list[RenderableType] = [_verdict_panel(result), _sides_table(result.a, result.b)]
    for part in (_windows(result), _alignment(result), _pitfalls(result)):
        if part is not None:
            parts.append(part)
    return Group(*parts)


def print_result(result: TokensDiff, console: Console | None = None) -> None:
    """Print the report on ``console`` (stdout by default)."""
    (console or make_console()).print(render_result(result))


def write_json(result: TokensDiff, path: str | Path) -> Path:
    """Write ``result.to_dict()`` (schema in docs/tokens-json.md) to ``path``; ``-`` is not special."""
    from precdiff.report.output import write_json as write_report

    return write_report(result.to_dict(), path)
