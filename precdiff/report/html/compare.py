"""HTML of a ``precdiff compare`` JSON document (``docs/compare-json.md``; keys read: ``docs/html-report.md``).

Sections: verdict banner, per-layer error curve, layer × module-kind heatmap (derived from the tensor
names), layer × token heatmap (when the document has ``token_errors``), tensors table, comparability,
logprobs per position and the two generations. Numbers are shown as written; nothing is recomputed
except grouping the tensors' own rel-L2 into heatmap cells (the largest per cell).
"""

from __future__ import annotations

import math
import re
from typing import Any

from precdiff.report.html.charts import Series, heatmap, line_chart
from precdiff.report.html.compare_parts import comparability, generation, logprobs, massive_activations
from precdiff.report.html.page import (
    Cell,
    badge,
    cell,
    esc,
    fixed,
    get,
    kv_table,
    num,
    obj,
    others,
    page,
    percent,
    rows_of,
    scalars,
    sci,
    section,
    seq,
    table,
)

KNOWN = {
    "schema_version",
    "precdiff_version",
    "verdict",
    "captures",
    "comparability",
    "warnings",
    "layers",
    "tensors",
    "top",
    "unmatched",
    "logprobs",
    "generation",
    "token_errors",
    "massive_activations",
    "prompt_tokens",
    "reference",
    "massive_tokens",
}
_TONE = {"match": "ok", "within_noise": "ok", "diverged": "bad"}
_DIGITS = re.compile(r"\.\d+(?=\.|$|\[)")


def render_compare(document: dict[str, Any], source: str | None = None) -> str:
    """The whole page of a compare report."""
    verdict = obj(document.get("verdict"))
    body = "".join(
        [
            _banner(document, verdict),
            section("Error by layer", _curve(document, verdict), "curve"),
            section("Layer × module kind", _kind_heatmap(document, verdict), "kinds"),
            section("Layer × token", _token_heatmap(document, verdict), "tokens"),
            section("Massive-activation tokens", massive_activations(document), "massive"),
            section("Tensors", _tensors(document), "tensors"),
            section("Comparability", comparability(document), "comparability"),
            section("Logprobs per prompt position", logprobs(document), "logprobs"),
            section("Generation", generation(document), "generation"),
            _unmatched(document),
            others(document, KNOWN),
        ]
    )
    status = str(verdict.get("status", "unknown"))
    return page(kind="compare", title=f"precdiff compare: {status}", body=body, source=source)


def _banner(document: dict[str, Any], verdict: dict[str, Any]) -> str:
    status = str(verdict.get("status", "unknown"))
    facts = [
        ("reason", esc(verdict.get("reason") or "–")),
        ("layer", esc("–" if verdict.get("layer") is None else verdict["layer"])),
        ("module", f"<code>{esc(verdict.get('module') or '–')}</code>"),
        ("tensor", f"<code>{esc(verdict.get('tensor') or '–')}</code>"),
    ]
    if verdict.get("op"):
        facts.append(("op", f"<code>{esc(verdict['op'])}</code>"))
    for key, label in (("who_is_wrong", "who is wrong"), ("who_message", "reference says")):
        if verdict.get(key):
            facts.append((label, f"<b>{esc(verdict[key])}</b>"))
    facts += [
        ("rel-L2", sci(verdict.get("rel_l2"))),
        ("cosine", fixed(verdict.get("cosine"))),
        ("received rel-L2", sci(verdict.get("received_rel_l2"))),
        ("growth", _times(verdict.get("growth"))),
        ("noise floor", sci(verdict.get("noise_floor"))),
    ]
    sides = "".join(
        f'<div class="side"><h3>{label}</h3>{kv_table(scalars(get(document, "captures", key)))}</div>'
        for key, label in (("a", "A (reference)"), ("b", "B"))
    )
    if isinstance(document.get("reference"), dict):
        sides += (
            f'<div class="side"><h3>R (reference run)</h3>{kv_table(scalars(document["reference"]))}</div>'
        )
    warnings = "".join(f"<li>{esc(w)}</li>" for w in seq(document.get("warnings")))
    return (
        f'<section class="verdict {_TONE.get(status, "info")}">'
        f"<h1>{badge(status.replace('_', ' ').upper(), _TONE.get(status, 'info'))} "
        f"{esc(verdict.get('message', ''))}</h1>{kv_table(facts)}"
        f'<div class="sides">{sides}</div>'
        f"{f'<ul class=warnings>{warnings}</ul>' if warnings else ''}</section>"
    )


