"""Rich rendering of comparisons and capture summaries. Reads result objects; computes nothing."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from precdiff.compare.results import (
    STATUS_DIVERGED,
    STATUS_MATCH,
    Comparison,
    LayerSummary,
    TensorComparison,
)
from precdiff.report.terminal import make_console
from precdiff.store.manifest import Manifest
from precdiff.store.summary import CaptureSummary

_STATUS_STYLE = {STATUS_MATCH: "bold green", STATUS_DIVERGED: "bold red"}
_BARS = " ▁▂▃▄▅▆▇█"
_LIST_LIMIT = 20  # longest list of names printed before "... and N more"


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
    for d in comparison.differences:
        if d.severity == "info":
            continue
        lines.append(f"[yellow]differs[/yellow] {escape(d.field)}: {escape(str(d.a))} vs {escape(str(d.b))}")
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
            _num(t.rel_l2),
            _num(t.cosine, ".6f"),
            _num(t.max_abs),
            _num(t.frac_beyond, ".2%"),
            counts,
            t.status,
            style="red" if t.above_floor else None,
        )
    return table


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
    by_name = {t.name: t for t in comparison.tensors}
    if comparison.top:
        console.print(
            _tensor_table(
                f"Top {len(comparison.top)} tensors by rel-L2", [by_name[n] for n in comparison.top]
            )
        )
    stats_only = sum(1 for t in comparison.tensors if t.status == "stats_only")
    if stats_only:
        console.print(
            f"[yellow]{stats_only} tensors hold statistics only (--summary): their values were not "
            "stored, rel-L2 is the lower bound |‖B‖−‖A‖|/‖A‖[/yellow]"
        )
    _names(console, "only in A", comparison.unmatched_a)
    _names(console, "only in B", comparison.unmatched_b)
    _names(
        console, "shapes differ", tuple(t.name for t in comparison.tensors if t.status == "shape_mismatch")
    )
    lp = comparison.logprobs
    if lp is not None:
        console.print(
            f"logprobs over {lp.positions} positions (top-{lp.k_a}/{lp.k_b}): KL mean {_num(lp.kl_mean)}, "
            f"max {_num(lp.kl_max)} at position {lp.kl_max_position}; top-1 agreement "
            f"{lp.top1_agreement:.1%}; max |Δlogprob| {_num(lp.max_abs_delta)} at position "
            f"{lp.max_abs_delta_position}" + (" (identical)" if lp.exact else "")
        )
    gen = comparison.generation
    if gen is not None:
        if gen.first_divergent_step is None:
            console.print(
                f"generation: identical over {gen.identical_prefix} tokens (A {gen.steps_a}, B {gen.steps_b} steps)"
            )
        else:
            tie = "a near-tie" if gen.near_tie else "not a near-tie"
            console.print(
                f"generation: first differs at step {gen.first_divergent_step} (token {gen.token_a} vs "
                f"{gen.token_b}); margins A {_num(gen.margin_a, '.3g')}, B {_num(gen.margin_b, '.3g')} "
                f"nats: {tie} (threshold {gen.near_tie_threshold:.3g})"
            )


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
        lines.append(f"text: {escape(repr(summary.input_text[:200]))}")
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
