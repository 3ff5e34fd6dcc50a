"""HTML of ``precdiff invariance`` and ``precdiff determinism`` JSON documents (``docs/invariance-json.md``)."""

from __future__ import annotations

from typing import Any

from precdiff.report.html.charts import Series, bar_chart, line_chart
from precdiff.report.html.page import (
    Cell,
    badge,
    cell,
    esc,
    get,
    kv_table,
    num,
    obj,
    others,
    page,
    rows_of,
    scalars,
    sci,
    section,
    seq,
    table,
)

_INVARIANCE_KEYS = {
    "schema",
    "schema_version",
    "invariant",
    "batch_invariant",
    "prefill_decode_consistent",
    "first_non_invariant",
    "first_non_invariant_by_batch_size",
    "level",
    "padding",
    "batch_sizes",
    "run",
    "probe",
    "summary",
    "outputs",
    "prefill_vs_decode",
    "tensors",
    "unmatched",
}
_DETERMINISM_KEYS = {
    "schema",
    "schema_version",
    "deterministic",
    "unique_completions",
    "first_divergence_step",
    "runs",
    "max_new_tokens",
    "max_companions",
    "run",
    "probe",
    "completions",
    "records",
}


def _yes(value: Any, good: str, bad: str) -> str:
    return badge(good, "ok") if value else badge(bad, "bad")


def _run(document: dict[str, Any]) -> str:
    run = obj(document.get("run"))
    probe = obj(document.get("probe"))
    pairs = [p for p in scalars(run) if p[0] != "versions"] + scalars(get(run, "versions"))
    pairs.append(("probe", f"{esc(probe.get('length'))} tokens: <code>{esc(probe.get('text') or '')}</code>"))
    return f"<details><summary>run and probe</summary>{kv_table(pairs)}</details>"


def _diff(diff: Any) -> str:
    """One TensorDiff: ``=`` when bitwise equal, else the ULPs, the max |a−b| and the differing share."""
    if not isinstance(diff, dict):
        return "–"
    if diff.get("bitwise_equal"):
        return "="
    return (
        f"{esc(diff.get('max_ulp'))} ulp · max |Δ| {sci(diff.get('max_abs_diff'))} · "
        f"{esc(diff.get('differing'))}/{esc(diff.get('elements'))} differ"
    )


def render_invariance(document: dict[str, Any], source: str | None = None) -> str:
    sizes = [s for s in seq(document.get("batch_sizes")) if isinstance(s, int)]
    first_by = obj(document.get("first_non_invariant_by_batch_size"))
    facts = [
        ("batch invariant", _yes(document.get("batch_invariant"), "yes", "no")),
        ("prefill = decode", _yes(document.get("prefill_decode_consistent"), "yes", "no")),
        ("first non-invariant", f"<code>{esc(document.get('first_non_invariant') or '–')}</code>"),
    ]
    facts += [
        (f"first at batch {size}", f"<code>{esc(first_by.get(str(size)) or '–')}</code>") for size in sizes
    ]
    facts += [
        ("level · padding", f"{esc(document.get('level'))} · {esc(document.get('padding'))}"),
        ("batch sizes", esc(", ".join(map(str, sizes)))),
    ] + scalars(get(document, "summary"))
    ok = bool(document.get("invariant"))
    banner = (
        f'<section class="verdict {"ok" if ok else "bad"}"><h1>{_yes(ok, "INVARIANT", "NOT INVARIANT")} '
        f"the probe's outputs {'do not depend' if ok else 'depend'} on its batch</h1>"
        f"{kv_table(facts)}{_run(document)}</section>"
    )
    tensors = rows_of(document.get("tensors"))
    body = "".join(
        [
            banner,
            section("ULPs per tensor and batch size", _ulp_chart(tensors, sizes, document), "ulps"),
            section("Tensors", _tensor_table(tensors, sizes), "tensors"),
            section("Final log-probabilities per batch size", _outputs(document), "outputs"),
            section("Prefill vs decode", _decode(document), "decode"),
            section("Unmatched", _names(document.get("unmatched")), "unmatched"),
            others(document, _INVARIANCE_KEYS),
        ]
    )
    title = f"precdiff invariance: {'invariant' if ok else 'not invariant'}"
    return page(kind="invariance", title=title, body=body, source=source)


def _checks_by_size(tensor: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["batch_size"]: c for c in rows_of(tensor.get("checks")) if isinstance(c.get("batch_size"), int)}


def _ulp_chart(tensors: list[dict[str, Any]], sizes: list[int], document: dict[str, Any]) -> str:
    counted = [t for t in tensors if t.get("counted", True)]
    if not counted or not sizes:
        return ""
    series = []
    for size in sizes:
        values: list[float | None] = []
        for tensor in counted:
            check = _checks_by_size(tensor).get(size)
            values.append(num(check.get("max_ulp")) if check and check.get("aligned") else None)
        series.append(Series(f"batch {size}", values))
    names = [str(t.get("name")) for t in counted]
    first = document.get("first_non_invariant")
    return line_chart(
        chart_id="chart-ulps",
        labels=names,
        series=series,
        y_title="max ULP (log; 0 on the axis)",
        mark=names.index(first) if first in names else None,
        mark_title="first non-invariant",
    )