def _times(value: Any) -> str:
    number = num(value)
    return "–" if number is None else f"×{number:.3g}"


def _curve(document: dict[str, Any], verdict: dict[str, Any]) -> str:
    layers = rows_of(document.get("layers"))
    if not layers:
        return ""
    labels = [str(layer.get("label", layer.get("index", i))) for i, layer in enumerate(layers)]

    def column(key: str) -> list[float | None]:
        return [num(layer.get(key)) for layer in layers]

    def one_minus(value: Any) -> float | None:
        number = num(value)
        return None if number is None else max(0.0, 1.0 - number)

    series = [
        Series("output rel-L2", column("rel_l2")),
        Series("largest rel-L2 in stage", column("max_rel_l2")),
        Series("1 − cosine (output)", [one_minus(layer.get("cosine")) for layer in layers]),
    ]
    for key, name in (("rel_l2_a_ref", "A ↔ reference"), ("rel_l2_b_ref", "B ↔ reference")):
        if any(key in layer for layer in layers):
            series.append(Series(name, column(key)))
    mark = next((i for i, layer in enumerate(layers) if _is_verdict_stage(layer, verdict)), None)
    return line_chart(
        chart_id="chart-layers",
        labels=labels,
        series=series,
        y_title="error (log)",
        band=column("noise_floor"),
        mark=mark,
        mark_title=str(verdict.get("reason") or ""),
    ) + _layer_table(layers)


def _is_verdict_stage(layer: dict[str, Any], verdict: dict[str, Any]) -> bool:
    if verdict.get("status") != "diverged":
        return False
    if verdict.get("layer") is not None:
        return bool(layer.get("index") == verdict.get("layer"))
    return verdict.get("tensor") is not None and layer.get("worst") == verdict.get("tensor")


def _layer_table(layers: list[dict[str, Any]]) -> str:
    rows = [
        [
            cell(layer.get("index")),
            cell(layer.get("label")),
            cell(layer.get("rel_l2"), sci(layer.get("rel_l2"))),
            cell(layer.get("cosine"), fixed(layer.get("cosine"))),
            cell(layer.get("max_rel_l2"), sci(layer.get("max_rel_l2"))),
            cell(layer.get("worst"), f"<code>{esc(layer.get('worst') or '–')}</code>"),
            cell(layer.get("received"), sci(layer.get("received"))),
            cell(layer.get("growth"), _times(layer.get("growth"))),
            cell(layer.get("noise_floor"), sci(layer.get("noise_floor"))),
            cell(layer.get("discrete_flip")),
        ]
        for layer in layers
    ]
    css = ["hot" if layer.get("above_floor") else "" for layer in layers]
    columns = ["index", "stage", "output rel-L2", "cosine", "largest rel-L2", "worst tensor"]
    columns += ["received", "growth", "floor", "discrete flip"]
    return f"<details><summary>table</summary>{table('table-layers', columns, rows, row_css=css)}</details>"


def module_kind(tensor: dict[str, Any]) -> str | None:
    """The module kind of a decoder-layer tensor from its name: ``self_attn.q_proj``, ``mlp``, ``output``…

    Expert indices become ``*`` (``mlp.experts.*.down_proj``) so a MoE layer keeps one column per kind;
    op-level rows (``module/aten.op#k``) and tensors outside the decoder layers have no kind.
    """
    name, layer = tensor.get("name"), tensor.get("layer")
    if not isinstance(name, str) or not isinstance(layer, int) or "/" in name:
        return None
    match = re.search(rf"\.{layer}(?=\.|\[|$)", name)
    if match is None:
        return None
    rest = name[match.end() :].lstrip(".")
    kind = _DIGITS.sub(".*", "." + rest)[1:] if rest else "output"
    if rest.startswith("["):
        kind = "output" + rest
    return f"{kind} (input)" if tensor.get("role") == "input" else kind


