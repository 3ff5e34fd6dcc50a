"""Sections of the compare page beyond the error profile: comparability, logprobs, generation, outliers."""

from __future__ import annotations

import re
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
from precdiff.report.html.tokens import visible

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
    """Prompt token texts: the top-level ``prompt_tokens``, else (older documents) ``logprobs.tokens``."""
    for candidate in (document.get("prompt_tokens"), get(document, "logprobs", "tokens")):
        if isinstance(candidate, list):
            return [str(t) for t in candidate]
    return None


def _column(values: list[Any], n: int) -> list[float | None]:
    return [num(v) for v in values[:n]] + [None] * (n - len(values[:n]))


def _position_labels(document: dict[str, Any], data: dict[str, Any], n: int) -> list[str]:
    """``i: 'context' → 'next'`` per position, from the prompt tokens and the chosen tokens known."""
    tokens = prompt_tokens(document)
    chosen = seq(data.get("chosen_tokens"))
    given = data.get("start_position")
    start = given if isinstance(given, int) else 0
    labels = []
    for i in range(n):
        here = tokens[start + i] if tokens and start + i < len(tokens) else None
        after = chosen[i] if i < len(chosen) and chosen[i] is not None else None
        text = (
            f"{i}"
            + (f" {here!r}" if here is not None else "")
            + (f" → {after!r}" if after is not None else "")
        )
        labels.append(text)
    return labels


def logprobs(document: dict[str, Any]) -> str:
    data = get(document, "logprobs")
    if not isinstance(data, dict):
        return ""
    k = data.get("topk_overlap_k")
    overlap = (
        f"mean {percent(data.get('topk_overlap_mean'))}, min {percent(data.get('topk_overlap_min'))} (k = {esc(k)})"
        if num(data.get("topk_overlap_mean")) is not None
        else "– (a side has no top-k candidates)"
    )
    summary = kv_table(
        [
            ("positions", esc(data.get("positions"))),
            ("top-k A / B", f"{esc(data.get('k_a'))} / {esc(data.get('k_b'))}"),
            ("KL mean", sci(data.get("kl_mean"))),
            ("KL max", f"{sci(data.get('kl_max'))} at position {esc(data.get('kl_max_position'))}"),
            ("top-1 agreement", percent(data.get("top1_agreement"))),
            ("top-k overlap", overlap),
            ("chosen-token |Δlogprob| max", sci(data.get("chosen_delta_max_abs"))),
            (
                "max |Δlogprob| (any shared id)",
                f"{sci(data.get('max_abs_delta'))} at position {esc(data.get('max_abs_delta_position'))}",
            ),
            ("exact", esc(data.get("exact"))),
        ]
    )
    kl, delta, overlaps = seq(data.get("kl")), seq(data.get("chosen_delta")), seq(data.get("topk_overlap"))
    n = max(len(kl), len(delta), len(overlaps))
    if n == 0:
        return summary
    labels = _position_labels(document, data, n)
    magnitude = [None if v is None else abs(v) for v in _column(delta, n)]
    series = [Series("KL(A‖B) nats", _column(kl, n))]
    if any(v is not None for v in magnitude):
        series.append(Series("|Δlogprob| of the chosen token", magnitude))
    chart = line_chart(chart_id="chart-logprobs", labels=labels, series=series, y_title="nats (log)")
    rows = [
        [
            cell(i),
            cell(None, f"<code>{esc(labels[i].partition(' ')[2])}</code>"),
            cell(kl[i] if i < len(kl) else None, sci(kl[i] if i < len(kl) else None)),
            cell(delta[i] if i < len(delta) else None, sci(delta[i] if i < len(delta) else None)),
            cell(
                overlaps[i] if i < len(overlaps) else None,
                percent(overlaps[i] if i < len(overlaps) else None),
            ),
        ]
        for i in range(n)
    ]
    columns = ["position", "token → next", "KL", "Δlogprob chosen (B − A)", "top-k overlap"]
    positions = table("table-logprobs", columns, rows)
    listed = data.get("listed_positions")
    note = (
        f"<p class=note>the first {esc(listed)} of {esc(data.get('positions'))} positions are listed</p>"
        if isinstance(listed, int) and listed < (num(data.get("positions")) or 0)
        else ""
    )
    return f"{summary}{chart}{note}<details><summary>per position</summary>{positions}</details>"


