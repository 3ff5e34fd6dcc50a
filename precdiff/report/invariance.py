"""Console rendering of ``precdiff invariance`` / ``precdiff determinism`` results, and their JSON.

Reads the result objects of :mod:`precdiff.invariance.results`; never recomputes a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from precdiff.invariance.results import DeterminismReport, InvarianceReport, TensorInvariance
from precdiff.report import output
from precdiff.report.terminal import make_console

__all__ = ["print_determinism", "print_invariance", "write_json"]

# Rows shown in the per-tensor table: the non-invariant ones first (forward order), capped.
MAX_ROWS = 25


def _mark(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def _run_line(console: Console, run: Any) -> None:
    console.print(
        f"model {escape(run.model)} · device {run.device} · {run.dtype} · kernels {run.kernels} · "
        f"seed {run.seed} · {run.runtime_s:.1f} s"
    )


def _tensor_row(tensor: TensorInvariance, batch_sizes: tuple[int, ...]) -> list[str]:
    cells = [escape(tensor.name), tensor.dtype]
    by_size = {c.batch_size: c for c in tensor.checks}
    for size in batch_sizes:
        check = by_size.get(size)
        if check is None or check.diff is None:
            cells.append("[dim]not aligned[/dim]")
        elif check.diff.bitwise_equal:
            cells.append("[green]=[/green]")
        else:
            cells.append(f"[red]{check.diff.max_ulp} ulp[/red] ({check.diff.max_abs_diff:.2e})")
    return cells


def _reason(report: InvarianceReport) -> str:
    """Why the verdict is what it is, in the headline (the tables below give the detail)."""
    counted = [t for t in report.tensors if t.counted]
    changed = sum(1 for t in counted if not t.invariant)
    batch = (
        f"all {len(counted)} tensors bitwise identical in every batch"
        if report.batch_invariant
        else f"{changed} of {len(counted)} tensors change with the batch"
    )
    if report.prefill_decode_consistent:
        return batch + "; prefill and decode agree"
    differing = sum(1 for d in report.decode if not d.logits.bitwise_equal)
    return (
        f"{batch}; prefill and decode logits differ at {differing} of {len(report.decode)} positions "
        "(see the prefill-vs-decode table)"
    )


def print_invariance(report: InvarianceReport, console: Console | None = None) -> None:
    """Verdict, first non-invariant tensor, per-batch-size outputs, prefill vs decode, worst tensors."""
    console = console or make_console()
    verdict = "[bold green]INVARIANT[/bold green]" if report else "[bold red]NOT INVARIANT[/bold red]"
    console.print(f"{verdict}: {_reason(report)}")
    console.print(
        f"level {report.level} · padding {report.padding} · batch sizes "
        f"{', '.join(map(str, report.batch_sizes))} vs the probe alone ({len(report.probe.ids)} tokens)"
    )
    _run_line(console, report.run)
    first = report.first_non_invariant
    if first is not None:
        console.print(
            f"first non-invariant {'op' if first.op else 'module'}: [bold]{escape(first.name)}[/bold] "
            f"(max {first.max_ulp} ulp)"
        )
    counted = [t for t in report.tensors if t.counted]
    console.print(
        f"{len(report.tensors)} tensors ({len(counted)} float, counted) · "
        f"{sum(1 for t in counted if not t.invariant)} not bitwise invariant · "
        f"{len(report.not_aligned)} not aligned at some batch size · {len(report.unmatched)} only in batches"
    )

    outputs = Table(title="Probe outputs vs alone", expand=False)
    for column in (
        "batch",
        "slot",
        "padded len",
        "logprobs equal",
        "max ulp",
        "max |Δ|",
        "greedy changed at",
    ):
        outputs.add_column(column)
    for o in report.outputs:
        changed = ", ".join(map(str, o.greedy_changed_positions)) or "—"
        outputs.add_row(
            str(o.batch_size),
            str(o.probe_slot),
            str(o.padded_length),
            _mark(o.logprobs.bitwise_equal),
            str(o.logprobs.max_ulp),
            f"{o.logprobs.max_abs_diff:.2e}",
            changed,
        )
    console.print(outputs)

    if report.decode:
        decode = Table(title="Prefill vs decode (logits at position t)", expand=False)
        for column in ("t", "bitwise equal", "max ulp", "max |Δ|", "argmax equal"):
            decode.add_column(column)
        for d in report.decode:
            decode.add_row(
                str(d.position),
                _mark(d.logits.bitwise_equal),
                str(d.logits.max_ulp),
                f"{d.logits.max_abs_diff:.2e}",
                _mark(d.argmax_equal),
            )
        console.print(decode)

    shown = [t for t in report.tensors if t.counted and not t.invariant][:MAX_ROWS]
    if shown:
        table = Table(title=f"Non-invariant tensors (first {len(shown)} in forward order)", expand=False)
        table.add_column("name", overflow="fold")
        table.add_column("dtype")
        for size in report.batch_sizes:
            table.add_column(f"B={size}")
        for tensor in shown:
            table.add_row(*_tensor_row(tensor, report.batch_sizes))
        console.print(table)
    for tensor in report.not_aligned[:5]:
        note = next((c.note for c in tensor.checks if not c.aligned), None)
        console.print(f"[dim]not aligned: {escape(tensor.name)}: {escape(note or '')}[/dim]")
    if len(report.not_aligned) > 5:
        console.print(f"[dim]… {len(report.not_aligned) - 5} more not aligned (see --json)[/dim]")


def print_determinism(report: DeterminismReport, console: Console | None = None) -> None:
    """Verdict, unique completions, first divergence step and the completion histogram."""
    console = console or make_console()
    n = report.unique_completions
    verdict = "[bold green]DETERMINISTIC[/bold green]" if report else "[bold red]NOT DETERMINISTIC[/bold red]"
    console.print(
        f"{verdict}  {n} unique completion{'s' if n != 1 else ''} of {report.max_new_tokens} tokens "
        f"in {report.runs} runs (0..{report.max_companions} random companions per run)"
    )
    _run_line(console, report.run)
    if report.first_divergence_step is not None:
        console.print(f"completions part at generated step {report.first_divergence_step}")
    table = Table(title="Completions (most frequent first)", expand=False)
    for column in ("#", "count", "text / ids"):
        table.add_column(column, overflow="fold")
    for index, completion in enumerate(report.completions[:MAX_ROWS]):
        shown = completion.text if completion.text else " ".join(map(str, completion.ids))
        table.add_row(str(index), str(completion.count), escape(repr(shown)))
    console.print(table)


def write_json(report: InvarianceReport | DeterminismReport, path: Path) -> Path:
    """Write ``report.to_dict()`` (schemas in docs/invariance-json.md) with :func:`output.write_json`."""
    return output.write_json(report.to_dict(), path)
