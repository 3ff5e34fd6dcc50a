"""Parse a ``--a`` / ``--b`` SPEC into a loaded side.

A SPEC is one of (checked in this order):

=========================  ====================================================================
``DIR``                    a tokenizer directory, rendered with its own chat template
``DIR:TEMPLATE``           a tokenizer directory rendered with a separate template file
``RUN.h5``                 a precdiff capture (HDF5 signature): its stored input ids and text
``FILE`` of token ids      a JSON list, ``{"tokens": [...]}`` (vLLM / llama.cpp ``/tokenize``),
                           ``{"input_ids"|"prompt_token_ids"|"token_ids"|"ids": [...]}``, or
                           integers separated by whitespace or commas
``FILE`` of text           anything else: the rendered prompt an engine logged, read byte-exact
                           (a JSON string or ``{"prompt": "..."}`` is unwrapped)
=========================  ====================================================================

Tokenizers are loaded with ``local_files_only=True`` and never with ``trust_remote_code``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from precdiff.errors import InputError, TemplateError
from precdiff.templates.render import resolve_template, template_sha256

__all__ = ["LoadedSide", "load_side", "load_tokenizer"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_IDS_KEYS = ("tokens", "input_ids", "prompt_token_ids", "token_ids", "ids")
_TEXT_KEYS = ("prompt", "text")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_TEMPLATE_SUFFIXES = (".jinja", ".j2", ".jinja2")
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


@dataclass(frozen=True)
class LoadedSide:
    """A side before rendering: what the SPEC gave (a template, a text, ids) and its own tokenizer."""

    label: str
    spec: str
    kind: Literal["template", "text", "ids", "capture"]
    tokenizer: Any | None = None
    tokenizer_source: str | None = None
    template: str | None = None
    template_sha256: str | None = None
    text: str | None = None
    ids: list[int] | None = None
    notes: tuple[str, ...] = ()


def _template_side(
    label: str, spec: str, tokenizer: Any, directory: Path, template: str, note: str
) -> LoadedSide:
    """A side rendered by ``template`` with the tokenizer of ``directory``."""
    return LoadedSide(
        label=label,
        spec=spec,
        kind="template",
        tokenizer=tokenizer,
        tokenizer_source=str(directory),
        template=template,
        template_sha256=template_sha256(template),
        notes=(note,),
    )


@lru_cache(maxsize=8)
def load_tokenizer(directory: str) -> Any:
    """Load a tokenizer from a local directory (cached; never downloads, never runs remote code).

    Raises:
        TemplateError: the directory has no tokenizer files, or transformers cannot load them.
    """
    path = Path(directory)
    if not any((path / name).exists() for name in _TOKENIZER_FILES):
        raise TemplateError(
            f"'{path}' is a directory without tokenizer files ({', '.join(_TOKENIZER_FILES)}); "
            "pass a tokenizer directory, a rendered-text file or a token-id file"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types here; all mean "this is not loadable"
        message = " ".join(str(exc).split())[:300]
        raise TemplateError(
            f"cannot load a tokenizer from '{path}': {type(exc).__name__}: {message}"
        ) from None


def _split_template(spec: str, label: str) -> tuple[Path, Path] | None:
    for i, char in enumerate(spec):
        if char != ":" or i == 0:
            continue
        directory, template = Path(spec[:i]), Path(spec[i + 1 :])
        if directory.is_dir():
            if not template.is_file():
                raise TemplateError(
                    f"side {label}: template file not found: '{template}' (from '{spec}'); "
                    "pass DIR:TEMPLATE with an existing template file"
                )
            return directory, template
    return None


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


def _read_file(path: Path, spec: str, label: str) -> tuple[str, list[int] | None, tuple[str, ...]]:
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


def _load_capture(path: Path, spec: str, label: str) -> LoadedSide:
    try:
        from precdiff.store import open_capture  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise InputError(
            f"side {label}: '{spec}' is an HDF5 file but precdiff.store is not available to read captures"
        ) from None
    with open_capture(path) as capture:
        ids = [int(i) for i in capture.input_ids]
        text = capture.input_text
        manifest = capture.manifest
    if not ids:
        raise InputError(
            f"side {label}: capture '{spec}' has no input ids (it was killed before writing them)"
        )
    tok = manifest.tokenizer if manifest is not None else None
    sha = tok.chat_template_sha256 if tok is not None else None
    notes = ("input ids and text read from a precdiff capture",)
    return LoadedSide(
        label=label,
        spec=spec,
        kind="capture",
        text=text if isinstance(text, str) else None,
        ids=ids,
        template_sha256=sha if isinstance(sha, str) else None,
        notes=notes,
    )


def load_side(spec: str, label: str) -> LoadedSide:
    """Parse and load one SPEC (see the module docstring).

    Raises:
        InputError: the path does not exist or the file cannot be read.
        TemplateError: a tokenizer directory without a template, a template file without a directory.
    """
    path = Path(spec)
    if not path.exists():
        split = _split_template(spec, label)
        if split is None:
            raise InputError(
                f"side {label}: no such file or directory: '{spec}'; pass a tokenizer directory, "
                "DIR:TEMPLATE, a rendered-text file, a token-id file or a precdiff capture"
            )
        directory, template_path = split
        tokenizer = load_tokenizer(str(directory.resolve()))
        return _template_side(
            label,
            spec,
            tokenizer,
            directory,
            template_path.read_text(encoding="utf-8"),
            f"template read from '{template_path}'",
        )
    if path.is_dir():
        tokenizer = load_tokenizer(str(path.resolve()))
        return _template_side(
            label, spec, tokenizer, path, resolve_template(tokenizer), "the directory's own chat template"
        )
    if path.suffix.lower() in _TEMPLATE_SUFFIXES:
        raise TemplateError(
            f"side {label}: '{spec}' is a template file, which needs a tokenizer; pass it as "
            f"DIR:{spec} with the tokenizer directory it belongs to"
        )
    with path.open("rb") as handle:
        head = handle.read(len(HDF5_SIGNATURE))
    if head == HDF5_SIGNATURE:
        return _load_capture(path, spec, label)
    text, ids, notes = _read_file(path, spec, label)
    if ids is not None:
        return LoadedSide(label=label, spec=spec, kind="ids", ids=ids, notes=notes)
    return LoadedSide(label=label, spec=spec, kind="text", text=text, notes=notes)
