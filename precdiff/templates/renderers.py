"""The chat-template renderers a side can use: transformers' Jinja environment, or a plain ``jinja2.Template``.

Engines and scripts that render chat templates themselves often call ``jinja2.Template(source).render(...)``
and so get Jinja2's defaults, not the environment transformers builds in ``_compile_jinja_template``. The
two differ in exactly the options of :class:`JinjaSettings`; ``sandbox.py`` builds one bounded sandbox per
settings value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from precdiff.errors import InputError

__all__ = [
    "DEFAULT_RENDERER",
    "PLAIN_JINJA2",
    "RENDERERS",
    "TRANSFORMERS",
    "JinjaSettings",
    "resolve_renderer",
]


@dataclass(frozen=True)
class JinjaSettings:
    """The Jinja options in which two chat-template renderers differ (see :data:`RENDERERS`)."""

    name: str
    trim_blocks: bool  # trim_blocks and lstrip_blocks together
    tojson: Literal["transformers", "jinja2"]  # transformers' json.dumps, or Jinja2's HTML-safe one
    helpers: bool  # raise_exception, strftime_now, loopcontrols and {% generation %}

    def describe(self) -> str:
        """The settings in words, for messages."""
        return ", ".join(
            (
                f"trim_blocks/lstrip_blocks {'on' if self.trim_blocks else 'off'}",
                "tojson without HTML escaping, keys in order, non-ASCII kept"
                if self.tojson == "transformers"
                else "Jinja2's tojson (keys sorted, non-ASCII and <>&' escaped as \\uXXXX)",
                "raise_exception/strftime_now/loopcontrols defined"
                if self.helpers
                else "no raise_exception/strftime_now/loopcontrols",
            )
        )


#: transformers' ``apply_chat_template`` environment (``_compile_jinja_template``).
TRANSFORMERS = JinjaSettings("transformers", trim_blocks=True, tojson="transformers", helpers=True)
#: ``jinja2.Template(source)``: Jinja2's defaults.
PLAIN_JINJA2 = JinjaSettings("plain-jinja2", trim_blocks=False, tojson="jinja2", helpers=False)
#: The renderers a template side can use (``--a-renderer`` / ``a_renderer=``), by name.
RENDERERS: dict[str, JinjaSettings] = {s.name: s for s in (TRANSFORMERS, PLAIN_JINJA2)}
DEFAULT_RENDERER = TRANSFORMERS.name


def variant(settings: JinjaSettings, **changes: Any) -> JinjaSettings:
    """``settings`` with some options changed (a re-render that tests one option at a time)."""
    return replace(settings, name=f"{settings.name} with {', '.join(sorted(changes))} changed", **changes)


def resolve_renderer(name: str | None, flag: str = "--a-renderer / a_renderer=") -> JinjaSettings:
    """The settings of the renderer called ``name`` (``None``: :data:`DEFAULT_RENDERER`).

    Raises:
        InputError: an unknown renderer name.
    """
    if name is None:
        return RENDERERS[DEFAULT_RENDERER]
    if name not in RENDERERS:
        raise InputError(
            f"unknown chat-template renderer {name!r}; {flag} takes one of: {', '.join(RENDERERS)}"
        )
    return RENDERERS[name]
