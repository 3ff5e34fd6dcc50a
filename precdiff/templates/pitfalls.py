"""Recognise *why* two renders differ: one small detector per pitfall, listed in :data:`PITFALLS`.

Each detector is a module-level function ``(PitfallContext) -> list[Finding]`` (empty when the pitfall
is absent; ``detect_text.py``, ``detect_tokens.py``, ``detect_env.py``); the table gives each its stable ``name``, a title
and the fix to suggest. Detectors only read the context; they never render again (the one re-render
they need, a template side under the other Jinja renderer, is done beforehand: ``environment_check.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from precdiff.templates.detect_env import jinja_environment, jinja_environment_partial
from precdiff.templates.detect_text import (
    default_system_prompt,
    generation_prompt,
    ignored_switch,
    template_revision,
    thinking_block,
    tool_call_serialization,
    two_templates,
    whitespace_only,
)
from precdiff.templates.detect_tokens import (
    different_tokenizer,
    double_bos,
    special_token_ids,
    special_tokens_as_text,
)
from precdiff.templates.facts import Finding, PitfallContext, SideFacts
from precdiff.templates.results import Pitfall

__all__ = ["PITFALLS", "PitfallContext", "PitfallRule", "SideFacts", "recognise"]


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
        "jinja_environment",
        "plain Jinja2 renderer vs transformers' environment",
        "render the template as transformers does (trim_blocks, lstrip_blocks, its tojson, raise_exception, "
        "strftime_now), e.g. with apply_chat_template; a plain jinja2.Template is --a-renderer/--b-renderer "
        "plain-jinja2 here",
        jinja_environment,
        supersedes=("whitespace_only", "tool_call_serialization"),
    ),
    PitfallRule(
        "jinja_environment_partial",
        "plain Jinja2 renderer, plus another difference",
        "render the template as transformers does, then diff again to see the remaining cause",
        jinja_environment_partial,
    ),
    PitfallRule(
        "template_revision",
        "template revision (same family, different text)",
        "use the same template file on both sides (DIR:template.jinja)",
        template_revision,
    ),
    PitfallRule(
        "ignored_switch",
        "template ignores a switch",
        "use a template that reads the switch (the model's current Hub template rather than an old or "
        "GGUF-embedded copy: DIR:chat_template.jinja), or append the assistant header yourself",
        ignored_switch,
    ),
    PitfallRule(
        "two_templates",
        "two chat templates in one directory",
        "choose one explicitly on both sides (DIR:chat_template.jinja or DIR:tokenizer_config) and delete "
        "the other from the model directory",
        two_templates,
    ),
    PitfallRule(
        "special_tokens_as_text",
        "special-token text tokenized as plain text",
        "tokenize with special tokens parsed (llama.cpp parse_special=True; transformers "
        "split_special_tokens=False), or send the ids precdiff renders",
        special_tokens_as_text,
        supersedes=("different_tokenizer", "special_token_ids"),
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
