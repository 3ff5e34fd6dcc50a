"""Parse a ``--a`` / ``--b`` SPEC into a loaded side.

A SPEC is one of (checked in this order):

=========================  ====================================================================
``DIR``                    a tokenizer directory, rendered with its own chat template (the one
                           transformers 5.x picks: ``chat_template.jinja`` over ``tokenizer_config.json``)
``DIR:TEMPLATE``           a tokenizer directory rendered with a separate template file (a path, or a
                           file name inside DIR such as ``DIR:chat_template.jinja``)
``DIR:tokenizer_config``   a tokenizer directory rendered with the ``chat_template`` of its
                           ``tokenizer_config.json`` (its ``default`` one when it lists several)
``DIR:NAME``               one of the directory's named templates (``tool_use``, ``rag``, ...), as
                           ``apply_chat_template(chat_template=NAME)``; with several named templates and no
                           NAME, ``tool_use`` is used when tools are given and ``default`` otherwise
``MODEL.gguf``             the tokenizer and the chat template embedded in a GGUF file (read with the
                           ``gguf`` package and transformers' GGUF loader); ``MODEL.gguf:TEMPLATE`` and
                           ``MODEL.gguf:NAME`` (``tokenizer.chat_template.NAME``) too
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
from precdiff.store.manifest import Manifest
from precdiff.templates.render import resolve_template, template_sha256
from precdiff.templates.side_files import read_side_file

__all__ = ["LoadedSide", "load_side", "load_tokenizer"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# Files that hold a vocabulary; without one, transformers builds a tokenizer of the special tokens alone.
_VOCAB_FILES = (
    "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
    "sentencepiece.bpe.model", "tekken.json",
)  # fmt: skip
_CONFIG_TEMPLATE = "tokenizer_config"
_JINJA_TEMPLATE = "chat_template.jinja"
# How long an error quoted from transformers may be before it is cut at a sentence end.
_QUOTE_CHARS = 300
_TEMPLATE_SUFFIXES = (".jinja", ".j2", ".jinja2")
# A named template (``tool_use``, ``rag``): what DIR:NAME may give instead of a file.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


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
    # A directory with a chat_template.jinja and a different tokenizer_config.json chat_template:
    # (sha256 of the .jinja one, sha256 of the config one, which of the two this side uses).
    template_conflict: tuple[str, str, str] | None = None
    bos_token_id: int | None = None  # a capture's BOS id, from its manifest


def _manifest_bos(manifest: Manifest | None) -> int | None:
    """A capture's BOS id: its tokenizer's, else its model config's."""
    if manifest is None:
        return None
    value = manifest.tokenizer.bos_token_id if manifest.tokenizer is not None else None
    if type(value) is not int:
        value = manifest.model.config.get("bos_token_id")
    return value if type(value) is int else None


def _template_side(
    label: str,
    spec: str,
    tokenizer: Any,
    source: Path,
    template: str,
    note: str,
    conflict: tuple[str, str, str] | None = None,
) -> LoadedSide:
    """A side rendered by ``template`` with the tokenizer loaded from ``source``."""
    return LoadedSide(
        label=label,
        spec=spec,
        kind="template",
        tokenizer=tokenizer,
        tokenizer_source=str(source),
        template=template,
        template_sha256=template_sha256(template),
        notes=(note,),
        template_conflict=conflict,
    )


def _quote(exc: Exception) -> str:
    """An exception's message on one line, cut after a whole sentence when it is long."""
    flat = " ".join(str(exc).split())
    if len(flat) <= _QUOTE_CHARS:
        return flat
    cut = max(flat.rfind(". ", 0, _QUOTE_CHARS), flat.rfind("; ", 0, _QUOTE_CHARS))
    if cut > 0:
        return flat[: cut + 1] + " (…)"
    end = flat.find(". ")
    return flat if end == -1 else flat[: end + 1] + " (…)"


def _check_loaded(tokenizer: Any, source: str) -> Any:
    added = len(getattr(tokenizer, "added_tokens_decoder", None) or {})
    if len(tokenizer) <= max(added, 1):
        raise TemplateError(
            f"transformers read '{source}' as a tokenizer of only {len(tokenizer)} tokens, all of them added "
            "special tokens: its vocabulary file is missing or unreadable; pass a complete tokenizer"
        )
    return tokenizer


