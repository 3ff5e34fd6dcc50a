"""Rich rendering of comparisons and capture summaries. Reads result objects; computes nothing."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from precdiff.compare.op_results import OpDrillDown
from precdiff.compare.reference_results import REF_NEITHER, ReferenceComparison, SideError
from precdiff.compare.results import (
    STATUS_DIVERGED,
    STATUS_MATCH,
    Comparison,
    LayerSummary,
    TensorComparison,
)
from precdiff.report.console_outputs import print_outputs
from precdiff.report.differences import grouped
from precdiff.report.terminal import make_console
from precdiff.report.tokens_view import print_token_view
from precdiff.store.manifest import Manifest
from precdiff.store.summary import CaptureSummary

_STATUS_STYLE = {STATUS_MATCH: "bold green", STATUS_DIVERGED: "bold red"}
_BARS = " ▁▂▃▄▅▆▇█"
_LIST_LIMIT = 20  # longest list of names printed before "... and N more"
_CHAIN_CONTEXT = 4  # ops shown before and after the jump in the op-level chain (and differing runs listed)
_TEXT_LIMIT = 200  # prompt characters shown by inspect


def _num(value: float | None, spec: str = ".2e") -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "nan"
    return "inf" if math.isinf(value) else format(value, spec)


def _bar(value: float | None, floor: float) -> str:
    """A log-scale bar: empty at floor/1000, full at 100x the floor; '!' marks NaN."""
    if value is None:
        return ""
    if math.isnan(value):
        return "!"
    if value <= 0.0 or floor <= 0.0:
        return "" if value <= 0.0 else _BARS[-1] * 2
    position = (math.log10(value / floor) + 3.0) / 5.0  # floor/1000 .. floor*100
    cells = max(0.0, min(1.0, position)) * 16
    return _BARS[-1] * int(cells // 8) + (_BARS[int(cells % 8)] if cells < 16 else "")


# Verdict messages open with their status in words ("divergence jumps …", "within noise: …") so that
# they read alone in JSON; beside the status word the panel drops that opening.
_STATUS_OPENINGS = ("match: ", "within noise: ", "divergence: ", "divergence ")


def _without_status_word(message: str) -> str:
    for opening in _STATUS_OPENINGS:
        if message.startswith(opening):
            return message[len(opening) :]
    return message


def _verdict_panel(comparison: Comparison) -> Panel:
    verdict = comparison.verdict
    lines = [
        f"[{_STATUS_STYLE.get(verdict.status, 'bold yellow')}]{verdict.status.upper()}[/] — "
        f"{escape(_without_status_word(verdict.message))}",
        f"A (reference): {escape(comparison.a.path)}  {comparison.a.dtype or '?'} on {comparison.a.device or '?'}",
        f"B:             {escape(comparison.b.path)}  {comparison.b.dtype or '?'} on {comparison.b.device or '?'}",
    ]
    for note in comparison.warnings:
        lines.append(f"[yellow]warning[/yellow]: {escape(note)}")
    if comparison.forced:
        lines.append(
            "[yellow]forced[/yellow]: compared despite differences that normally refuse the comparison"
        )
    shown = [d for d in comparison.differences if d.severity != "info"]
    for label, text in grouped(shown, (comparison.a.kernels, comparison.b.kernels)):
        lines.append(f"[yellow]differs[/yellow] {escape(label)}: {escape(text)}")
    if comparison.expected_exact:
        lines.append(
            "same device, dtype, versions, attention and kernels on both sides: any difference is signal "
            "(noise floor 0)"
        )
    info = [d for d in comparison.differences if d.severity == "info"]
    if info:
        lines.append(f"[dim]also differs (info): {escape(', '.join(d.field for d in info))}[/dim]")
    return Panel("\n".join(lines), title="precdiff compare", expand=False)


def _layer_table(layers: tuple[LayerSummary, ...]) -> Table:
    table = Table(title="Error profile by layer (rel-L2; bar: log scale, floor at the 3/5 mark)")
    for column in ("stage", "output rel-L2", "cosine", "max rel-L2", "worst tensor", "growth", ""):
        table.add_column(column)
    for layer in layers:
        style = "red" if layer.above_floor and layer.discrete_flip is None else None
        worst = layer.worst or ""
        if layer.discrete_flip:
            worst += f" (after flip {layer.discrete_flip})"
        table.add_row(
            layer.label,
            _num(layer.rel_l2),
            _num(layer.cosine, ".6f"),
            _num(layer.max_rel_l2),
            escape(worst),
            _num(layer.growth, ".1f"),
            _bar(layer.max_rel_l2, layer.noise_floor),
            style=style,
        )
    return table


def _estimated(t: TensorComparison, text: str) -> str:
    """A metric of a sketch-estimated tensor marked as such (``≈``); bitwise-equal ones are exact."""
    return f"≈{text}" if t.status == "estimated" and not t.exact else text


def _tensor_table(title: str, tensors: list[TensorComparison]) -> Table:
    table = Table(title=title)
    for column in (
        "tensor",
        "dtype A/B",
        "rel-L2",
        "cosine",
        "max |Δ|",
        "beyond tol",
        "NaN/Inf A|B",
        "status",
    ):
        table.add_column(column)
    for t in tensors:
        counts = f"{t.nan_a}/{t.inf_a} | {t.nan_b}/{t.inf_b}" if t.nan_a + t.inf_a + t.nan_b + t.inf_b else ""
        table.add_row(
            escape(t.name),
            f"{t.dtype_a}/{t.dtype_b}",
            _estimated(t, _num(t.rel_l2)),
            _estimated(t, _num(t.cosine, ".6f")),
            _num(t.max_abs),
            _num(t.frac_beyond, ".2%"),
            counts,
            ("bitwise equal" if t.status == "estimated" and t.exact else t.status)
            + (f" (= {t.alias_of})" if t.alias_of else ""),
            style="red" if t.above_floor else None,
        )
    return table


def _op_chain(drill: OpDrillDown) -> Table:
    """The jump stage's paired ops in forward order, a window around the op where the error jumps."""
    steps = drill.steps
    centre = (
        steps.index(drill.jump)
        if drill.jump is not None
        else max(range(len(steps)), key=lambda i: steps[i].rel_l2)
    )
    shown = steps[max(0, centre - _CHAIN_CONTEXT) : centre + _CHAIN_CONTEXT + 1]
    table = Table(
        title="Op-level error chain in the jump stage (growth: over the error of the op's own inputs)"
    )
    for column in ("op", "received", "rel-L2", "growth", "", "note"):
        table.add_column(column)
    for step in shown:
        note = "← error jumps here" if step is drill.jump else ""
        if step.through_unmatched:
            note = (note + "; " if note else "") + "input through ops that differ"
        table.add_row(
            escape(step.tensor),
            _num(step.received_rel_l2),
            _num(step.rel_l2),
            _num(step.growth, ".1f"),
            _bar(step.rel_l2, step.noise_floor),
            note,
            style="red" if step is drill.jump else None,
        )
    return table