def _kind_heatmap(document: dict[str, Any], verdict: dict[str, Any]) -> str:
    cells: dict[tuple[int, str], float] = {}
    kinds: list[str] = []
    for tensor in rows_of(document.get("tensors")):
        kind, value = module_kind(tensor), num(tensor.get("rel_l2"))
        if kind is None or value is None:
            continue
        if kind not in kinds:
            kinds.append(kind)
        key = (int(tensor["layer"]), kind)
        old = cells.get(key)
        # The largest error of the cell; NaN (unmeasurable) wins over any number.
        if old is None or math.isnan(value) or (not math.isnan(old) and value > old):
            cells[key] = value
    if not cells:
        return ""
    layers = sorted({layer for layer, _ in cells})
    grid: list[list[float | None]] = [[cells.get((layer, kind)) for kind in kinds] for layer in layers]
    return heatmap(
        chart_id="heat-kinds",
        rows=[f"layer {layer}" for layer in layers],
        cols=kinds,
        values=grid,
        pivot=_floor(document, verdict),
        pivot_title="noise floor",
        value_title="rel-L2",
    )


def _floor(document: dict[str, Any], verdict: dict[str, Any]) -> float:
    """The colour pivot: the verdict's noise floor, else the most common positive tensor floor."""
    floor = num(verdict.get("noise_floor"))
    if floor is not None and floor > 0 and math.isfinite(floor):
        return floor
    floors = [num(t.get("noise_floor")) for t in rows_of(document.get("tensors"))]
    positive = [f for f in floors if f is not None and f > 0 and math.isfinite(f)]
    return max(set(positive), key=positive.count) if positive else 1e-3


def _token_matrix(document: dict[str, Any]) -> dict[str, Any]:
    """``token_errors`` as ``{"layers", "tokens", "rel_l2"}``: the documented form (``stages`` rows and
    ``token_ids``, texts from ``prompt_tokens``) converted; the older matrix form as it is."""
    matrix = obj(document.get("token_errors"))
    stages = rows_of(matrix.get("stages"))
    if not stages:
        return matrix
    texts = document.get("prompt_tokens")
    tokens = texts if isinstance(texts, list) else seq(matrix.get("token_ids"))
    return {
        "layers": [str(stage.get("label", i)) for i, stage in enumerate(stages)],
        "tokens": [f"{i} {t!r}" if isinstance(t, str) else str(t) for i, t in enumerate(tokens)],
        "rel_l2": [seq(stage.get("rel_l2")) for stage in stages],
    }


def _token_heatmap(document: dict[str, Any], verdict: dict[str, Any]) -> str:
    matrix = _token_matrix(document)
    values = get(matrix, "rel_l2")
    if not isinstance(values, list) or not values or not all(isinstance(r, list) for r in values):
        return ""
    width = max(len(r) for r in values)
    if width == 0:
        return ""
    tokens = get(matrix, "tokens")
    cols = [str(t) for t in tokens] if isinstance(tokens, list) and len(tokens) == width else []
    cols = cols or [str(i) for i in range(width)]
    layers = get(matrix, "layers")
    rows = [str(x) for x in layers] if isinstance(layers, list) and len(layers) == len(values) else []
    rows = rows or [f"row {i}" for i in range(len(values))]
    grid = [[num(v) for v in r] + [None] * (width - len(r)) for r in values]
    return heatmap(
        chart_id="heat-tokens",
        rows=rows,
        cols=cols,
        values=grid,
        pivot=_floor(document, verdict),
        pivot_title="noise floor",
        value_title="per-token rel-L2",
    )


