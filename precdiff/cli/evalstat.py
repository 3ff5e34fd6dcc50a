"""``precdiff evalstat A B``: are two eval runs' scores significantly different?"""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, command, wrote


@command("evalstat")
def evalstat_command(
    a: Path = typer.Argument(
        ..., help="Run A: per-sample results file or directory (lm-eval, evalscope, OpenCompass)."
    ),
    b: Path = typer.Argument(..., help="Run B, same forms."),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Relative difference accepted, as a fraction (default 0.03 = 3 %)."
    ),
    confidence: float | None = typer.Option(
        None, "--confidence", help="Interval level and 1 − test level (default 0.95)."
    ),
    resamples: int | None = typer.Option(
        None, "--resamples", help="Paired bootstrap resamples (default 10000)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed (default 0)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the result as JSON to this file."),
) -> int:
    """Per task: both scores, B−A with a paired bootstrap CI, McNemar's exact test, verdict.

    Exit code 0: no task differs significantly beyond the tolerance; 1: one does; 2: input error.
    """
    from precdiff.evalstat import EvalstatOptions, evalstat
    from precdiff.report.evalstat import evalstat_to_json, print_evalstat
    from precdiff.report.output import check_output_path, write_json

    options = EvalstatOptions.from_cli(
        tolerance=tolerance, confidence=confidence, resamples=resamples, seed=seed
    )
    if json_out is not None:
        check_output_path(json_out, inputs=(a, b))
    result = evalstat(a, b, options=options)
    print_evalstat(result)
    if json_out is not None:
        wrote(write_json(evalstat_to_json(result), json_out, inputs=(a, b)))
    return EXIT_OK if result else EXIT_DIVERGED