def _print_ops(console: Console, drill: OpDrillDown) -> None:
    console.print(
        f"op level: {drill.paired} op outputs paired; {len(drill.a_only)} only in A, {len(drill.b_only)} "
        f"only in B; {len(drill.fusions)} runs of ops differ between the graphs"
    )
    for fusion in (drill.stage_fusions or drill.fusions)[:_CHAIN_CONTEXT]:
        console.print(
            f"  [yellow]{escape(fusion.message)}[/yellow] (compared at the next paired op and the module output)"
        )
    if drill.steps:
        console.print(_op_chain(drill))


def _names(console: Console, label: str, names: tuple[str, ...]) -> None:
    if not names:
        return
    shown = ", ".join(names[:_LIST_LIMIT])
    more = f" … and {len(names) - _LIST_LIMIT} more" if len(names) > _LIST_LIMIT else ""
    console.print(f"[yellow]{label} ({len(names)})[/yellow]: {escape(shown)}{more}")


def print_comparison(comparison: Comparison, console: Console | None = None) -> None:
    """Verdict panel, per-layer profile, top tensors, unmatched names, logprobs and generation."""
    console = console or make_console()
    console.print(_verdict_panel(comparison))
    if comparison.layers:
        console.print(_layer_table(comparison.layers))
    print_token_view(comparison, console)
    by_name = {t.name: t for t in comparison.tensors}
    if comparison.top:
        console.print(
            _tensor_table(
                f"Top {len(comparison.top)} tensors by rel-L2", [by_name[n] for n in comparison.top]
            )
        )
    stats_only = sum(1 for t in comparison.tensors if t.status == "stats_only")
    estimated = [t for t in comparison.tensors if t.status == "estimated"]
    if estimated:
        spread = max(t.estimate_rel_std or 0.0 for t in estimated)
        equal = sum(1 for t in estimated if t.exact)
        console.print(
            f"[yellow]{len(estimated)} tensors compared through summary sketches (--summary): ≈ marks "
            f"estimated rel-L2 and cosine (relative std {spread:.1%}); {equal} proved bitwise equal by "
            "their checksums[/yellow]"
        )
    if stats_only:
        console.print(
            f"[yellow]{stats_only} tensors hold statistics only (--summary): their values were not "
            "stored, rel-L2 is the lower bound |‖B‖−‖A‖|/‖A‖[/yellow]"
        )
    if comparison.ops is not None:
        _print_ops(console, comparison.ops)
    _names(console, "only in A", comparison.unmatched_a)
    _names(console, "only in B", comparison.unmatched_b)
    _names(
        console, "shapes differ", tuple(t.name for t in comparison.tensors if t.status == "shape_mismatch")
    )
    print_outputs(comparison.logprobs, comparison.generation, console)
    if comparison.reference is not None:
        _print_reference(comparison.reference, console)


