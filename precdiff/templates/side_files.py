"""Read a text or token-id file given as a side (``sides.py``): what an engine logged or returned."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from precdiff.errors import InputError

__all__ = ["read_side_file"]

_IDS_KEYS = ("tokens", "input_ids", "prompt_token_ids", "token_ids", "ids")
_TEXT_KEYS = ("prompt", "text")
_INT_BODY = re.compile(r"[\d,\s]+")


def _plain_ints(text: str) -> list[int] | None:
    """Integers separated by whitespace and/or commas, optionally in one pair of brackets."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    if not body or not _INT_BODY.fullmatch(body):
        return None
    tokens = [t for t in re.split(r"[,\s]+", body) if t]
    return [int(t) for t in tokens] if tokens else None


def _parse_ids(value: Any) -> list[int] | None:
    if isinstance(value, dict):
        for key in _IDS_KEYS:
            if key in value:
                return _parse_ids(value[key])
        return None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # a batch of one
    if isinstance(value, list) and value and all(type(v) is int and v >= 0 for v in value):
        return [int(v) for v in value]
    return None


def read_side_file(path: Path, spec: str, label: str) -> tuple[str, list[int] | None, tuple[str, ...]]:
    """Return (text, ids, notes) for a text or ids file; exactly one of text/ids is meaningful."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"side {label}: cannot read '{spec}': {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"side {label}: '{spec}' is neither UTF-8 text, a token-id file nor a precdiff capture"
        ) from None
    plain = _plain_ints(text)
    if plain is not None:
        return "", plain, ("token ids read from a plain list",)
    stripped = text.strip()
    if stripped[:1] in ("[", "{", '"'):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        ids = _parse_ids(data)
        if ids is not None:
            return "", ids, ("token ids read from JSON",)
        if isinstance(data, str):
            return data, None, ("text unwrapped from a JSON string",)
        if isinstance(data, dict):
            for key in _TEXT_KEYS:
                if isinstance(data.get(key), str):
                    return data[key], None, (f"text read from the JSON key '{key}'",)
            if any(key in data for key in _IDS_KEYS):
                raise InputError(
                    f"side {label}: '{spec}' has a token-id key but its value is not a list of "
                    "non-negative integers"
                )
    return text, None, ("rendered text read byte-for-byte (a trailing newline counts)",)
