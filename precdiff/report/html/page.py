"""The page every HTML report shares: skeleton with CSP, embedded CSS/JS, tables, and value formatting.

Renderers read a JSON document (a plain ``dict``, as ``to_dict()`` or ``--json`` produced it) and must
survive fields that are missing or of another type than expected: a newer or older precdiff may have
written the file. The accessors below (``get``, ``num``, ``text``) never raise on such input.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from precdiff._version import __version__

# Rows a table shows per page; the script pages (and prints) the rest.
PAGE_ROWS = 50


def esc(value: object) -> str:
    """HTML-escape any value (quotes too: the result may sit in an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def get(document: Any, *path: str | int) -> Any:
    """``document[path[0]][path[1]]…`` or None when any step is missing or of the wrong kind."""
    node = document
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and -len(node) <= key < len(node):
            node = node[key]
        elif isinstance(key, str) and isinstance(node, Mapping):
            node = node.get(key)
        else:
            return None
    return node


def num(value: Any) -> float | None:
    """A number from JSON: floats and ints, and the strings ``"nan"``/``"inf"``/``"-inf"`` that strict
    JSON reports use for non-finite floats. Anything else (None, text, bool) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value.lower().replace("infinity", "inf"))
    return None


def obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one when the value is anything else."""
    return value if isinstance(value, dict) else {}


def seq(value: Any) -> list[Any]:
    """A JSON list, or an empty one when the value is anything else."""
    return value if isinstance(value, list) else []


def rows_of(value: Any) -> list[dict[str, Any]]:
    """The dict items of a JSON list (anything else dropped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def exact(value: float) -> float | str:
    """A float as JSON can carry it exactly: the float itself, or ``"nan"``/``"inf"``/``"-inf"``."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def sci(value: Any, digits: int = 2) -> str:
    """Short scientific form of a JSON number (``3.13e-01``); ``–`` when absent."""
    number = num(value)
    if number is None:
        return "–"
    if not math.isfinite(number):
        return str(exact(number))
    return f"{number:.{digits}e}"


def fixed(value: Any, digits: int = 6) -> str:
    number = num(value)
    if number is None:
        return "–"
    return f"{number:.{digits}f}" if math.isfinite(number) else str(exact(number))


def percent(value: Any) -> str:
    number = num(value)
    return "–" if number is None or not math.isfinite(number) else f"{100 * number:.2f}%"


@dataclass(frozen=True)
class Cell:
    """A table cell: shown HTML, and the exact value (sort key and hover) when it is a number."""

    shown: str
    value: float | str | None = None
    css: str = ""


def cell(value: Any, shown: str | None = None, css: str = "") -> Cell:
    """A cell for a JSON value: numbers keep their exact value for sorting and hover."""
    number = num(value)
    text = shown if shown is not None else esc(value if value is not None else "–")
    return Cell(text, exact(number) if number is not None else None, css)


def table(
    table_id: str, columns: Sequence[str], rows: Iterable[Sequence[Cell]], *, row_css: Sequence[str] = ()
) -> str:
    """A sortable, filterable, paged table (``report.js``); plain rows without the script, all on print."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for index, row in enumerate(rows):
        css = row_css[index] if index < len(row_css) and row_css[index] else ""
        cells = "".join(
            f"<td{_attr('class', c.css)}{_attr('data-v', json.dumps(c.value) if c.value is not None else '')}>"
            f"{c.shown}</td>"
            for c in row
        )
        body.append(f"<tr{_attr('class', css)}>{cells}</tr>")
    return (
        f'<div class="tbl" id="{esc(table_id)}" data-page="{PAGE_ROWS}" data-rows="{len(body)}">'
        f'<input class="filter" type="search" placeholder="filter rows (text or /regex/)" aria-label="filter">'
        f'<span class="count"></span><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        f'</table><div class="pager"></div></div>'
    )


def _attr(name: str, value: str) -> str:
    return f' {name}="{esc(value)}"' if value else ""


def kv_table(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table; values are HTML already."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>' if rows else ""


def scalars(mapping: Any) -> list[tuple[str, str]]:
    """Every key of a JSON object with its value shown (nested values as compact JSON)."""
    if not isinstance(mapping, Mapping):
        return []
    out = []
    for key, value in mapping.items():
        if isinstance(value, (dict, list)):
            shown = f"<code>{esc(json.dumps(value, ensure_ascii=False)[:400])}</code>"
        else:
            shown = esc("–" if value is None else value)
        out.append((str(key), shown))
    return out


def section(title: str, body: str, section_id: str = "") -> str:
    if not body:
        return ""
    return f"<section{_attr('id', section_id)}><h2>{esc(title)}</h2>{body}</section>"


def badge(text: str, tone: str) -> str:
    """``tone``: ``ok``, ``warn``, ``bad`` or ``info``."""
    return f'<span class="badge {esc(tone)}">{esc(text)}</span>'


def others(document: Mapping[str, Any], known: Iterable[str]) -> str:
    """Fields this renderer does not know, shown as JSON so that newer reports lose nothing."""
    rest = {k: v for k, v in document.items() if k not in set(known)}
    if not rest:
        return ""
    text = json.dumps(rest, indent=1, ensure_ascii=False, default=str)
    if len(text) > 50_000:
        text = text[:50_000] + "\n… (cut at 50,000 characters; the JSON file has the rest)"
    return section(
        "Other fields", f"<details><summary>{len(rest)} field(s)</summary><pre>{esc(text)}</pre></details>"
    )


def _asset(name: str) -> str:
    return resources.files("precdiff.report.html").joinpath(name).read_text(encoding="utf-8")


def page(*, kind: str, title: str, body: str, source: str | None = None) -> str:
    """The complete HTML document: one file, no external resource, scripts allowed by hash only.

    The Content-Security-Policy forbids every remote load (``default-src 'none'``): images only from
    ``data:``, no fonts, no fetches, and no script other than the embedded one.
    """
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    origin = f" · from {esc(source)}" if source else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_asset('report.css')}</style></head>"
        f'<body data-kind="{esc(kind)}"><header><span class="brand">precdiff {esc(kind)}</span>'
        f'<span class="meta">report by precdiff {esc(__version__)}{origin}</span></header>'
        f'<main>{body}</main><div id="tip" role="tooltip"></div><script>{script}</script></body></html>\n'
    )
