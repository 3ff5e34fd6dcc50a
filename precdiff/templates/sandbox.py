"""The Jinja environment chat templates run in: transformers' options, inside a bounded sandbox.

A chat template is untrusted code from a model repository (or from an engine log). precdiff renders it
exactly as ``transformers`` 5.x does in ``_compile_jinja_template`` (``trim_blocks=True``,
``lstrip_blocks=True``, the ``loopcontrols`` extension, a ``{% generation %}`` tag, the ``tojson``
filter without HTML escaping, and the globals ``raise_exception``, ``strftime_now``, ``dict`` and
``namespace``), on :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`, and adds limits that
transformers does not have:

- access to an unsafe attribute (``__class__``, ``_private``, ``list.append``) raises at once instead of
  rendering as an empty string, so a template probing internals fails loudly;
- ``range()`` is capped at :attr:`SandboxLimits.max_range` items;
- no string or list built by an operator, a join, a filter, a method call or a namespace attribute set,
  and not the output itself, may exceed :attr:`SandboxLimits.max_chars` (checked *before* the
  allocation where the size is known up front: ``*``, ``+``, ``**``, ``~``, ``center``, ``replace``,
  format widths, and serialising a nested structure with ``tojson``, ``string``, ``join`` or ``{{ }}``);
- a memory budget: resident memory may grow by at most :attr:`SandboxLimits.max_memory` per render
  (``bounds.py``), which stops loops that keep many results each under the size cap;
- a step budget (template lines executed plus Python calls made while rendering) and a wall-clock
  budget, enforced by a trace function that is active only while a template renders;
- runaway recursion (a macro calling itself) is reported, not propagated as ``RecursionError``.

A second renderer, ``plain-jinja2`` (``renderers.RENDERERS``), renders the way an engine or script that calls
``jinja2.Template(source).render(...)`` does: ``trim_blocks`` and ``lstrip_blocks`` off, no
``loopcontrols`` extension and no ``{% generation %}`` tag, no ``raise_exception`` / ``strftime_now``,
and Jinja2's own ``tojson`` (``json.dumps`` with ``sort_keys=True`` and ASCII escapes, then ``<``, ``>``,
``&``, ``'`` escaped as ``\u003c`` …, returning ``Markup``). It runs in the same bounded sandbox with the
same limits; a template that mutates its input (``messages.append``), which an unsandboxed
``jinja2.Template`` would allow, fails here as it does in transformers.

Every violation raises :class:`~precdiff.errors.TemplateSandboxError`; every other rendering failure
(including ``raise_exception`` in the template) raises :class:`~precdiff.errors.TemplateError`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from types import FrameType
from typing import Any

import jinja2
import jinja2.ext
import jinja2.filters
import jinja2.meta
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

from precdiff.errors import TemplateError, TemplateSandboxError
from precdiff.templates import bounds
from precdiff.templates.bounds import DEFAULT_LIMITS, Budget, SandboxLimits
from precdiff.templates.renderers import TRANSFORMERS, JinjaSettings

__all__ = [
    "SandboxLimits",
    "compile_template",
    "render_template",
    "template_variables",
]

# The filename Jinja gives code compiled from a string; the tracer counts lines only in these frames.
_TEMPLATE_FILENAME = "<template>"


class _Tracer:
    """The thread's trace function while a template renders: one budget step per call and template line."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        self.budget.charge()
        if frame.f_code.co_filename == _TEMPLATE_FILENAME:
            return self._trace_lines
        return None

    def _trace_lines(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event == "line":
            self.budget.charge()
        return self._trace_lines


def _checked_join(parts: Iterable[Any]) -> str:
    items = bounds.bounded_list(parts, "a string")
    bounds.check_serialised(items, "a string")
    text = "".join(str(p) for p in items)
    return str(bounds.check_size(text, "a string"))


def _checked_markup_join(parts: Iterable[Any]) -> str:
    items = bounds.bounded_list(parts, "a string")
    _checked_join(items)  # size check only; markup_join keeps Jinja's escaping semantics
    return str(jinja2.runtime.markup_join(items))


# Filters that turn their input into text: a nested structure is sized before it is serialised.
_SERIALISING = frozenset(
    {
        "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "join", "list", "lower",
        "pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim", "truncate", "upper",
        "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    }
)  # fmt: skip


def _checked_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        args = tuple(
            bounds.bounded_list(a, f"the input of the '{name}' filter")
            if isinstance(a, Iterator) and name in _SERIALISING
            else a
            for a in args
        )
        if name in _SERIALISING:
            bounds.check_serialised([*args, *kwargs.values()], f"the result of the '{name}' filter")
        values = [a for a in args if isinstance(a, str)]
        if name == "format" and values:
            bounds.check_format_widths(values[0])
        if name in ("center", "indent", "wordwrap", "replace"):
            source = next((a for a in args if isinstance(a, str)), "")
            numbers = [a for a in list(args) + list(kwargs.values()) if isinstance(a, int)]
            lines = source.count("\n") + 1
            growth = max(numbers, default=0) * lines
            if name == "replace" and len(values) >= 3:
                growth = len(source) + source.count(values[1]) * (len(values[2]) - len(values[1]))
            if growth > bounds.limits().max_chars:
                raise bounds.too_big(growth, f"the result of the '{name}' filter")
        return bounds.check_size(func(*args, **kwargs), f"the result of the '{name}' filter")

    run.__name__ = getattr(func, "__name__", name)
    for attr in ("jinja_pass_arg",):  # keep pass_context / pass_environment markers
        if hasattr(func, attr):
            setattr(run, attr, getattr(func, attr))
    return run


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > bounds.limits().max_range:
        raise TemplateSandboxError(
            f"chat template called range() with {len(rng):,} items, above the sandbox limit of "
            f"{bounds.limits().max_range:,}"
        )
    return rng


def _finalize(value: Any) -> Any:
    # `{{ x }}` writes str(x): a nested structure is sized before it is turned into text.
    if isinstance(value, (list, tuple, dict)):
        bounds.check_serialised([value], "the text of an expression")
    return value


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}…{% endgeneration %}``: transformers' assistant-mask tag, rendered as its body."""

    tags = {"generation"}  # noqa: RUF012 - jinja2.ext.Extension declares it a set

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Callable[[], str]) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # As transformers: no HTML escaping (Jinja's own tojson escapes <, >, &, ').
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _TemplateDict:
    """``dict(...)`` for templates without exposing the ``dict`` type itself (as transformers)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """``namespace(...)`` that refuses underscore-prefixed attributes (as transformers)."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        bounds.check_size(value, f"namespace attribute {name!r}")
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore-prefixed attributes on a namespace, got {name!r}"
            )


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """transformers' sandbox, plus immediate errors on unsafe attributes and size checks."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed"
        )

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        bounds.pre_check_binop(operator, left, right)
        return bounds.check_size(
            super().call_binop(context, operator, left, right), f"the result of '{operator}'"
        )

    def call(
        __self,
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        args = bounds.pre_check_call(__obj, args, kwargs)
        return bounds.check_size(
            ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs),
            f"the result of calling {getattr(__obj, '__name__', 'a function')!r}",
        )


@lru_cache(maxsize=16)
def _build_environment(settings: JinjaSettings) -> _BoundedSandbox:
    extensions: list[type[jinja2.ext.Extension]] = (
        [_GenerationTag, jinja2.ext.loopcontrols] if settings.helpers else []
    )
    env = _BoundedSandbox(
        trim_blocks=settings.trim_blocks,
        lstrip_blocks=settings.trim_blocks,
        extensions=extensions,
        finalize=_finalize,
    )
    for name in sorted(_SERIALISING - {"tojson"}):
        env.filters[name] = _checked_filter(name, env.filters[name])
    tojson = _tojson if settings.tojson == "transformers" else jinja2.filters.do_tojson
    env.filters["tojson"] = _checked_filter("tojson", tojson)
    env.concat = _checked_join  # type: ignore[method-assign]
    if settings.helpers:
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
    # transformers' dict/namespace in every environment: the sandbox rules do not depend on the renderer.
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    env.globals["range"] = _safe_range
    return env


@lru_cache(maxsize=64)
def compile_template(source: str, settings: JinjaSettings = TRANSFORMERS) -> jinja2.Template:
    """Compile a chat template in the sandbox (cached by source text and settings).

    Raises:
        TemplateError: the template has a syntax error (with its line number).
    """
    try:
        template = _build_environment(settings).from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        where = (
            "" if settings == TRANSFORMERS else f" for the {settings.name} renderer ({settings.describe()})"
        )
        raise TemplateError(
            f"chat template has a Jinja syntax error{where} on line {exc.lineno}: {exc.message}; fix the template"
        ) from None
    # `~` compiles to str_join/markup_join looked up in the template's own module namespace.
    namespace = template.root_render_func.__globals__
    namespace["str_join"] = _checked_join
    namespace["markup_join"] = _checked_markup_join
    return template


@lru_cache(maxsize=64)
def template_variables(source: str, settings: JinjaSettings = TRANSFORMERS) -> frozenset[str]:
    """The variables a template reads from its context (``messages``, ``enable_thinking``, ...)."""
    compile_template(source, settings)  # raises the syntax error with a clear message first
    return frozenset(jinja2.meta.find_undeclared_variables(_build_environment(settings).parse(source)))


def _generate(template: jinja2.Template, context: dict[str, Any], limits: SandboxLimits) -> Iterator[str]:
    total = 0
    for chunk in template.generate(**context):
        total += len(chunk)
        if total > limits.max_chars:
            raise TemplateSandboxError(
                f"chat template output exceeded the sandbox limit of {limits.max_chars:,} characters"
            )
        yield chunk


def render_template(
    source: str,
    context: dict[str, Any],
    limits: SandboxLimits | None = None,
    settings: JinjaSettings = TRANSFORMERS,
) -> str:
    """Render ``source`` with ``context`` inside the bounded sandbox.

    Args:
        source: the Jinja chat template text.
        context: the variables (``messages``, ``tools``, ``add_generation_prompt``, special tokens, kwargs).
        limits: resource limits; ``None`` means :data:`DEFAULT_LIMITS`.
        settings: the renderer's Jinja options (``renderers.TRANSFORMERS``, ``renderers.PLAIN_JINJA2``).

    Returns:
        The rendered text.

    Raises:
        TemplateSandboxError: the template broke a sandbox rule or a limit.
        TemplateError: the template failed (syntax error, ``raise_exception``, a type error, ...).
    """
    template = compile_template(source, settings)
    budget = Budget(limits or DEFAULT_LIMITS)
    previous = sys.gettrace()
    bounds.active.append(budget)
    sys.settrace(_Tracer(budget).trace)
    try:
        return "".join(_generate(template, context, budget.limits))
    except TemplateError:
        raise
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateSandboxError(f"chat template attempted a forbidden operation: {exc}") from None
    except RecursionError:
        raise TemplateSandboxError(
            "chat template recursed too deeply (a macro that calls itself without end); fix the template"
        ) from None
    except MemoryError:
        raise TemplateSandboxError("chat template ran out of memory while rendering") from None
    except jinja2.exceptions.TemplateError as exc:
        raise TemplateError(f"chat template raised an error while rendering: {exc.message or exc}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
        raise TemplateError(
            f"chat template failed while rendering: {type(exc).__name__}: {exc}; the messages do not have "
            "the shape this template expects, or the template has a bug"
        ) from None
    finally:
        sys.settrace(previous)
        bounds.active.pop()
