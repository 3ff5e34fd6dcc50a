"""HTML of a ``precdiff tokens`` JSON document (``docs/tokens-json.md``).

The two renders side by side with whitespace made visible (``·`` space, ``↵`` newline, ``→`` tab) and the
special tokens the diff found boxed, the first differing character marked, the token ids with the first
differing one marked, the alignment around it and the pitfalls.
"""

from __future__ import annotations

from typing import Any

from precdiff.report.html.page import (
    badge,
    cell,
    esc,
    get,
    kv_table,
    obj,
    others,
    page,
    rows_of,
    scalars,
    section,
    seq,
    table,
)

_KEYS = {
    "schema",
    "schema_version",
    "verdict",
    "first_diff_char",
    "first_diff_token",
    "pitfalls",
    "a",
    "b",
    "window_a",
    "window_b",
    "alignment",
    "notes",
}
_TONE = {"identical": "ok", "same_text_different_ids": "warn", "different": "bad"}
_VISIBLE = {" ": "·", "\t": "→", "\r": "␍"}


def visible(text: str) -> str:
    """Whitespace made visible (escaped HTML); newlines keep a real line break after the ``↵``."""
    out = []
    for char in text:
        if char in _VISIBLE:
            out.append(f'<span class="ws">{_VISIBLE[char]}</span>')
        elif char == "\n":
            out.append('<span class="ws">↵</span>\n')
        elif not char.isprintable():
            out.append(f'<span class="ws">⟨U+{ord(char):04X}⟩</span>')
        else:
            out.append(esc(char))
    return "".join(out)


def _specials(document: dict[str, Any]) -> list[str]:
    """Special-token strings to box: those the diff windows marked ``special`` and each side's BOS/EOS."""
    found: set[str] = set()
    for key in ("window_a", "window_b"):
        for segment in rows_of(get(document, key, "segments")):
            if segment.get("kind") == "special" and isinstance(segment.get("text"), str) and segment["text"]:
                found.add(segment["text"])
    for side in ("a", "b"):
        for key in ("bos_token", "eos_token"):
            token = get(document, side, "tokenizer", key)
            if isinstance(token, str) and token:
                found.add(token)
    return sorted(found, key=len, reverse=True)


def _marked(text: str, specials: list[str]) -> str:
    """``text`` with visible whitespace and each special-token occurrence boxed."""
    out, i = [], 0
    while i < len(text):
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is not None:
            out.append(f'<span class="special">{esc(hit)}</span>')
            i += len(hit)
            continue
        j = i + 1
        while j < len(text) and not any(text.startswith(s, j) for s in specials):
            j += 1
        out.append(visible(text[i:j]))
        i = j
    return "".join(out)


def _cut(text: str, at: int, specials: list[str]) -> int:
    """``at``, moved back to the start of the special token it falls inside (``<|system|>`` vs ``<s>``
    differ at character 1; the marker goes before the whole token so the token stays boxed)."""
    i = 0
    while i < at:
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is not None and i + len(hit) > at:
            return i
        i += len(hit) if hit is not None else 1
    return at


def _render(text: Any, at: Any, specials: list[str]) -> str:
    if not isinstance(text, str):
        return '<p class="note">no text on this side</p>'
    if not isinstance(at, int) or not 0 <= at <= len(text):
        return f'<pre class="render">{_marked(text, specials)}</pre>'
    at = _cut(text, at, specials)
    return (
        f'<pre class="render">{_marked(text[:at], specials)}<span class="diffpoint" title="first difference, '
        f'character {at}"></span><span class="after">{_marked(text[at:], specials)}</span></pre>'
    )


def _ids(ids: Any, at: Any) -> str:
    if not isinstance(ids, list):
        return '<p class="note">no token ids</p>'
    spans = "".join(
        f'<span class="tok{" first-diff" if i == at else (" after" if isinstance(at, int) and i > at else "")}" '
        f'data-tip="token {i}">{esc(t)}</span>'
        for i, t in enumerate(ids)
    )
    return f'<div class="tokens ids">{spans}</div>'


