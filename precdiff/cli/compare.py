"""``precdiff compare A.h5 B.h5`` and ``precdiff inspect RUN.h5``."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, QUIET, command, wrote


@command("compare")
def compare_command(
    a: Path = typer.Argument(..., help="Reference capture (A), or an engine response .json/.jsonl."),
    b: Path = typer.Argument(..., help="Capture to check against A (B), or an engine response."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the full report as JSON to this file."
    ),
    html_out: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML report to this file (docs/html-report.md)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Compare even if weights, model config or input tokens differ."
    ),
    include: list[str] | None = typer.Option(
        None, "--include", help="Compare only tensors matching this regex (repeatable)."
    ),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", help="Skip tensors matching this regex (repeatable)."
    ),
    noise_floor: float | None = typer.Option(
        None, "--noise-floor", help="rel-L2 treated as rounding noise (default: per dtype pair)."
    ),
    near_tie: float | None = typer.Option(
        None, "--near-tie", help="Margin in nats under which a greedy flip is a near-tie."
    ),
    top: int | None = typer.Option(
        None, "--top", help="How many tensors to list by largest error (default 10)."
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Tokenizer dir mapping an engine's token strings to ids (default: the capture's).",
    ),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="A float64 (or float32) capture of the same tokens: say which of A and B departs from it.",
    ),
    quiet: bool = QUIET,
) -> int:
    """Compare capture B against reference A: verdict, per-layer error profile, logprobs, generation.

    Exit code 0: match or within noise; 1: diverged; 2: usage or input error.
    """
    from precdiff.compare.compare import compare
    from precdiff.compare.options import CompareOptions
    from precdiff.report.console import print_comparison
    from precdiff.report.html import write_html
    from precdiff.report.json_report import comparison_to_json
    from precdiff.report.output import check_output_path, write_json

    for path, flag in ((json_out, "--json"), (html_out, "--html")):
        if path is not None:
            check_output_path(path, inputs=(a, b, reference), flag=flag)
    options = CompareOptions.from_cli(
        force=force,
        include=tuple(include) if include else None,
        exclude=tuple(exclude) if exclude else None,
        noise_floor=noise_floor,
        near_tie_nats=near_tie,
        top=top,
        tokenizer=tokenizer,
    )
    comparison = compare(a, b, options=options, reference=reference)
    print_comparison(comparison)
    if json_out is not None:
        wrote(write_json(comparison_to_json(comparison), json_out, inputs=(a, b, reference)))
    if html_out is not None:
        wrote(write_html(comparison_to_json(comparison), html_out, inputs=(a, b, reference)))
    return EXIT_OK if comparison else EXIT_DIVERGED


@command("inspect")
def inspect_command(
    run: Path = typer.Argument(..., help="Capture file (RUN.h5, or an interrupted RUN.h5.partial)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the summary as JSON to this file."),
    show_all: bool = typer.Option(False, "--all", help="List every tensor, not only the first 40."),
) -> int:
    """Show a capture: manifest, input, generated tokens and the table of captured tensors."""
    from precdiff.report.console import print_inspect
    from precdiff.report.json_report import summary_to_json
    from precdiff.report.output import check_output_path, write_json
    from precdiff.store.summary import summarize_capture

    if json_out is not None:
        check_output_path(json_out, inputs=(run,))
    summary = summarize_capture(run)
    print_inspect(summary, limit=None if show_all else 40)
    if json_out is not None:
        wrote(write_json(summary_to_json(summary), json_out, inputs=(run,)))
    return EXIT_OK
