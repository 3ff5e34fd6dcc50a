"""Self-contained HTML reports of compare, invariance, determinism and tokens results.

Every renderer takes the JSON document of a result (``to_dict()`` / what ``--json`` writes: a plain
``dict``), so a saved JSON renders later exactly as a fresh result does (``precdiff report RESULT.json
--html FILE``). The page has no external resource: CSS, script and SVG charts are inside the file, and a
Content-Security-Policy forbids remote loads. Design and the keys read: ``docs/html-report.md``.

Example:
    >>> from precdiff.report.html import render_html
    >>> html = render_html({"schema": "precdiff.tokens", "verdict": "identical"})
    >>> html.startswith("<!doctype html>")
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from precdiff.errors import InputError
from precdiff.report.html.compare import render_compare
from precdiff.report.html.invariance import render_determinism, render_invariance
from precdiff.report.html.tokens import render_tokens
from precdiff.report.output import check_output_path, write_text_atomically

__all__ = ["kind_of", "render_file", "render_html", "write_html"]

_RENDERERS: dict[str, Callable[[dict[str, Any], str | None], str]] = {
    "compare": render_compare,
    "invariance": render_invariance,
    "determinism": render_determinism,
    "tokens": render_tokens,
}
_SCHEMAS = {
    "precdiff.invariance": "invariance",
    "precdiff.determinism": "determinism",
    "precdiff.tokens": "tokens",
}


def kind_of(document: Any) -> str | None:
    """``compare``, ``invariance``, ``determinism`` or ``tokens``; None when the document is none of them.

    Invariance, determinism and tokens documents name their ``schema``; a compare document has none and
    is recognised by its ``verdict`` object and ``layers``/``tensors`` lists.
    """
    if not isinstance(document, dict):
        return None
    schema = document.get("schema")
    if isinstance(schema, str):
        return _SCHEMAS.get(schema)
    if isinstance(document.get("verdict"), dict) and ("layers" in document or "tensors" in document):
        return "compare"
    return None


def render_html(document: dict[str, Any], source: str | None = None) -> str:
    """The HTML page of a result's JSON document.

    Args:
        document: ``result.to_dict()`` (compare: ``comparison_to_json(...)``) or a loaded ``--json`` file.
        source: shown in the header (e.g. the JSON file's name).

    Raises:
        InputError: the document is not a compare, invariance, determinism or tokens report.
    """
    kind = kind_of(document)
    if kind is None:
        schema = document.get("schema") if isinstance(document, dict) else None
        raise InputError(
            f"this JSON is not a precdiff compare, invariance, determinism or tokens report (schema "
            f"{schema!r}); pass a file written by their --json option"
        )
    return _RENDERERS[kind](document, source)


def write_html(
    document: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    source: str | None = None,
) -> Path:
    """Render ``document`` and write it to ``path`` atomically (temporary sibling + rename).

    Args:
        document: the result's JSON document (see :func:`render_html`).
        path: the HTML file to write; an existing file is replaced only once the new one is complete.
        inputs: the command's input files and folders (None entries are skipped): ``path`` may not be
            one of them, nor an existing file inside one of the folders (as for ``--json``).
        source: shown in the page header.

    Raises:
        InputError: ``path`` is one of ``inputs``, its folder is missing, or it cannot be written.
    """
    target = check_output_path(path, inputs=inputs, flag="--html")
    return write_text_atomically(render_html(document, source), target, flag="--html")


def render_file(json_path: str | os.PathLike[str], html_path: str | os.PathLike[str]) -> Path:
    """Read a saved ``--json`` report and write its HTML page (``precdiff report RESULT.json --html FILE``).

    Raises:
        InputError: the JSON file is missing, not JSON, not a known report, or ``html_path`` is bad.
    """
    source = Path(json_path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report {source} does not exist; pass a file written by --json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"cannot read report {source} as JSON ({exc}); pass a file written by --json"
        ) from None
    return write_html(document, html_path, inputs=(source,), source=source.name)