def generation(document: dict[str, Any]) -> str:
    data = get(document, "generation")
    if not isinstance(data, dict):
        return ""
    step = data.get("first_divergent_step")
    if step is None:
        lengths = (
            ""
            if data.get("steps_a") == data.get("steps_b")
            else f" (A has {esc(data.get('steps_a'))} steps, B {esc(data.get('steps_b'))})"
        )
        head = (
            f"<p>{badge('identical', 'ok')} identical over {esc(data.get('identical_prefix'))} greedy steps"
            f"{lengths}.</p>"
        )
    else:
        tie = badge("near-tie", "warn") if data.get("near_tie") else badge("not a near-tie", "bad")
        head = (
            f"<p>{badge('differs', 'bad')} {tie} first differs at step <b>{esc(step)}</b> "
            f"(token {_step_token(data, 'a', step)} vs {_step_token(data, 'b', step)}) after "
            f"{esc(data.get('identical_prefix'))} identical tokens.</p>"
        )
    margins = [("margin A", _margin(data, "a")), ("margin B", _margin(data, "b"))] if step is not None else []
    facts = kv_table(
        [
            ("steps A / B", f"{esc(data.get('steps_a'))} / {esc(data.get('steps_b'))}"),
            *margins,
            ("near-tie threshold", f"{fixed(data.get('near_tie_threshold'), 4)} nats"),
            ("near-tie rule", esc(data.get("near_tie_rule") or "–")),
        ]
    )
    return head + facts + _continuations(data, step if isinstance(step, int) else None)


def _step_token(data: dict[str, Any], side: str, step: int) -> str:
    texts = seq(data.get(f"tokens_{side}"))
    token_id = esc(data.get(f"token_{side}"))
    if step < len(texts):
        return f"<code>{_piece(str(texts[step]))}</code> ({token_id})"
    return token_id


def _margin(data: dict[str, Any], side: str) -> str:
    text = f"{fixed(data.get(f'margin_{side}'), 5)} nats"
    ulps = num(data.get(f"margin_{side}_ulps"))
    return text + (f" ({ulps:g} ulp)" if ulps is not None else "")


_SPECIAL = re.compile(r"^<\|?[^<>|]+\|?>$|^</?s>$")
_BYTE = re.compile(r"&lt;0x[0-9A-F]{2}&gt;")  # a byte piece, as visible() escaped it


def _piece(text: str) -> str:
    """One token's text: whitespace visible, ``<0xNN>`` byte pieces dimmed."""
    shown = visible(text).replace("↵</span>\n", "↵</span>")
    return _BYTE.sub(lambda m: f'<span class="ws">{m.group(0)}</span>', shown)


def _continuations(data: dict[str, Any], step: int | None) -> str:
    """Both continuations side by side, one box per token (texts, else ids), the first differing step
    highlighted and the rest after it tinted; hovering a token shows its step and id."""
    columns = []
    for side in ("a", "b"):
        ids = seq(data.get(f"ids_{side}"))
        pieces = data.get(f"tokens_{side}")
        if not isinstance(pieces, list):
            pieces = ids
        if pieces:
            spans = []
            for i, piece in enumerate(pieces):
                css = "tok" + (
                    " first-diff" if i == step else (" after" if step is not None and i > step else "")
                )
                if isinstance(piece, str) and _SPECIAL.match(piece):
                    css += " special"
                tip = f"step {i}" + (f" · id {ids[i]}" if i < len(ids) else "")
                spans.append(f'<span class="{css}" data-tip="{esc(tip)}">{_piece(str(piece))}</span>')
            columns.append(
                f'<div class="side"><h3>{side.upper()} · {len(pieces)} tokens</h3>'
                f'<div class="tokens">{"".join(spans)}</div></div>'
            )
        elif isinstance(data.get(f"text_{side}"), str):
            columns.append(
                f'<div class="side"><h3>{side.upper()}</h3><pre class="render">{esc(data[f"text_{side}"])}</pre></div>'
            )
    return f'<div class="sides continuations">{"".join(columns)}</div>' if columns else ""


def massive_activations(document: dict[str, Any]) -> str:
    items = rows_of(document.get("massive_tokens")) or rows_of(document.get("massive_activations"))
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
