"""Render a template side again with the other renderer, to test whether the Jinja environment (transformers'
vs a plain ``jinja2.Template``) explains a difference. Detectors only read the result (``facts.RendererCheck``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from precdiff.errors import TemplateError
from precdiff.templates.facts import RendererCheck
from precdiff.templates.render import render_with_template
from precdiff.templates.renderers import PLAIN_JINJA2, RENDERERS, TRANSFORMERS, JinjaSettings, variant
from precdiff.templates.sandbox import SandboxLimits

__all__ = ["check_renderer"]

# The options in which the two renderers differ, by the name findings use.
_OPTIONS = ("trim_blocks", "tojson", "helpers")


def check_renderer(
    tokenizer: Any,
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    renderer: str,
    own_text: str,
    tools: Sequence[Mapping[str, Any]] | None,
    template_kwargs: Mapping[str, Any],
    add_generation_prompt: bool,
    limits: SandboxLimits | None,
) -> RendererCheck:
    """Render ``template`` with the renderer other than ``renderer``; name the options that matter.

    A template that fails under the other renderer gives ``text=None`` (a plain Jinja2 renderer has no
    ``raise_exception`` and no ``{% break %}``): that renderer cannot have produced the other side.
    """
    own = RENDERERS[renderer]
    other = PLAIN_JINJA2 if own == TRANSFORMERS else TRANSFORMERS

    def render(settings: JinjaSettings) -> str | None:
        try:
            return render_with_template(
                tokenizer,
                template,
                messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                template_kwargs=template_kwargs,
                limits=limits,
                tokenize=False,
                renderer=settings,
            ).text
        except TemplateError:
            return None

    text = render(other)
    if text is None or text == own_text:
        return RendererCheck(other.name, text)
    changes = tuple(
        option
        for option in _OPTIONS
        if render(variant(own, **{option: getattr(other, option)})) not in (own_text, None)
    )
    return RendererCheck(other.name, text, changes)
