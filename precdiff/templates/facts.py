"""What pitfall detectors know about the two sides (:class:`SideFacts`, :class:`PitfallContext`) and
the helpers they share. Detectors live in ``detect_text.py`` and ``detect_tokens.py``; the table that
names them is ``pitfalls.PITFALLS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from precdiff.templates.diff import Chunk, make_visible

__all__ = ["Finding", "PitfallContext", "RendererCheck", "SideFacts", "both", "short", "special_ids"]

Side = Literal["A", "B", "both"]
Finding = tuple[Side | None, str]


@dataclass(frozen=True)
class RendererCheck:
    """A template side rendered again with the other renderer (``environment_check.py``)."""

    renderer: str  # the renderer of the re-render: "plain-jinja2" or "transformers"
    text: str | None  # None when the template fails under that renderer
    # The options of that renderer that, switched one at a time, change this template's output
    # ("trim_blocks", "tojson", "helpers"); empty when only all of them together do.
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SideFacts:
    """What detectors may know about one side (``None`` where the side does not tell)."""

    label: Literal["A", "B"]
    kind: str
    text: str | None
    ids: list[int] | None
    tokenizer: Any | None = None  # own or borrowed
    tokenizer_sha256: str | None = None
    tokenizer_borrowed: bool = False
    template: str | None = None
    template_sha256: str | None = None
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    add_generation_prompt: bool | None = None
    generation_prompt: str | None = None  # what add_generation_prompt=True appends, for template sides
    add_special_tokens: bool | None = None
    ignored_switches: tuple[str, ...] = ()  # switches given (or defaulted on) that the template never reads
    given_ids_retokenize: list[int] | None = None  # given ids' decoded text, tokenized again
    text_decoded: bool = False  # text was decoded from given ids with a (possibly borrowed) tokenizer
    # (sha256 of chat_template.jinja, sha256 of tokenizer_config.json's template, the one this side uses)
    template_conflict: tuple[str, str, str] | None = None
    bos_token_id: int | None = None  # known without a tokenizer (a capture's manifest)
    renderer: str | None = None  # template sides: the renderer used ("transformers", "plain-jinja2")
    renderer_check: RendererCheck | None = None  # template sides of differing renders: the other renderer


@dataclass(frozen=True)
class PitfallContext:
    a: SideFacts
    b: SideFacts
    messages: Sequence[Mapping[str, Any]]
    chunks: tuple[Chunk, ...]  # differing text regions (empty if texts equal or unknown)

    def sides(self) -> tuple[SideFacts, SideFacts]:
        return self.a, self.b

    def other(self, side: SideFacts) -> SideFacts:
        return self.b if side is self.a else self.a

    def part(self, chunk: Chunk, side: SideFacts) -> str:
        text = side.text or ""
        return text[chunk.a_start : chunk.a_end] if side is self.a else text[chunk.b_start : chunk.b_end]


def short(text: str, limit: int = 60) -> str:
    shown = make_visible(text)
    return f"'{shown}'" if len(shown) <= limit else f"'{shown[:limit]}…' ({len(text)} chars)"


def both(found: list[Finding]) -> list[Finding]:
    if len(found) == 2 and found[0][0] != found[1][0]:
        return [("both", f"{found[0][1]}; {found[1][1]}")]
    return found


def special_ids(tokenizer: Any) -> dict[str, int]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {tok.content: int(i) for i, tok in decoder.items() if getattr(tok, "content", None)}


# ---- detectors -----------------------------------------------------------------------------------