def _ratio(error: SideError) -> str:
    ratio = error.ratio
    return "–" if ratio is None else f"{_num(error.rel_l2)} ({ratio:.3g}×)"


def _print_reference(ref: ReferenceComparison, console: Console) -> None:
    """The three-way section: verdict line, then the modules furthest from the reference."""
    style = "bold green" if ref.verdict.status == REF_NEITHER else "bold red"
    console.print(
        f"[{style}]reference[/] ({escape(ref.path)}, {ref.dtype or '?'}): {escape(ref.verdict.message)}"
    )
    ranked = sorted(ref.modules, key=lambda m: max(m.a.ratio or 0.0, m.b.ratio or 0.0), reverse=True)[
        :_LIST_LIMIT
    ]
    if not ranked:
        return
    table = Table(
        title=f"Modules furthest from the reference (rel-L2 (× expected for {ref.dtype_a} | {ref.dtype_b}))"
    )
    for column in ("module", "A from R", "B from R"):
        table.add_column(column)
    for m in ranked:
        table.add_row(
            escape(m.module), _ratio(m.a), _ratio(m.b), style="red" if m.a.departs or m.b.departs else None
        )
    console.print(table)
    _names(console, "missing in the reference", ref.missing)


def print_inspect(summary: CaptureSummary, console: Console | None = None, *, limit: int | None = 40) -> None:
    """Manifest highlights, input, generation and the tensor table of one capture."""
    console = console or make_console()
    m = summary.manifest or Manifest()
    state = "complete" if summary.complete else "[yellow]INCOMPLETE (interrupted capture)[/yellow]"
    model = m.model
    lines = [
        f"{escape(summary.path)}: {state}, format v{summary.format_version}",
        f"model: {escape(str(model.source or '?'))} ({model.architecture or '?'}, "
        f"{model.num_layers or '?'} layers, weights {(model.weights_sha256 or '?')[:12]})",
        f"run: {m.dtype or '?'} on {m.device.get('type', '?')} ({m.device.get('name', '?')}), attention "
        f"{m.attn_implementation or '?'}, kernels {m.kernels or '?'}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(m.versions.items()) if v),
        f"input: {len(summary.input_ids)} tokens {summary.input_ids[:16]}{' …' if len(summary.input_ids) > 16 else ''}",
    ]
    if summary.input_text is not None:
        text = summary.input_text
        cut = f"{text[:_TEXT_LIMIT]!r} … ({len(text)} characters)" if len(text) > _TEXT_LIMIT else repr(text)
        lines.append(f"text: {escape(cut)}")
    if summary.generated_ids:
        lines.append(
            f"generated: {list(summary.generated_ids)} (top-1/top-2 margins "
            f"{', '.join(f'{x:.3g}' for x in summary.generated_margins)})"
        )
    if summary.manifest is None:
        lines.append("[yellow]no manifest (the capture was interrupted before writing it)[/yellow]")
    console.print(Panel("\n".join(lines), title="precdiff inspect", expand=False))
    rows = summary.tensors if limit is None else summary.tensors[:limit]
    table = Table(title=f"{len(summary.tensors)} tensors (forward order)")
    for column in ("name", "shape", "dtype", "min", "max", "mean", "std", "NaN/Inf"):
        table.add_column(column)
    for t in rows:
        s = t.stats
        bad = int(s.get("nan_count", 0)) + int(s.get("inf_count", 0))
        table.add_row(
            escape(t.name) + ("" if t.stored else " [dim](stats only)[/dim]"),
            str(list(t.shape)),
            t.dtype,
            _num(s.get("min"), ".3g"),
            _num(s.get("max"), ".3g"),
            _num(s.get("mean"), ".3g"),
            _num(s.get("std"), ".3g"),
            f"{int(s.get('nan_count', 0))}/{int(s.get('inf_count', 0))}" if bad else "",
            style="red" if bad else None,
        )
    console.print(table)
    if len(rows) < len(summary.tensors):
        console.print(f"… {len(summary.tensors) - len(rows)} more; pass --all to list every tensor")