def _tensors(document: dict[str, Any]) -> str:
    tensors = rows_of(document.get("tensors"))
    if not tensors:
        return ""
    top = seq(document.get("top"))
    with_ref = any("rel_l2_a_ref" in t or "rel_l2_b_ref" in t for t in tensors)

    def order(item: tuple[int, dict[str, Any]]) -> tuple[int, float, int]:
        index, tensor = item
        value = num(tensor.get("rel_l2"))
        mismatch = 0 if (num(tensor.get("nonfinite_mismatch")) or 0) > 0 else 1
        key = -value if value is not None and not math.isnan(value) else math.inf
        return mismatch, key, index

    ranked = sorted(enumerate(tensors), key=order)
    rows, css = [], []
    for index, tensor in ranked:
        rows.append(_tensor_row(index, tensor, with_ref))
        flags = ("top" if tensor.get("name") in top else "", "hot" if tensor.get("above_floor") else "")
        css.append(" ".join(flag for flag in flags if flag))
    columns = ["#", "tensor", "layer", "status", "dtype A/B", "shape", "rel-L2", "cosine", "max |Δ|"]
    columns += ["mean |Δ|", "beyond tol", "NaN/Inf A|B", "floor", "above floor"]
    if with_ref:
        columns += ["A ↔ ref rel-L2", "B ↔ ref rel-L2"]
    note = (
        f"<p class=note>{len(tensors)} tensors, largest error first; the {len(top)} of "
        "<code>top</code> are marked ◆, tensors above their noise floor are tinted. Click a header to sort.</p>"
    )
    return note + table("table-tensors", columns, rows, row_css=css)


def _tensor_row(index: int, tensor: dict[str, Any], with_ref: bool) -> list[Cell]:
    shape_a, shape_b = tensor.get("shape_a"), tensor.get("shape_b")
    shape = esc(shape_a) if shape_a == shape_b else f"{esc(shape_a)} / {esc(shape_b)}"
    counts = [tensor.get(k) or 0 for k in ("nan_a", "inf_a", "nan_b", "inf_b")]
    nonfinite = f"{counts[0]}/{counts[1]} | {counts[2]}/{counts[3]}" if any(counts) else ""
    flip = tensor.get("rel_l2_unflipped")
    shown_rel = sci(tensor.get("rel_l2")) + (f" (unflipped {sci(flip)})" if num(flip) is not None else "")
    row = [
        cell(index),
        cell(tensor.get("name"), f"<code>{esc(tensor.get('name'))}</code>"),
        cell(tensor.get("layer")),
        cell(tensor.get("status")),
        cell(None, f"{esc(tensor.get('dtype_a'))}/{esc(tensor.get('dtype_b'))}"),
        cell(None, shape),
        cell(tensor.get("rel_l2"), shown_rel),
        cell(tensor.get("cosine"), fixed(tensor.get("cosine"))),
        cell(tensor.get("max_abs"), sci(tensor.get("max_abs"))),
        cell(tensor.get("mean_abs"), sci(tensor.get("mean_abs"))),
        cell(tensor.get("frac_beyond"), percent(tensor.get("frac_beyond"))),
        cell(None, nonfinite),
        cell(tensor.get("noise_floor"), sci(tensor.get("noise_floor"))),
        cell(None, "yes" if tensor.get("above_floor") else ""),
    ]
    if with_ref:
        row += [
            cell(tensor.get("rel_l2_a_ref"), sci(tensor.get("rel_l2_a_ref"))),
            cell(tensor.get("rel_l2_b_ref"), sci(tensor.get("rel_l2_b_ref"))),
        ]
    return row


def _unmatched(document: dict[str, Any]) -> str:
    parts = []
    for key, label in (("a_only", "only in A"), ("b_only", "only in B")):
        names = get(document, "unmatched", key)
        if isinstance(names, list) and names:
            items = "".join(f"<li><code>{esc(n)}</code></li>" for n in names)
            parts.append(f"<details><summary>{len(names)} {label}</summary><ul>{items}</ul></details>")
    return section("Unmatched tensors", "".join(parts), "unmatched")
