"""Console output of ``precdiff kernels tune``."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape

from precdiff.kernels.tune import TuneResult
from precdiff.report.terminal import make_console

_progress = Console(stderr=True, highlight=False, soft_wrap=True)


def print_line(line: str) -> None:
    """One progress line of the tuner (stderr, so stdout stays the result)."""
    _progress.print(escape(line))


def print_tune_result(result: TuneResult) -> None:
    console = make_console()
    console.print(
        f"tuned {escape(result.device_name)} (sm {result.capability[0]}{result.capability[1]}) in "
        f"{result.seconds:.0f} s; table written to {escape(str(result.path))}"
    )
    for kind, count in result.identical.items():
        ratios = list(result.best_ratio.get(kind, {}).values())
        summary = ""
        if ratios:
            geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
            summary = f"; best config vs cuBLAS time over {len(ratios)} shapes: geomean {geomean:.3f}x, worst {max(ratios):.3f}x"
        rejected = result.rejected.get(kind) or []
        console.print(
            f"{kind}: {count} candidates bit-identical to the reference, {len(rejected)} rejected{summary}"
        )
