"""Recognise *why* two renders differ: one small detector per pitfall, listed in :data:`PITFALLS`.

Each detector is a module-level function ``(PitfallContext) -> list[Finding]`` (empty when the pitfall
is absent); the table gives each its stable ``name``, a title and the fix to suggest. Detectors only
read the context; they never render or tokenize again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Literal

from precdiff.templates.diff import Chunk, make_visible
from precdiff.templates.results import Pitfall

__all__ = ["PITFALLS", "PitfallContext", "PitfallRule", "SideFacts", "recognise"]

Side = Literal["A", "B", "both"]
Finding = tuple[Side | None, str]

_THINK_MARKERS = ("<think>", "</think>", "<thinking>", "</thinking>", "<|channel|>analysis", "◁think▷")
_ASSISTANT_HEADER = re.compile(r"assistant|<start_of_turn>model|<｜Assistant｜>|<\|Assistant\|>", re.I)
_SYSTEM_MARKER = re.compile(r"system", re.I)
# Turn and control markers written literally in templates: how a template "family" is recognised.
_MARKER = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>|\[/?INST\]|<(?:start|end)_of_turn>|</?s>")


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


def _short(text: str, limit: int = 60) -> str:
    shown = make_visible(text)
    return f"'{shown}'" if len(shown) <= limit else f"'{shown[:limit]}…' ({len(text)} chars)"


def _both(found: list[Finding]) -> list[Finding]:
    if len(found) == 2 and found[0][0] != found[1][0]:
        return [("both", f"{found[0][1]}; {found[1][1]}")]
    return found


def _special_ids(tokenizer: Any) -> dict[str, int]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {tok.content: int(i) for i, tok in decoder.items() if getattr(tok, "content", None)}


# ---- detectors -----------------------------------------------------------------------------------


def double_bos(ctx: PitfallContext) -> list[Finding]:
    found: list[Finding] = []
    for side in ctx.sides():
        tok = side.tokenizer
        bos, bos_id = getattr(tok, "bos_token", None), getattr(tok, "bos_token_id", None)
        if side.ids and bos_id is not None and side.ids[:2] == [bos_id, bos_id]:
            why = ""
            if side.add_special_tokens and side.text and isinstance(bos, str) and side.text.startswith(bos):
                why = ": the text already starts with it and add_special_tokens=True adds another"
            found.append((side.label, f"{side.label} starts with {bos} twice (ids {bos_id}, {bos_id}){why}"))
        elif side.text and isinstance(bos, str) and bos and side.text.startswith(bos * 2):
            found.append((side.label, f"{side.label}'s text starts with {bos} twice"))
    return _both(found)


def generation_prompt(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a, ctx.b
    if not ctx.chunks or a.text is None or b.text is None:
        return []
    last = ctx.chunks[-1]
    if last.a_end != len(a.text) or last.b_end != len(b.text) or last.tag == "replace":
        return []
    longer = a if last.tag == "delete" else b
    extra = ctx.part(last, longer)
    known = {s.generation_prompt for s in (a, b) if s.generation_prompt}
    if extra not in known and not _ASSISTANT_HEADER.search(extra):
        return []
    shorter = ctx.other(longer)
    return [
        (
            longer.label,
            f"{longer.label} ends with the generation prompt {_short(extra)}; {shorter.label} does not",
        )
    ]


def default_system_prompt(ctx: PitfallContext) -> list[Finding]:
    if any(m.get("role") in ("system", "developer") for m in ctx.messages):
        return []
    found: list[Finding] = []
    for chunk in ctx.chunks:
        for side in ctx.sides():
            extra, other = ctx.part(chunk, side), ctx.part(chunk, ctx.other(side))
            if _SYSTEM_MARKER.search(extra) and not _SYSTEM_MARKER.search(other):
                found.append(
                    (
                        side.label,
                        f"{side.label} injects a system message the conversation does not "
                        f"have: {_short(extra, 90)}",
                    )
                )
    return _both(found[:2])


def whitespace_only(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a.text, ctx.b.text
    if not ctx.chunks or a is None or b is None or "".join(a.split()) != "".join(b.split()):
        return []
    first = ctx.chunks[0]
    detail = (
        f"first at A[{first.a_start}] {_short(a[first.a_start : first.a_end])} vs "
        f"B[{first.b_start}] {_short(b[first.b_start : first.b_end])}"
    )
    trailing = ""
    for side in ctx.sides():
        other = ctx.other(side).text or ""
        if side.kind == "text" and side.text == other + "\n":
            trailing = f"; {side.label} is a text file whose only extra character is a final newline"
    return [(None, f"only whitespace differs ({len(ctx.chunks)} region(s)): {detail}{trailing}")]


def thinking_block(ctx: PitfallContext) -> list[Finding]:
    found: list[Finding] = []
    for chunk in ctx.chunks:
        for side in ctx.sides():
            extra = ctx.part(chunk, side)
            marker = next((m for m in _THINK_MARKERS if m in extra), None)
            if marker and marker not in ctx.part(chunk, ctx.other(side)):
                kwargs = {k: v for k, v in side.template_kwargs.items() if "think" in k or "reason" in k}
                note = f" (its template kwargs: {kwargs})" if kwargs else ""
                found.append(
                    (
                        side.label,
                        f"{side.label} has {_short(extra, 50)} where the other side has "
                        f"{_short(ctx.part(chunk, ctx.other(side)), 30)}{note}",
                    )
                )
        if found:
            break
    return _both(found)


def _arguments(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            if not isinstance(call, Mapping):
                continue
            fn = call.get("function", call)
            if isinstance(fn, Mapping) and "arguments" in fn:
                calls.append((str(fn.get("name", "?")), fn["arguments"]))
    return calls


def _forms(arguments: Any) -> list[tuple[str, str]]:
    """Ways an engine may write tool-call arguments, most specific first: JSON-encoded strings, mappings."""
    obj = arguments
    if isinstance(arguments, str):
        try:
            obj = json.loads(arguments)
        except json.JSONDecodeError:
            return [("a JSON string", json.dumps(arguments, ensure_ascii=False))]
    mappings = [
        ("a mapping", json.dumps(obj, ensure_ascii=False)),
        ("a compact mapping", json.dumps(obj, ensure_ascii=False, separators=(",", ":"))),
        ("a key-sorted mapping", json.dumps(obj, ensure_ascii=False, sort_keys=True)),
        ("an ASCII-escaped mapping", json.dumps(obj)),
    ]
    strings = [("a JSON string", json.dumps(text, ensure_ascii=False)) for _, text in mappings]
    if isinstance(arguments, str):
        strings.insert(0, ("a JSON string", json.dumps(arguments, ensure_ascii=False)))
    return strings + mappings


def tool_call_serialization(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a.text, ctx.b.text
    if a is None or b is None or a == b:
        return []
    for name, arguments in _arguments(ctx.messages):
        forms = _forms(arguments)
        in_a = next((form for form in forms if form[1] in a), None)
        in_b = next((form for form in forms if form[1] in b), None)
        if in_a and in_b and in_a[1] != in_b[1]:
            return [
                (
                    None,
                    f"arguments of call '{name}': A writes {in_a[0]} {_short(in_a[1], 50)}, "
                    f"B writes {in_b[0]} {_short(in_b[1], 50)}",
                )
            ]
        if (in_a is None) != (in_b is None):
            has, lacks, form = ("A", "B", in_a) if in_a else ("B", "A", in_b)
            assert form is not None
            return [
                (
                    None,
                    f"arguments of call '{name}': {has} writes {form[0]} {_short(form[1], 50)}; "
                    f"{lacks} writes them some other way",
                )
            ]
    return []


def template_revision(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a, ctx.b
    if (
        not ctx.chunks
        or not a.template_sha256
        or not b.template_sha256
        or a.template_sha256 == b.template_sha256
    ):
        return []
    shas = f"A {a.template_sha256[:12]}, B {b.template_sha256[:12]}"
    if a.template is None or b.template is None:
        return [(None, f"the renders come from different template versions (sha256 {shas})")]
    ratio = SequenceMatcher(None, a.template, b.template).ratio()
    marks_a, marks_b = set(_MARKER.findall(a.template)), set(_MARKER.findall(b.template))
    shared = marks_a & marks_b
    overlap = len(shared) / max(len(marks_a | marks_b), 1)
    if ratio < 0.5 and (len(shared) < 2 or overlap < 0.5):
        return []  # unrelated templates: not a revision of one another
    return [
        (
            None,
            f"the two templates share the turn markers {', '.join(sorted(shared)) or '(none)'} and are "
            f"{ratio:.0%} alike as text: the same family, a different revision "
            f"(sha256 {shas}; {len(a.template)} vs {len(b.template)} chars)",
        )
    ]


def special_token_ids(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a, ctx.b
    if a.tokenizer is None or b.tokenizer is None or a.tokenizer_sha256 == b.tokenizer_sha256:
        return []
    ids_a, ids_b = _special_ids(a.tokenizer), _special_ids(b.tokenizer)
    texts = (a.text or "") + "\0" + (b.text or "")
    found: list[str] = []
    for token in sorted(set(ids_a) | set(ids_b)):
        if token not in texts:
            continue
        if token in ids_a and token in ids_b and ids_a[token] != ids_b[token]:
            found.append(f"{token} is id {ids_a[token]} in A's tokenizer and {ids_b[token]} in B's")
        elif (token in ids_a) != (token in ids_b):
            owner, other = (a, b) if token in ids_a else (b, a)
            splitter: Any = other.tokenizer
            pieces = len(splitter(token, add_special_tokens=False)["input_ids"])
            found.append(
                f"{token} is a special token for {owner.label} but {other.label}'s tokenizer "
                f"splits it into {pieces} pieces"
            )
    return (
        [(None, "; ".join(found[:3]) + (f" (+{len(found) - 3} more)" if len(found) > 3 else ""))]
        if found
        else []
    )


def different_tokenizer(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a, ctx.b
    if (
        a.tokenizer is not None
        and b.tokenizer is not None
        and not a.tokenizer_borrowed
        and not b.tokenizer_borrowed
        and a.tokenizer_sha256 != b.tokenizer_sha256
    ):
        sizes = (
            f"{type(a.tokenizer).__name__} ({len(a.tokenizer)} tokens) vs "
            f"{type(b.tokenizer).__name__} ({len(b.tokenizer)} tokens)"
        )
        return [
            (
                None,
                f"A and B use different tokenizers: {sizes}, sha256 {(a.tokenizer_sha256 or '')[:12]} vs "
                f"{(b.tokenizer_sha256 or '')[:12]}",
            )
        ]
    for side in ctx.sides():
        other = ctx.other(side).text
        if side.text_decoded and side.tokenizer_borrowed and side.text and other:
            alike = SequenceMatcher(None, side.text[:2000], other[:2000]).ratio()
            if alike < 0.5:
                return [
                    (
                        side.label,
                        f"{side.label}'s ids decoded with {ctx.other(side).label}'s tokenizer give "
                        f"text only {alike:.0%} like {ctx.other(side).label}'s render: the ids "
                        "were made by a different tokenizer",
                    )
                ]
        if (
            side.given_ids_retokenize is not None
            and side.ids is not None
            and side.given_ids_retokenize != side.ids
        ):
            return [
                (
                    side.label,
                    f"{side.label}'s given ids are not what the other side's tokenizer makes of the "
                    f"same text ({len(side.ids)} vs {len(side.given_ids_retokenize)} tokens): the "
                    "engine's tokenizer or its tokenization options differ",
                )
            ]
    return []


@dataclass(frozen=True)
class PitfallRule:
    name: str
    title: str
    hint: str
    detect: Callable[[PitfallContext], list[Finding]]
    supersedes: tuple[str, ...] = ()  # more general pitfalls this one explains when both are found


PITFALLS: tuple[PitfallRule, ...] = (
    PitfallRule(
        "double_bos",
        "double BOS",
        "tokenize template output with add_special_tokens=False "
        "(vLLM/SGLang completions: pass the ids, or drop bos_token from the template)",
        double_bos,
    ),
    PitfallRule(
        "generation_prompt",
        "generation prompt missing/extra",
        "render both sides with the same "
        "add_generation_prompt (--no-generation-prompt / add_generation_prompt=)",
        generation_prompt,
    ),
    PitfallRule(
        "default_system_prompt",
        "default system prompt injected",
        "pass an explicit system message so that neither template injects its default",
        default_system_prompt,
    ),
    PitfallRule(
        "whitespace_only",
        "whitespace/newline only",
        "compare trim_blocks/lstrip_blocks and trailing "
        "newlines of the engine's template loader; text files keep their final newline",
        whitespace_only,
    ),
    PitfallRule(
        "thinking_block",
        "thinking block difference",
        "set enable_thinking (or the template's "
        "reasoning switch) the same on both sides (--a-kwarg enable_thinking=false)",
        thinking_block,
    ),
    PitfallRule(
        "tool_call_serialization",
        "tool-call serialization",
        "send tool-call arguments in the same form to both (a JSON object, not a JSON-encoded string)",
        tool_call_serialization,
        supersedes=("whitespace_only",),
    ),
    PitfallRule(
        "template_revision",
        "template revision (same family, different text)",
        "use the same template file on both sides (DIR:template.jinja)",
        template_revision,
    ),
    PitfallRule(
        "special_token_ids",
        "different special-token ids",
        "load the tokenizer that matches the model's checkpoint on both sides",
        special_token_ids,
    ),
    PitfallRule(
        "different_tokenizer",
        "different tokenizer",
        "use the same tokenizer files (and the same add_special_tokens) on both sides",
        different_tokenizer,
    ),
)


def recognise(ctx: PitfallContext) -> tuple[Pitfall, ...]:
    """Run every detector of :data:`PITFALLS` in table order; drop pitfalls a more specific one explains."""
    found = [
        Pitfall(name=rule.name, title=rule.title, side=side, evidence=evidence, hint=rule.hint)
        for rule in PITFALLS
        for side, evidence in rule.detect(ctx)
    ]
    names = {p.name for p in found}
    explained = {general for rule in PITFALLS if rule.name in names for general in rule.supersedes}
    return tuple(p for p in found if p.name not in explained)
