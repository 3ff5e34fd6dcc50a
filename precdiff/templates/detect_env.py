"""Pitfall detectors for the Jinja environment: transformers' vs a plain ``jinja2.Template`` (``renderers.py``).

They read ``SideFacts.renderer_check``: each template side rendered again with the other renderer
(``environment_check.py``). The environment explains the difference when that re-render *is* the other
side's text, and part of it when the re-render agrees with the other side further than the side's own render.
"""

from __future__ import annotations

from precdiff.templates.diff import common_prefix
from precdiff.templates.facts import Finding, PitfallContext, RendererCheck, SideFacts
from precdiff.templates.renderers import PLAIN_JINJA2

__all__ = ["jinja_environment", "jinja_environment_partial"]

# What each option of a plain jinja2.Template does differently, in words.
_PLAIN_OPTIONS = {
    "trim_blocks": "trim_blocks/lstrip_blocks off",
    "tojson": "Jinja2's tojson: keys sorted, <>&' and non-ASCII escaped as \\uXXXX",
    "helpers": "no raise_exception/strftime_now",
}
#: What to render with instead; transformers' _compile_jinja_template in one line.
FIX = (
    "render with transformers' settings (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, "
    "extensions=[loopcontrols]); tojson = json.dumps(ensure_ascii=False), no HTML escaping, keys in order; "
    "raise_exception and strftime_now defined) or call tokenizer.apply_chat_template"
)


def _checks(ctx: PitfallContext) -> list[tuple[SideFacts, SideFacts, RendererCheck]]:
    """(template side, other side, its re-render) for every side whose re-render can be compared."""
    out = []
    for side in ctx.sides():
        other, check = ctx.other(side), side.renderer_check
        if check is not None and check.text is not None and side.text is not None and other.text is not None:
            out.append((side, other, check))
    return out


def _plain_side(side: SideFacts, other: SideFacts, check: RendererCheck) -> tuple[SideFacts, str]:
    """The side that renders like a plain ``jinja2.Template``, and how (the options that matter here)."""
    plain = other if check.renderer == PLAIN_JINJA2.name else side
    options = [_PLAIN_OPTIONS[o] for o in check.changes] or list(_PLAIN_OPTIONS.values())
    return plain, "; ".join(options)


def jinja_environment(ctx: PitfallContext) -> list[Finding]:
    for side, other, check in _checks(ctx):
        if check.text != other.text:
            continue
        plain, how = _plain_side(side, other, check)
        return [
            (
                plain.label,
                f"side {plain.label} renders with plain Jinja2 ({how}): {side.label}'s template rendered by "
                f"the {check.renderer} renderer gives {other.label}'s text exactly; {FIX}",
            )
        ]
    return []


def jinja_environment_partial(ctx: PitfallContext) -> list[Finding]:
    checks = _checks(ctx)
    if any(check.text == other.text for _, other, check in checks):
        return []  # the whole difference: jinja_environment names it
    for side, other, check in checks:
        assert side.text is not None and other.text is not None and check.text is not None
        before, after = common_prefix(side.text, other.text), common_prefix(check.text, other.text)
        if after <= before:
            continue
        plain, how = _plain_side(side, other, check)
        return [
            (
                plain.label,
                f"part of the difference is the Jinja environment: side {plain.label} renders like plain "
                f"Jinja2 ({how}); {side.label}'s template rendered by the {check.renderer} renderer moves the "
                f"first difference from char {before} to char {after}, where another cause starts; {FIX}",
            )
        ]
    return []
