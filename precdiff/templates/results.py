"""Frozen result objects of ``precdiff.templates``; renderers and the JSON writer read them, never recompute.

``TokensDiff.to_dict()`` is the ``--json`` document specified in ``docs/tokens-json.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "SCHEMA_VERSION",
    "AlignmentRow",
    "Pitfall",
    "RenderWindow",
    "Rendering",
    "Segment",
    "SideReport",
    "TokenizerInfo",
    "TokensDiff",
    "Verdict",
]

#: Version of the ``--json`` document; bump on any incompatible change (docs/tokens-json.md).
SCHEMA_VERSION = 1

Verdict = Literal["identical", "same_text_different_ids", "different"]
SideKind = Literal["template", "text", "ids", "capture"]


@dataclass(frozen=True)
class Rendering:
    """One conversation rendered through a chat template and tokenized, as ``apply_chat_template`` does.

    ``token_ids`` come from ``tokenizer(text, add_special_tokens=add_special_tokens)``; transformers'
    ``apply_chat_template`` uses ``add_special_tokens=False`` because the template writes its own BOS.
    """

    text: str
    token_ids: list[int]
    template_sha256: str
    add_special_tokens: bool
    add_generation_prompt: bool = True
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    template_source: str = field(default="", repr=False)
    ignored_switches: tuple[str, ...] = ()  # switches given (or defaulted on) that the template never reads

    def to_dict(self) -> dict[str, Any]:
        return {
            "ignored_switches": list(self.ignored_switches),
            "text": self.text,
            "token_ids": list(self.token_ids),
            "template_sha256": self.template_sha256,
            "add_special_tokens": self.add_special_tokens,
            "add_generation_prompt": self.add_generation_prompt,
            "template_kwargs": dict(self.template_kwargs),
        }


@dataclass(frozen=True)
class TokenizerInfo:
    """Identity of a tokenizer: where it came from and a fingerprint of its vocabulary and rules."""

    source: str
    class_name: str
    vocab_size: int
    sha256: str
    bos_token: str | None
    bos_token_id: int | None
    eos_token: str | None
    eos_token_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "class_name": self.class_name,
            "vocab_size": self.vocab_size,
            "sha256": self.sha256,
            "bos_token": self.bos_token,
            "bos_token_id": self.bos_token_id,
            "eos_token": self.eos_token,
            "eos_token_id": self.eos_token_id,
        }


@dataclass(frozen=True)
class SideReport:
    """What one side (A or B) contributed, and how its text and ids were obtained.

    ``text_origin``: ``rendered`` (from a template), ``given`` (a text file or a capture), ``decoded``
    (ids decoded with ``tokenizer``), or ``none``. ``ids_origin``: ``tokenized`` (with ``tokenizer``),
    ``given`` (an ids file or a capture), or ``none`` (no tokenizer anywhere).
    ``tokenizer_borrowed`` is true when ``tokenizer`` belongs to the other side.
    """

    label: str
    spec: str
    kind: SideKind
    text: str | None
    token_ids: list[int] | None
    text_origin: Literal["rendered", "given", "decoded", "none"]
    ids_origin: Literal["tokenized", "given", "none"]
    tokenizer: TokenizerInfo | None
    tokenizer_borrowed: bool
    add_special_tokens: bool | None
    add_generation_prompt: bool | None
    template_sha256: str | None
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    renderer: str | None = None  # template sides: "transformers" or "plain-jinja2"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "spec": self.spec,
            "kind": self.kind,
            "text": self.text,
            "token_ids": None if self.token_ids is None else list(self.token_ids),
            "text_origin": self.text_origin,
            "ids_origin": self.ids_origin,
            "tokenizer": None if self.tokenizer is None else self.tokenizer.to_dict(),
            "tokenizer_borrowed": self.tokenizer_borrowed,
            "add_special_tokens": self.add_special_tokens,
            "add_generation_prompt": self.add_generation_prompt,
            "template_sha256": self.template_sha256,
            "template_kwargs": dict(self.template_kwargs),
            "renderer": self.renderer,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Segment:
    """A run of a render window; ``kind`` is ``text``, ``space`` (whitespace) or ``special`` (special token).

    ``shown`` is ``text`` with whitespace and invisible characters made visible (``·`` ``↵`` ``→`` ``⟨U+…⟩``).
    """

    kind: Literal["text", "space", "special"]
    text: str
    shown: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "shown": self.shown}


@dataclass(frozen=True)
class RenderWindow:
    """The characters ``[start, end)`` of one side's text around the first difference."""

    start: int
    end: int
    diff_at: int  # offset of the first differing character inside the window
    segments: tuple[Segment, ...]

    @property
    def shown(self) -> str:
        return "".join(s.shown for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "diff_at": self.diff_at,
            "shown": self.shown,
            "segments": [s.to_dict() for s in self.segments],
        }


@dataclass(frozen=True)
class AlignmentRow:
    """A token alignment row; ``op``: ``equal``, ``replace``, ``insert`` (only B), ``delete`` (only A)."""

    op: Literal["equal", "replace", "insert", "delete"]
    a_index: int | None
    a_id: int | None
    a_piece: str | None
    b_index: int | None
    b_id: int | None
    b_piece: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "a_index": self.a_index,
            "a_id": self.a_id,
            "a_piece": self.a_piece,
            "b_index": self.b_index,
            "b_id": self.b_id,
            "b_piece": self.b_piece,
        }


@dataclass(frozen=True)
class Pitfall:
    """A recognised cause of the difference; ``name`` is stable (see ``pitfalls.PITFALLS``)."""

    name: str
    title: str
    side: Literal["A", "B", "both"] | None
    evidence: str
    hint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "side": self.side,
            "evidence": self.evidence,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class TokensDiff:
    """The result of ``diff_conversation``: verdict, first differences, context, alignment and pitfalls.

    ``first_diff_char`` / ``first_diff_token`` are ``None`` when the texts / ids are equal or unknown.
    ``__bool__`` is true when the two sides feed the model the same tokens (verdict ``identical``).
    """

    verdict: Verdict
    first_diff_char: int | None
    first_diff_token: int | None
    a: SideReport
    b: SideReport
    window_a: RenderWindow | None
    window_b: RenderWindow | None
    alignment: tuple[AlignmentRow, ...]
    pitfalls: tuple[Pitfall, ...]
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return self.verdict == "identical"

    def __bool__(self) -> bool:
        return self.identical

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "precdiff.tokens",
            "schema_version": SCHEMA_VERSION,
            "verdict": self.verdict,
            "first_diff_char": self.first_diff_char,
            "first_diff_token": self.first_diff_token,
            "pitfalls": [p.to_dict() for p in self.pitfalls],
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "window_a": None if self.window_a is None else self.window_a.to_dict(),
            "window_b": None if self.window_b is None else self.window_b.to_dict(),
            "alignment": [r.to_dict() for r in self.alignment],
            "notes": list(self.notes),
        }