def _side(document: dict[str, Any], key: str, specials: list[str]) -> str:
    side = obj(document.get(key))
    facts = [p for p in scalars(side) if p[0] not in ("text", "token_ids", "tokenizer", "notes")]
    facts += [(f"tokenizer {k}", v) for k, v in scalars(side.get("tokenizer"))]
    notes = "".join(f"<li>{esc(n)}</li>" for n in seq(side.get("notes")))
    ids = side.get("token_ids")
    count = f" · {len(ids)} tokens" if isinstance(ids, list) else ""
    return (
        f'<div class="side"><h3>{esc(side.get("label", key.upper()))} · {esc(side.get("kind", ""))}{count}</h3>'
        f"{_render(side.get('text'), document.get('first_diff_char'), specials)}"
        f"<details><summary>token ids</summary>{_ids(ids, document.get('first_diff_token'))}</details>"
        f"<details><summary>how this side was read</summary>{kv_table(facts)}"
        f"{f'<ul>{notes}</ul>' if notes else ''}</details></div>"
    )


def _pitfalls(document: dict[str, Any]) -> str:
    items = []
    for pitfall in rows_of(document.get("pitfalls")):
        side = f" · side {esc(pitfall['side'])}" if pitfall.get("side") else ""
        items.append(
            f'<li class="pitfall"><b>{esc(pitfall.get("title") or pitfall.get("name"))}</b> '
            f"<code>{esc(pitfall.get('name'))}</code>{side}<br>{esc(pitfall.get('evidence') or '')}"
            f'<br><span class="hint">fix: {esc(pitfall.get("hint") or "")}</span></li>'
        )
    return f'<ul class="pitfalls">{"".join(items)}</ul>' if items else ""


def _alignment(document: dict[str, Any]) -> str:
    rows = rows_of(document.get("alignment"))
    cells = [
        [
            cell(r.get("op"), css=f"op-{esc(r.get('op'))}"),
            cell(r.get("a_index")),
            cell(r.get("a_id")),
            cell(None, f"<code>{esc(r.get('a_piece') or '')}</code>"),
            cell(r.get("b_index")),
            cell(r.get("b_id")),
            cell(None, f"<code>{esc(r.get('b_piece') or '')}</code>"),
        ]
        for r in rows
    ]
    columns = ["op", "A index", "A id", "A piece", "B index", "B id", "B piece"]
    return table("table-alignment", columns, cells) if cells else ""


def render_tokens(document: dict[str, Any], source: str | None = None) -> str:
    verdict = str(document.get("verdict", "unknown"))
    specials = _specials(document)
    first_char, first_token = document.get("first_diff_char"), document.get("first_diff_token")
    facts = [
        ("first differing character", esc("–" if first_char is None else first_char)),
        ("first differing token", esc("–" if first_token is None else first_token)),
        ("pitfalls", esc(", ".join(str(p.get("name")) for p in rows_of(document.get("pitfalls"))) or "none")),
    ]
    notes = "".join(f"<li>{esc(n)}</li>" for n in seq(document.get("notes")))
    banner = (
        f'<section class="verdict {_TONE.get(verdict, "info")}"><h1>'
        f"{badge(verdict.replace('_', ' ').upper(), _TONE.get(verdict, 'info'))} "
        f"the two renders of the conversation</h1>{kv_table(facts)}{_pitfalls(document)}"
        f"{f'<ul class=notes>{notes}</ul>' if notes else ''}</section>"
    )
    sides = f'<div class="sides">{_side(document, "a", specials)}{_side(document, "b", specials)}</div>'
    legend = (
        '<p class="note">Whitespace shown as · space, ↵ newline, → tab; special tokens boxed; the first '
        "difference is marked ▶ and what follows it is tinted.</p>"
    )
    body = "".join(
        [
            banner,
            section("Renders side by side", legend + sides, "renders"),
            section("Token alignment around the first difference", _alignment(document), "alignment"),
            others(document, _KEYS),
        ]
    )
    return page(kind="tokens", title=f"precdiff tokens: {verdict}", body=body, source=source)
