"""``precdiff report RESULT.json --html FILE``: the HTML page of a saved ``--json`` report."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_OK, command


@command("report")
def report_command(
    result: Path = typer.Argument(
        ..., help="A JSON report written by compare, invariance, determinism or tokens --json."
    ),
    html_out: Path = typer.Option(..., "--html", help="The self-contained HTML file to write."),
) -> int:
    """Render a saved JSON report as one self-contained HTML file (opens offline, prints).

    Exit code 0: written; 2: the file is not a precdiff report, or the output path is unusable.
    """
    from precdiff.report.html import render_file

    written = render_file(result, html_out)
    typer.echo(f"wrote {written}")
    return EXIT_OK
