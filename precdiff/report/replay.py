"""Console rendering of ``precdiff replay`` results, and their JSON document (docs/replay.md).

Reads :class:`precdiff.replay.results.ReplayResult`; never recomputes a number.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from precdiff._version import __version__
from precdiff.replay.results import AS_EXPECTED, ReplayResult
from precdiff.report.json_report import SCHEMA_VERSION
from precdiff.report.terminal import make_console

__all__ = ["print_replay", "replay_to_json"]


def replay_to_json(result: ReplayResult) -> dict[str, Any]:
    """The JSON document of ``precdiff replay --json``."""
    return {"schema_version": SCHEMA_VERSION, "precdiff_version": __version__, **result.to_dict()}


def print_replay(result: ReplayResult, console: Console | None = None) -> None:
    """Verdict line, then the three errors and what was replayed where."""
    console = console or make_console()
    style = "bold green" if result.status == AS_EXPECTED else "bold red"
    lines = [
        f"[{style}]{result.status.upper()}[/] {escape(result.message)}",
        f"replayed {escape(result.call)} ({result.module_class}) from {escape(result.run)}: "
        f"{len(result.inputs)} captured inputs, captured in {result.captured_dtype}",
        f"captured output vs float64 replay:        rel-L2 {result.captured_vs_reference:.3e} "
        f"({result.ratio:.3g}× the {result.expected:.2e} its dtype explains)",
        f"{result.device} {result.dtype} replay vs float64 replay: rel-L2 {result.here_vs_reference:.3e} "
        f"(kernels {result.kernels})",
        f"captured output vs {result.device} replay:   rel-L2 {result.captured_vs_here:.3e}"
        + (" (bitwise identical)" if result.reproduced_bitwise else ""),
    ]
    if result.repro is not None:
        lines.append(f"reproducer: {escape(result.repro)}/repro.py (python repro.py --device …)")
    console.print(Panel("\n".join(lines), title="precdiff replay", expand=False))