@lru_cache(maxsize=8)
def load_tokenizer(directory: str) -> Any:
    """Load a tokenizer from a local directory (cached; never downloads, never runs remote code).

    Raises:
        TemplateError: the directory has no tokenizer files, or transformers cannot load them.
    """
    path = Path(directory)
    if path.is_file():
        raise TemplateError(
            f"'{path}' is a file, not a tokenizer directory; pass a tokenizer directory, a GGUF file, a "
            "rendered-text file or a token-id file"
        )
    if not any((path / name).exists() for name in _TOKENIZER_FILES):
        raise TemplateError(
            f"'{path}' is a directory without tokenizer files ({', '.join(_TOKENIZER_FILES)}); "
            "pass a tokenizer directory, a rendered-text file or a token-id file"
        )
    if not any((path / name).exists() for name in _VOCAB_FILES):
        packed = sorted(p.name for p in path.glob("tokenizer.json.*"))
        hint = f"; it holds {', '.join(packed)}: unpack it to tokenizer.json first" if packed else ""
        raise TemplateError(
            f"'{path}' has no vocabulary file (one of {', '.join(_VOCAB_FILES)}){hint}; without one "
            "transformers would build a tokenizer of the special tokens alone"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types here; all mean "this is not loadable"
        raise TemplateError(
            f"cannot load a tokenizer from '{path}': {type(exc).__name__}: {_quote(exc)}"
        ) from None
    return _check_loaded(tokenizer, str(path))


@lru_cache(maxsize=4)
def load_gguf(path: str) -> tuple[Any, dict[str, str]]:
    """The tokenizer and the chat templates (``default`` and named ones) embedded in a GGUF file.

    Raises:
        InputError: the ``gguf`` package is missing.
        TemplateError: the file is not a GGUF that transformers can read a tokenizer from.
    """
    try:
        from gguf import GGUFReader
    except ImportError:
        raise InputError(
            f"'{path}' is a GGUF file, which needs the gguf package: pip install 'precdiff[gguf]'"
        ) from None
    from transformers import AutoTokenizer

    file = Path(path)
    try:
        fields = GGUFReader(file).fields
        templates = {
            name.removeprefix("tokenizer.chat_template").lstrip(".") or "default": bytes(
                field.parts[field.data[0]]
            ).decode("utf-8")
            for name, field in fields.items()
            # not "tokenizer.chat_templates", the list of names the gguf writer adds
            if name == "tokenizer.chat_template" or name.startswith("tokenizer.chat_template.")
        }
        tokenizer = AutoTokenizer.from_pretrained(
            str(file.parent), gguf_file=file.name, local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:  # gguf and transformers raise many types; all mean "not readable"
        raise TemplateError(
            f"cannot read a tokenizer from the GGUF file '{path}': {type(exc).__name__}: {_quote(exc)}"
        ) from None
    return _check_loaded(tokenizer, path), templates


def _split_template(spec: str, label: str) -> tuple[Path, str] | None:
    """Split ``DIR:TEMPLATE`` / ``MODEL.gguf:TEMPLATE`` into the source and the template's path or name."""
    for i, char in enumerate(spec):
        if char != ":" or i == 0:
            continue
        source, template = Path(spec[:i]), spec[i + 1 :]
        if source.is_dir() or (source.is_file() and source.suffix.lower() == ".gguf"):
            if template == _CONFIG_TEMPLATE or Path(template).is_file():
                return source, template
            if source.is_dir() and (source / template).is_file():
                return source, str(source / template)
            if _NAME.fullmatch(template):
                return source, template  # a named template, looked up once the tokenizer is loaded
            raise _not_found(label, template, spec, ())
    return None


def _not_found(label: str, template: str, spec: str, names: tuple[str, ...]) -> TemplateError:
    named = f", or one of its named templates ({', '.join(names)})" if names else ""
    return TemplateError(
        f"side {label}: template file not found: '{template}' (from '{spec}'); pass DIR:TEMPLATE "
        f"with an existing template file, a file name inside DIR, or DIR:{_CONFIG_TEMPLATE}{named}"
    )


def _named(templates: Any, name: str, label: str, spec: str) -> str:
    """The template called ``name`` among a tokenizer's (or a GGUF's) named templates."""
    names = tuple(sorted(templates)) if isinstance(templates, dict) else ()
    if name not in names:
        raise _not_found(label, name, spec, names)
    return str(templates[name])


def _config_template(directory: Path) -> str | None:
    """The ``chat_template`` of ``tokenizer_config.json`` (its ``default`` when it lists several)."""
    try:
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    return value if isinstance(value, str) and value else None


def _conflict(directory: Path) -> tuple[str, str] | None:
    """(sha256 of chat_template.jinja, sha256 of the config template) when both exist and differ."""
    jinja = directory / _JINJA_TEMPLATE
    config = _config_template(directory)
    if config is None or not jinja.is_file():
        return None
    text = jinja.read_text(encoding="utf-8")
    return None if text == config else (template_sha256(text), template_sha256(config))


def _directory_side(spec: str, label: str, directory: Path, template: str | None, tools: bool) -> LoadedSide:
    tokenizer = load_tokenizer(str(directory.resolve()))
    conflict = _conflict(directory)
    if template is None:
        text = resolve_template(tokenizer, tools=[] if tools else None)
        note, used = "the directory's own chat template", _JINJA_TEMPLATE
        if isinstance(tokenizer.chat_template, dict):
            name = next(k for k, v in tokenizer.chat_template.items() if v == text)
            note, used = f"the directory's chat template named '{name}'", name
    elif template == _CONFIG_TEMPLATE:
        config = _config_template(directory)
        if config is None:
            raise TemplateError(
                f"side {label}: '{directory}/tokenizer_config.json' has no chat_template; pass the "
                "directory alone or DIR:TEMPLATE"
            )
        text, note, used = config, "template read from tokenizer_config.json", _CONFIG_TEMPLATE
    elif not Path(template).is_file():
        text = _named(getattr(tokenizer, "chat_template", None), template, label, spec)
        note, used = f"the directory's chat template named '{template}'", template
    else:
        text, note = Path(template).read_text(encoding="utf-8"), f"template read from '{template}'"
        used = (
            _JINJA_TEMPLATE
            if Path(template).resolve() == (directory / _JINJA_TEMPLATE).resolve()
            else template
        )
    return _template_side(
        label, spec, tokenizer, directory, text, note, None if conflict is None else (*conflict, used)
    )


def _gguf_side(spec: str, label: str, path: Path, template: str | None, tools: bool) -> LoadedSide:
    tokenizer, templates = load_gguf(str(path.resolve()))
    if template is not None and not Path(template).is_file():
        return _template_side(
            label, spec, tokenizer, path, _named(templates, template, label, spec),
            f"the chat template '{template}' embedded in the GGUF file (tokenizer.chat_template.{template})",
        )  # fmt: skip
    if template is not None:
        return _template_side(
            label, spec, tokenizer, path, Path(template).read_text(encoding="utf-8"),
            f"template read from '{template}'; tokenizer from the GGUF file",
        )  # fmt: skip
    if "default" not in templates:
        raise TemplateError(
            f"side {label}: the GGUF file '{path}' has no embedded chat template (tokenizer.chat_template); "
            f"give one as {path}:TEMPLATE"
        )
    if tools and "tool_use" in templates:
        # as apply_chat_template and llama.cpp: the tool_use template when the request has tools
        return _template_side(
            label, spec, tokenizer, path, templates["tool_use"],
            "the chat template 'tool_use' embedded in the GGUF file (the request has tools)",
        )  # fmt: skip
    return _template_side(
        label, spec, tokenizer, path, templates["default"], "the chat template embedded in the GGUF file"
    )


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
        bos_token_id=_manifest_bos(manifest),
    )


def load_side(spec: str, label: str, tools: bool = False) -> LoadedSide:
    """Parse and load one SPEC (see the module docstring); ``tools``: the conversation has tools.

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
                "DIR:TEMPLATE, a GGUF file, a rendered-text file, a token-id file or a precdiff capture"
            )
        source, template = split
        if source.is_dir():
            return _directory_side(spec, label, source, template, tools)
        return _gguf_side(spec, label, source, template, tools)
    if path.is_dir():
        return _directory_side(spec, label, path, None, tools)
    if path.suffix.lower() == ".gguf":
        return _gguf_side(spec, label, path, None, tools)
    if path.suffix.lower() in _TEMPLATE_SUFFIXES:
        raise TemplateError(
            f"side {label}: '{spec}' is a template file, which needs a tokenizer; pass it as "
            f"DIR:{spec} with the tokenizer directory it belongs to"
        )
    with path.open("rb") as handle:
        head = handle.read(len(HDF5_SIGNATURE))
    if head == HDF5_SIGNATURE:
        return _load_capture(path, spec, label)
    text, ids, notes = read_side_file(path, spec, label)
    if ids is not None:
        return LoadedSide(label=label, spec=spec, kind="ids", ids=ids, notes=notes)
    return LoadedSide(label=label, spec=spec, kind="text", text=text, notes=notes)
