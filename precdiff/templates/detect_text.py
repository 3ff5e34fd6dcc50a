"""Pitfall detectors that read the rendered texts and the templates (see ``pitfalls.PITFALLS``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any

from precdiff.templates.facts import Finding, PitfallContext, both, short

__all__ = [
    "default_system_prompt",
    "generation_prompt",
    "ignored_switch",
    "template_revision",
    "thinking_block",
    "tool_call_serialization",
    "two_templates",
    "whitespace_only",
]

_THINK_MARKERS = ("<think>", "</think>", "<thinking>", "</thinking>", "<|channel|>analysis", "◁think▷")
_ASSISTANT_HEADER = re.compile(r"assistant|<start_of_turn>model|<｜Assistant｜>|<\|Assistant\|>", re.I)
_SYSTEM_MARKER = re.compile(r"system", re.I)
# Turn and control markers written literally in templates: how a template "family" is recognised.
_MARKER = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>|\[/?INST\]|<(?:start|end)_of_turn>|</?s>")


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
            f"{longer.label} ends with the generation prompt {short(extra)}; {shorter.label} does not",
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
                        f"have: {short(extra, 90)}",
                    )
                )
    return both(found[:2])


def whitespace_only(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a.text, ctx.b.text
    if not ctx.chunks or a is None or b is None or "".join(a.split()) != "".join(b.split()):
        return []
    first = ctx.chunks[0]
    detail = (
        f"first at A[{first.a_start}] {short(a[first.a_start : first.a_end])} vs "
        f"B[{first.b_start}] {short(b[first.b_start : first.b_end])}"
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
                        f"{side.label} has {short(extra, 50)} where the other side has "
                        f"{short(ctx.part(chunk, ctx.other(side)), 30)}{note}",
                    )
                )
        if found:
            break
    return both(found)


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
                    f"arguments of call '{name}': A writes {in_a[0]} {short(in_a[1], 50)}, "
                    f"B writes {in_b[0]} {short(in_b[1], 50)}",
                )
            ]
        if (in_a is None) != (in_b is None):
            has, lacks, form = ("A", "B", in_a) if in_a else ("B", "A", in_b)
            assert form is not None
            return [
                (
                    None,
                    f"arguments of call '{name}': {has} writes {form[0]} {short(form[1], 50)}; "
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


def _ready_for_assistant(text: str, messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether what follows the last message's content already cues the assistant (``[/INST]``, a header)."""
    content = messages[-1].get("content") if messages else None
    at = text.rfind(content) if isinstance(content, str) and content else -1
    after = text[at + len(str(content)) :] if at >= 0 else text[-64:]
    return bool(_ASSISTANT_HEADER.search(after)) or after.rstrip().endswith("[/INST]")


def ignored_switch(ctx: PitfallContext) -> list[Finding]:
    found: list[Finding] = []
    for side in ctx.sides():
        for switch in side.ignored_switches:
            if switch == "add_generation_prompt":
                # Mistral-style templates need no switch: their last user turn ends with the assistant cue.
                if side.text is None or _ready_for_assistant(side.text, ctx.messages):
                    continue
                found.append(
                    (
                        side.label,
                        f"{side.label}'s template ignores add_generation_prompt: the prompt never ends with "
                        "the assistant header",
                    )
                )
            else:
                value = side.template_kwargs.get(switch)
                found.append(
                    (
                        side.label,
                        f"{side.label}'s template ignores {switch}={json.dumps(value)}: it renders the same "
                        "whatever the switch says",
                    )
                )
    return both(found)


def two_templates(ctx: PitfallContext) -> list[Finding]:
    found: list[Finding] = []
    for side in ctx.sides():
        if side.template_conflict is None:
            continue
        jinja, config, used = side.template_conflict
        found.append(
            (
                side.label,
                f"{side.label}'s directory has two different chat templates: chat_template.jinja (sha256 "
                f"{jinja[:12]}; transformers 5.x and the 4.x releases that read it use this one) and "
                f"tokenizer_config.json's chat_template (sha256 {config[:12]}; older transformers and "
                f"engines that read only tokenizer_config.json use that one); {side.label} uses {used}",
            )
        )
    return both(found)