def _tensor_table(tensors: list[dict[str, Any]], sizes: list[int]) -> str:
    if not tensors:
        return ""
    rows: list[list[Cell]] = []
    css = []
    for index, tensor in enumerate(tensors):
        checks = _checks_by_size(tensor)
        row = [
            cell(index),
            cell(tensor.get("name"), f"<code>{esc(tensor.get('name'))}</code>"),
            cell(tensor.get("op")),
            cell(tensor.get("dtype")),
            cell(None, esc(tensor.get("shape"))),
            cell(tensor.get("max_ulp")),
        ]
        for size in sizes:
            check = checks.get(size)
            if check is None:
                row.append(cell(None, "–"))
            elif not check.get("aligned"):
                row.append(cell(None, f"not aligned: {esc(check.get('note') or '')}"))
            else:
                row.append(cell(check.get("max_ulp"), _diff(check)))
        rows.append(row)
        css.append("" if tensor.get("invariant", True) else "hot")
    columns = ["#", "tensor", "op", "dtype", "shape", "max ULP"] + [f"batch {s}" for s in sizes]
    changed = sum(1 for c in css if c)
    note = f"<p class=note>{len(tensors)} tensors in forward order; {changed} not invariant (tinted).</p>"
    return note + table("table-tensors", columns, rows, row_css=css)


def _outputs(document: dict[str, Any]) -> str:
    outputs = rows_of(document.get("outputs"))
    rows = [
        [
            cell(o.get("batch_size")),
            cell(o.get("probe_slot")),
            cell(o.get("padded_length")),
            cell(get(o, "logprobs", "max_ulp"), _diff(o.get("logprobs"))),
            cell(None, esc(", ".join(map(str, seq(o.get("greedy_changed_positions")))) or "none")),
        ]
        for o in outputs
    ]
    columns = ["batch size", "probe slot", "padded length", "log-probabilities", "greedy token changed at"]
    return table("table-outputs", columns, rows) if rows else ""


def _decode(document: dict[str, Any]) -> str:
    checks = rows_of(document.get("prefill_vs_decode"))
    rows = [
        [
            cell(d.get("position")),
            cell(None, "yes" if d.get("argmax_equal") else "no"),
            cell(d.get("max_ulp"), _diff(d)),
        ]
        for d in checks
    ]
    return table("table-decode", ["position", "same argmax", "logits"], rows) if rows else ""


def _names(names: Any) -> str:
    if not isinstance(names, list) or not names:
        return ""
    items = "".join(f"<li><code>{esc(n)}</code></li>" for n in names)
    return f"<details><summary>{len(names)} name(s)</summary><ul>{items}</ul></details>"


def render_determinism(document: dict[str, Any], source: str | None = None) -> str:
    completions = rows_of(document.get("completions"))
    step = document.get("first_divergence_step")
    ok = bool(document.get("deterministic"))
    facts = [
        ("distinct completions", esc(document.get("unique_completions"))),
        ("first divergence step", esc("–" if step is None else step)),
        (
            "runs · new tokens · max companions",
            f"{esc(document.get('runs'))} · {esc(document.get('max_new_tokens'))} · {esc(document.get('max_companions'))}",
        ),
    ]
    banner = (
        f'<section class="verdict {"ok" if ok else "bad"}"><h1>{_yes(ok, "DETERMINISTIC", "NOT DETERMINISTIC")} '
        f"{esc(document.get('unique_completions'))} distinct greedy completion(s) over "
        f"{esc(document.get('runs'))} randomly batched runs</h1>{kv_table(facts)}{_run(document)}</section>"
    )
    chart = bar_chart(
        chart_id="chart-completions",
        labels=[f"completion {i}" for i in range(len(completions))],
        values=[num(c.get("count")) or 0.0 for c in completions],
        x_title="runs that produced it",
    )
    body = "".join(
        [
            banner,
            section("Distinct completions", chart + _completions(completions, step), "completions"),
            section("Runs", _records(document), "runs"),
            others(document, _DETERMINISM_KEYS),
        ]
    )
    title = f"precdiff determinism: {'deterministic' if ok else 'not deterministic'}"
    return page(kind="determinism", title=title, body=body, source=source)


def _completions(completions: list[dict[str, Any]], step: Any) -> str:
    """Each completion's token ids, those from the first divergence step on highlighted, and its text."""
    parts = []
    for i, completion in enumerate(completions):
        ids = seq(completion.get("ids"))
        spans = "".join(
            f'<span class="tok{_part(j, step)}" data-tip="step {j}">{esc(t)}</span>'
            for j, t in enumerate(ids)
        )
        runs = seq(completion.get("runs"))
        parts.append(
            f'<div class="completion"><h3>completion {i} · {esc(completion.get("count"))} run(s)</h3>'
            f'<div class="tokens">{spans}</div><pre class="render">{esc(completion.get("text") or "")}</pre>'
            f'<p class="note">runs {esc(", ".join(map(str, runs[:60])))}{" …" if len(runs) > 60 else ""}</p></div>'
        )
    return "".join(parts)


def _part(index: int, step: Any) -> str:
    if not isinstance(step, int):
        return ""
    return " first-diff" if index == step else (" after" if index > step else "")


def _records(document: dict[str, Any]) -> str:
    rows = [
        [cell(r.get("run")), cell(r.get("batch_size")), cell(r.get("probe_slot")), cell(r.get("completion"))]
        for r in rows_of(document.get("records"))
    ]
    return table("table-runs", ["run", "batch size", "probe slot", "completion"], rows) if rows else ""
