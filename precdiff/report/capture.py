"""Console rendering of a finished capture."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from precdiff.capture import CaptureResult
from precdiff.report.terminal import make_console


def print_capture_result(result: CaptureResult, console: Console | None = None) -> None:
    """One short block: file, tensors, tokens in and out."""
    console = console or make_console()
    console.print(
        f"[bold green]captured[/bold green] {escape(str(result.path))}: {result.tensor_count} tensors, "
        f"{len(result.input_ids)} input tokens, {len(result.generated_ids)} generated "
        f"({result.device}, {result.dtype})"
    )
    if result.skipped:
        console.print(
            f"  [yellow]not stored[/yellow] ({len(result.skipped)}): " + escape(", ".join(result.skipped))
        )
    if result.generated_text is not None:
        console.print(f"  generated: {escape(repr(result.generated_text))}")
