"""Sections of the compare page beyond the error profile: comparability, logprobs, generation, outliers."""

from __future__ import annotations

from typing import Any

from precdiff.report.html.charts import Series, line_chart
from precdiff.report.html.page import (
    badge,
    cell,
    esc,
    fixed,
    get,
    kv_table,
    num,
    percent,
    rows_of,
    sci,
    seq,
    table,
)

_SEVERITY_ORDER = ("refuse", "warn", "info")


def comparability(document: dict[str, Any]) -> str:
    """Manifest differences grouped by severity, then by their first field component (dtype, device…)."""
    differences = rows_of(get(document, "comparability", "differences"))
    forced = get(document, "comparability", "forced")
    head = (
        "<p>" + badge("forced", "warn") + " compared despite differences that normally refuse it</p>"
        if forced
        else ""
    )
    if not differences:
        return head + ("<p>No manifest differences.</p>" if get(document, "comparability") else "")
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for difference in differences:
        severity = str(difference.get("severity", "info"))
        family = str(difference.get("field", "?")).split(".")[0]
        groups.setdefault(severity, {}).setdefault(family, []).append(difference)
    parts = [head]
    severities = [s for s in _SEVERITY_ORDER if s in groups] + sorted(set(groups) - set(_SEVERITY_ORDER))
    for severity in severities:
        tone = {"refuse": "bad", "warn": "warn"}.get(severity, "info")
        for family, items in groups[severity].items():
            rows = "".join(
                f"<tr><td><code>{esc(d.get('field'))}</code></td><td>{_value(d.get('a'))}</td>"
                f"<td>{_value(d.get('b'))}</td></tr>"
                for d in items
            )
            parts.append(
                f'<details class="group" {"open" if severity != "info" else ""}><summary>'
                f"{badge(severity, tone)} <b>{esc(family)}</b> · {len(items)} field(s)</summary>"
                f'<table class="diffs"><tr><th>field</th><th>A</th><th>B</th></tr>{rows}</table></details>'
            )
    return "".join(parts)


def _value(value: Any) -> str:
    text = esc(value if value is not None else "–")
    return f"<code>{text[:300]}{'…' if len(text) > 300 else ''}</code>"


def prompt_tokens(document: dict[str, Any]) -> list[str] | None:
    """Prompt token texts: ``logprobs.tokens``, else the top-level ``prompt_tokens``, else None."""
    for candidate in (get(document, "logprobs", "tokens"), document.get("prompt_tokens")):
        if isinstance(candidate, list):
            return [str(t) for t in candidate]
    return None


def logprobs(document: dict[str, Any]) -> str:
    data = get(document, "logprobs")
    if not isinstance(data, dict):
        return ""
    summary = kv_table(
        [
            ("positions", esc(data.get("positions"))),
            ("top-k A / B", f"{esc(data.get('k_a'))} / {esc(data.get('k_b'))}"),
            ("KL mean", sci(data.get("kl_mean"))),
            ("KL max", f"{sci(data.get('kl_max'))} at position {esc(data.get('kl_max_position'))}"),
            ("top-1 agreement", percent(data.get("top1_agreement"))),
            (
                "max |Δlogprob|",
                f"{sci(data.get('max_abs_delta'))} at position {esc(data.get('max_abs_delta_position'))}",
            ),
            ("exact", esc(data.get("exact"))),
        ]
    )
    kl = seq(data.get("kl"))
    delta = seq(data.get("delta"))
    n = max(len(kl), len(delta))
    if n == 0:
        return summary
    tokens = prompt_tokens(document)
    labels = [f"{i} {tokens[i]!r}" if tokens and i < len(tokens) else str(i) for i in range(n)]
    series = [Series("KL(A‖B) nats", [num(v) for v in kl] + [None] * (n - len(kl)))]
    if delta:
        series.append(Series("max |Δlogprob|", [num(v) for v in delta] + [None] * (n - len(delta))))
    chart = line_chart(chart_id="chart-logprobs", labels=labels, series=series, y_title="nats (log)")
    rows = [
        [
            cell(i),
            cell(None, f"<code>{esc(tokens[i]) if tokens and i < len(tokens) else ''}</code>"),
            cell(kl[i] if i < len(kl) else None, sci(kl[i] if i < len(kl) else None)),
            cell(delta[i] if i < len(delta) else None, sci(delta[i] if i < len(delta) else None)),
        ]
        for i in range(n)
    ]
    positions = table("table-logprobs", ["position", "token", "KL", "max |Δlogprob|"], rows)
    return f"{summary}{chart}<details><summary>per position</summary>{positions}</details>"


def generation(document: dict[str, Any]) -> str:
    data = get(document, "generation")
    if not isinstance(data, dict):
        return ""
    step = data.get("first_divergent_step")
    near = badge("near-tie", "warn") if data.get("near_tie") else ""
    if step is None:
        head = f"<p>{badge('identical', 'ok')} {esc(data.get('steps_a'))} greedy steps on both sides.</p>"
    else:
        head = (
            f"<p>{badge('differs', 'bad')} {near} first differs at step <b>{esc(step)}</b> "
            f"(token {esc(data.get('token_a'))} vs {esc(data.get('token_b'))}) after "
            f"{esc(data.get('identical_prefix'))} identical tokens.</p>"
        )
    facts = kv_table(
        [
            ("steps A / B", f"{esc(data.get('steps_a'))} / {esc(data.get('steps_b'))}"),
            ("margin A", _margin(data, "a")),
            ("margin B", _margin(data, "b")),
            ("near-tie threshold", f"{fixed(data.get('near_tie_threshold'), 4)} nats"),
        ]
    )
    return head + facts + _continuations(data, step if isinstance(step, int) else None)


def _margin(data: dict[str, Any], side: str) -> str:
    text = f"{fixed(data.get(f'margin_{side}'), 5)} nats"
    ulps = num(data.get(f"margin_{side}_ulps"))
    return text + (f" ({ulps:g} ulp)" if ulps is not None else "")


def _continuations(data: dict[str, Any], step: int | None) -> str:
    """Both continuations side by side: token pieces (``tokens_a``/``tokens_b``) when the document has
    them, else the texts (``text_a``/``text_b``), else the ids (``ids_a``/``ids_b``)."""
    columns = []
    for side in ("a", "b"):
        pieces = data.get(f"tokens_{side}")
        if not isinstance(pieces, list):
            pieces = data.get(f"ids_{side}")
        if isinstance(pieces, list):
            spans = "".join(
                f'<span class="tok{" first-diff" if i == step else (" after" if step is not None and i > step else "")}"'
                f' data-tip="step {i}">{esc(p)}</span>'
                for i, p in enumerate(pieces)
            )
            columns.append(
                f'<div class="side"><h3>{side.upper()}</h3><div class="tokens">{spans}</div></div>'
            )
        elif isinstance(data.get(f"text_{side}"), str):
            columns.append(
                f'<div class="side"><h3>{side.upper()}</h3><pre class="render">{esc(data[f"text_{side}"])}</pre></div>'
            )
    return f'<div class="sides">{"".join(columns)}</div>' if columns else ""


def massive_activations(document: dict[str, Any]) -> str:
    items = rows_of(document.get("massive_activations"))
    if not items:
        return ""
    keys: list[str] = []
    for item in items:
        keys += [k for k in item if k not in keys]
    rows = [
        [cell(item.get(k), sci(item[k]) if isinstance(item.get(k), float) else None) for k in keys]
        for item in items
    ]
    return table("table-massive", keys, rows)
