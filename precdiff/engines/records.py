"""What a serving engine said, independent of its wire format, and reading response files.

Every format is parsed into :class:`EngineResponse`: the prompt tokens (when the engine echoed
them) and the generated tokens, each a :class:`Step` holding the token that stands at that position
and the engine's top candidates *for* that position (the distribution computed from the tokens
before it: the OpenAI ``echo`` convention). A token is known by its string, its bytes and/or its id,
whichever the engine returned; :mod:`precdiff.engines.tokenmap` turns them into ids.

A file holds one response (a JSON object), several (a JSON list, or JSON Lines: one object a line).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precdiff.errors import EngineResponseError

# File suffixes read as engine responses (captures are .h5).
RESPONSE_SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class Token:
    """One token as the engine named it: any of its string, bytes and id, and a logprob."""

    text: str | None
    token_id: int | None
    raw: bytes | None
    logprob: float | None


@dataclass(frozen=True)
class Step:
    """One position: the token standing there and the engine's top candidates for it (best first)."""

    token: Token
    top: tuple[Token, ...]


@dataclass(frozen=True)
class EngineResponse:
    """One request's answer, normalised.

    Attributes:
        source: ``path`` or ``path#record`` (JSON list / JSONL) for messages.
        format: the wire format it was parsed from (``openai-completion``, ``openai-chat``,
            ``sglang``, ``llamacpp``, ``tgi``).
        prompt: the prompt tokens with their candidates (``prompt[0].top`` is empty: nothing precedes
            it), or ``None`` when the engine did not return them.
        prompt_ids: the prompt's ids when the engine returned them apart from ``prompt``.
        generated: the generated tokens with their candidates.
        model: the model name the engine reported.
        notes: what precdiff corrected or could not use, for the report's warnings.
    """

    source: str
    format: str
    prompt: tuple[Step, ...] | None
    prompt_ids: tuple[int, ...] | None
    generated: tuple[Step, ...]
    model: str | None
    notes: tuple[str, ...] = ()


class Reader:
    """Typed access to one JSON record; every error names the file, record and field."""

    def __init__(self, source: str, record: Mapping[str, Any]):
        self.source = source
        self.record = record

    def fail(self, field: str, problem: str) -> EngineResponseError:
        return EngineResponseError(
            f"{self.source}: {field} {problem}; pass the engine's raw JSON response "
            "(see docs/engines.md for the request flags each engine needs)"
        )

    def get(self, value: Any, key: str | int, field: str, kind: type | tuple[type, ...]) -> Any:
        """``value[key]`` checked to be of ``kind`` (``field`` is its dotted path for messages)."""
        try:
            item = value[key]
        except (KeyError, IndexError, TypeError):
            raise self.fail(field, "is missing (truncated response?)") from None
        if not isinstance(item, kind) or (isinstance(item, bool) and bool not in _as_tuple(kind)):
            raise self.fail(field, f"should be {_kind_name(kind)}, got {type(item).__name__}")
        return item

    def optional(self, value: Any, key: str, field: str, kind: type | tuple[type, ...]) -> Any:
        """``value[key]`` if present and not null, else ``None``."""
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        return self.get(value, key, field, kind)

    def logprob(self, value: Any, field: str) -> float:
        number = self.get(value, "logprob", field + ".logprob", (int, float))
        return float(number)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def load_records(path: str | Path) -> list[tuple[str, Mapping[str, Any]]]:
    """The JSON objects of a response file, each with its label (``path`` or ``path#n``).

    Raises:
        EngineResponseError: the file is missing, empty, not JSON / JSON Lines, or holds no objects.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineResponseError(f"cannot read engine response {file}: {exc}") from None
    if not text.strip():
        raise EngineResponseError(f"engine response {file} is empty; save the engine's JSON answer into it")
    try:
        document: Any = json.loads(text)
        items = document if isinstance(document, list) else [document]
    except json.JSONDecodeError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2 or not (file.suffix.lower() == ".jsonl" or _is_json(lines[0][1])):
            raise EngineResponseError(
                f"engine response {file} is not valid JSON ({whole_error.msg} at line {whole_error.lineno} "
                f"column {whole_error.colno}; truncated?); save the complete response"
            ) from None
        items = []
        for number, line in lines:
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EngineResponseError(
                    f"engine response {file} line {number} is not valid JSON ({exc.msg}; truncated?); "
                    "a JSON Lines file holds one complete response object per line"
                ) from None
    if not items:
        raise EngineResponseError(f"engine response {file} holds an empty list; it needs one response object")
    labelled: list[tuple[str, Mapping[str, Any]]] = []
    for index, item in enumerate(items):
        label = str(file) if len(items) == 1 else f"{file}#{index}"
        if not isinstance(item, Mapping):
            raise EngineResponseError(
                f"{label} is a JSON {type(item).__name__}, not a response object; save the engine's JSON answer"
            )
        labelled.append((label, item))
    return labelled
