"""Terminal and JSON rendering of ``precdiff evalstat`` (schema: ``docs/evalstat.md``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from precdiff._version import __version__
from precdiff.evalstat.results import NO_DIFFERENCE, EvalComparison
from precdiff.report.terminal import make_console

SCHEMA_VERSION = 1


def evalstat_to_json(result: EvalComparison) -> dict[str, Any]:
    """The JSON document: ``schema_version``, ``precdiff_version``, then ``to_dict()``."""
    return {"schema_version": SCHEMA_VERSION, "precdiff_version": __version__, **result.to_dict()}


def print_evalstat(result: EvalComparison, console: Console | None = None) -> None:
    """One row per task and metric: both scores, the difference with its interval, p, verdict."""
    console = console or make_console()
    console.print(
        f"A: {escape(result.a)} ({result.format_a})\nB: {escape(result.b)} ({result.format_b})\n"
        f"paired bootstrap {result.confidence:.0%} interval ({result.resamples} resamples, seed {result.seed}); "
        f"McNemar exact test for 0/1 metrics; tolerance {result.tolerance:.1%} relative"
    )
    table = Table(show_lines=False)
    for column in (
        "task",
        "metric",
        "n",
        "A",
        "B",
        "B−A",
        f"{result.confidence:.0%} CI",
        "rel.",
        "p",
        "verdict",
    ):
        table.add_column(column, justify="left" if column in ("task", "metric", "verdict") else "right")
    for t in result.tasks:
        style = "" if t.verdict == NO_DIFFERENCE else ("red" if t.beyond_tolerance else "yellow")
        verdict = t.verdict + (" (beyond tolerance)" if t.beyond_tolerance else "")
        table.add_row(
            escape(t.task),
            escape(t.metric),
            str(t.paired),
            f"{t.score_a:.4f}",
            f"{t.score_b:.4f}",
            f"{t.difference:+.4f}",
            f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]",
            "–" if t.relative is None else f"{t.relative:+.1%}",
            "–" if t.p_value is None else f"{t.p_value:.3g}",
            f"[{style}]{verdict}[/{style}]" if style else verdict,
        )
    console.print(table)
    for t in result.tasks:
        if t.only_a or t.only_b:
            console.print(
                f"[yellow]{escape(t.task)} ({escape(t.metric)}): {t.only_a} samples only in A, {t.only_b} only in B "
                "(not compared)[/yellow]"
            )
    for side, names in (("A", result.unmatched_a), ("B", result.unmatched_b)):
        if names:
            console.print(f"[yellow]only in {side}: {escape(', '.join(names))}[/yellow]")
