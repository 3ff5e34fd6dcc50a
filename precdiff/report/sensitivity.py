"""Console rendering of ``precdiff sensitivity`` results, its JSON files and its progress bar.

Reads :class:`~precdiff.sensitivity.results.SensitivityReport`; never recomputes a number.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from precdiff.errors import InputError
from precdiff.report.output import write_json as write_report
from precdiff.report.terminal import make_console
from precdiff.sensitivity.results import LayerSensitivity, SensitivityReport

__all__ = ["check_outputs", "print_report", "progress_bar", "write_json"]

# Layer rows shown: every flagged layer, then the most sensitive others by combined rank, up to this many.
MAX_ROWS = 40
_STAGES = {
    "ranges": "pass 1/2: output ranges",
    "measure": "pass 2/2: float vs quantized",
    "verify": "verify: float, quantized, mixed",
}


def _num(value: float, spec: str = ".3g") -> str:
    if math.isnan(value):
        return "–"
    return "inf" if math.isinf(value) else format(value, spec)


def _layer_row(layer: LayerSensitivity, thresholds: dict[str, float]) -> list[str]:
    def mark(value: float, key: str, spec: str = ".3g") -> str:
        text = _num(value, spec)
        return f"[red]{text}[/red]" if key in layer.reasons else text

    return [
        escape(layer.name),
        "[bold red]bf16[/bold red]" if layer.flagged else "quant",
        mark(layer.kl, "kl", ".4f"),
        mark(layer.weight_r, "R", ".1f"),
        _num(layer.act_r, ".1f"),
        mark(layer.energy, "energy", ".3f"),
        _num(layer.skewness, ".2f"),
        _num(layer.rel_l2, ".2e"),
        _num(layer.cosine, ".6f"),
        _num(layer.combined_rank, ".1f"),
    ]


def print_report(report: SensitivityReport, console: Console | None = None) -> None:
    """Summary line, the layer table (flagged first) and, with verify, the verification table."""
    console = console or make_console()
    run = report.run
    flagged = report.flagged
    if report.budget is not None:
        rule = f"budget {report.budget:g} of layers by combined rank"
    else:
        t = report.thresholds
        rule = f"KL > {t['kl']:g} or R > {t['R']:g} or energy > {t['energy']:g}"
    console.print(
        f"[bold]{len(flagged)} of {len(report.layers)} layers must stay in float[/bold] "
        f"({report.scheme['label']}; {rule})"
    )
    console.print(
        f"model {escape(run.model)} · device {run.device} · {run.dtype} · {run.prompts} calibration prompts "
        f"({run.tokens} tokens, ≤ {run.max_tokens} each) · {report.bins} bins, smoothing {report.smoothing:g} · "
        f"{run.runtime_s:.1f} s"
    )
    others = sorted((x for x in report.layers if not x.flagged), key=lambda x: x.combined_rank)
    shown = list(flagged) + others[: max(0, MAX_ROWS - len(flagged))]
    table = Table(title=f"Layers (flagged, then by combined rank; {len(shown)} of {len(report.layers)})")
    for column in ("layer", "flag", "KL", "R", "R act", "energy", "skew", "rel-L2", "cosine", "rank"):
        table.add_column(column, overflow="fold")
    for layer in shown:
        table.add_row(*_layer_row(layer, report.thresholds))
    console.print(table)
    verification = report.verification
    if verification is None:
        return
    table = Table(
        title=f"Verification on {verification.prompts} held-out prompts ({verification.tokens} tokens, "
        f"{verification.new_tokens} greedy tokens each)"
    )
    for column in (
        "model",
        "quantized layers",
        "perplexity",
        "mean KL vs float",
        "top-1 agree",
        "greedy agree",
    ):
        table.add_column(column)
    for row in verification.rows:
        table.add_row(
            row.variant,
            str(row.quantized_layers),
            _num(row.perplexity, ".4f"),
            _num(row.mean_kl, ".3e"),
            _num(row.top1_agreement, ".2%"),
            _num(row.greedy_agreement, ".2%"),
        )
    console.print(table)
    closer = (
        "[green]closer to float[/green]" if verification.mixed_closer else "[red]not closer to float[/red]"
    )
    console.print(f"mixed (flagged layers float) is {closer} than all-quantized by mean KL")


@contextmanager
def progress_bar(console: Console | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar over prompts, one task per stage; yields the ``progress`` callback."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done)

        yield update


def check_outputs(outputs: tuple[Path | None, ...], inputs: tuple[Path, ...]) -> None:
    """Before a run: every output's folder exists and no output is one of the command's inputs.

    Raises:
        InputError: naming the output and the fix.
    """
    for target in (Path(p) for p in outputs if p is not None):
        for source in inputs:
            if source.exists() and target.exists() and os.path.samefile(source, target):
                raise InputError(
                    f"output {target} is also an input of the command; pick another --out / --json path"
                )
        if not target.parent.is_dir():
            raise InputError(
                f"folder {target.parent} of output {target} does not exist; create it or pick another path"
            )


def write_json(document: Any, path: Path) -> None:
    """Write ``document`` as strict JSON atomically (report/output.py: a failed write leaves an existing
    file untouched)."""
    write_report(document, path)
