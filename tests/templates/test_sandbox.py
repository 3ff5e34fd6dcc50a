"""The sandbox renders real templates exactly as transformers does, and stops hostile ones."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from precdiff.errors import TemplateError, TemplateSandboxError
from precdiff.templates import SandboxLimits, render_conversation
from precdiff.templates.sandbox import render_template

from .conftest import CHAT, FIXTURES

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {"role": "tool", "content": '{"temp": 21}'},
    {"role": "user", "content": "Thanks"},
]
THINK_CHAT = [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4", "reasoning_content": "simple sum"},
    {"role": "user", "content": "3+3?"},
]

# (family, template file or None for the directory's own, messages, tools, kwargs)
PARITY = [
    ("phi3", None, CHAT, None, {}),
    ("phi3", "phi-3-mini-4k-instruct.jinja", CHAT, None, {}),
    ("qwen2", None, CHAT, None, {}),
    ("qwen2", None, TOOL_CHAT, TOOLS, {}),
    ("qwen2", "qwen3.jinja", THINK_CHAT, None, {"enable_thinking": False}),
    ("qwen2", "qwen3.jinja", TOOL_CHAT, TOOLS, {}),
    ("qwen2", "deepseek-r1-distill-qwen.jinja", CHAT, None, {}),
    # a third tokenizer (Falcon-7B, no template of its own) with the other families' templates
    ("falcon", "../qwen2/chat_template.jinja", CHAT, None, {}),
    ("falcon", "../qwen2/qwen3.jinja", TOOL_CHAT, TOOLS, {}),
    ("falcon", "../phi3/chat_template.jinja", CHAT, None, {}),
]


@pytest.mark.parametrize("add_generation_prompt", [True, False], ids=["gen", "nogen"])
@pytest.mark.parametrize(
    ("family", "template", "messages", "tools", "kwargs"),
    PARITY,
    ids=[f"{p[0]}-{p[1] or 'own'}-{i}" for i, p in enumerate(PARITY)],
)
def test_render_matches_apply_chat_template(
    tokenizers: dict[str, Any],
    family: str,
    template: str | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    kwargs: dict[str, Any],
    add_generation_prompt: bool,
) -> None:
    tok = tokenizers[family]
    source = None if template is None else (FIXTURES / family / template).read_text(encoding="utf-8")
    ours = render_conversation(
        tok,
        messages,
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        chat_template=source,
        template_kwargs=kwargs,
    )
    text = tok.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        chat_template=source,
        tokenize=False,
        **kwargs,
    )
    ids = tok.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        chat_template=source,
        tokenize=True,
        return_dict=False,
        **kwargs,
    )
    assert ours.text == text
    assert ours.token_ids == list(ids)
    assert ours.add_special_tokens is False
    assert len(ours.template_sha256) == 64


def _render(source: str, limits: SandboxLimits | None = None, **context: Any) -> str:
    return render_template(source, {"messages": [{"role": "user", "content": "hi"}], **context}, limits)


HOSTILE = [
    (
        "{{ messages.__class__ }}",
        "chat template attempted a forbidden operation: access to attribute '__class__' of a 'list' object is "
        "not allowed",
    ),
    (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "chat template attempted a forbidden operation: access to attribute '__class__' of a 'str' object is "
        "not allowed",
    ),
    (
        "{{ raise_exception.__globals__ }}",
        "chat template attempted a forbidden operation: access to attribute '__globals__' of a 'function' "
        "object is not allowed",
    ),
    (
        "{{ namespace.__init__.__globals__['sys'] }}",
        "chat template attempted a forbidden operation: access to attribute '__init__' of a 'type' object is "
        "not allowed",
    ),
    (
        "{% set x = messages.append(1) %}",
        "chat template attempted a forbidden operation: access to attribute 'append' of a 'list' object is "
        "not allowed",
    ),
    (
        "{% set ns = namespace(_secret=1) %}",
        "chat template attempted a forbidden operation: chat templates cannot store underscore-prefixed "
        "attributes on a namespace, got '_secret'",
    ),
    (
        "{% for i in range(10**7) %}{% endfor %}",
        "chat template called range() with 10,000,000 items, above the sandbox limit of 65,536",
    ),
    (
        "{{ 'a' * 10**9 }}",
        "chat template tried to build a repeated sequence of 1,000,000,000 items, above the sandbox limit of "
        "16,000,000; a chat template never needs this",
    ),
    (
        "{{ 7 ** 100000000 }}",
        "chat template tried to compute a 300,000,000-bit power, above the sandbox limit of 65,536 bits; "
        "a chat template never needs this",
    ),
    (
        "{{ 'x'.center(2000000000) }}",
        "chat template tried to build a padded string of 2,000,000,000 items, above the sandbox limit of "
        "16,000,000; a chat template never needs this",
    ),
    (
        "{{ 'x'|center(2000000000) }}",
        "chat template tried to build the result of the 'center' filter of 2,000,000,000 items, above the "
        "sandbox limit of 16,000,000; a chat template never needs this",
    ),
    (
        "{{ '%0999999999d' % 1 }}",
        "chat template tried to build a formatted string of 999,999,999 items, above the sandbox limit of "
        "16,000,000; a chat template never needs this",
    ),
    (
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "chat template recursed too deeply (a macro that calls itself without end); fix the template",
    ),
]


@pytest.mark.parametrize(("source", "message"), HOSTILE, ids=[h[0][:30] for h in HOSTILE])
def test_hostile_template_is_stopped(source: str, message: str) -> None:
    with pytest.raises(TemplateSandboxError) as err:
        _render(source)
    assert str(err.value) == message


def test_doubling_string_is_stopped_before_it_is_allocated() -> None:
    source = (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    )
    with pytest.raises(TemplateSandboxError, match=r"tried to build a string of 16,777,216 items"):
        _render(source)
    with pytest.raises(TemplateSandboxError, match=r"tried to build a concatenation of 16,777,216 items"):
        _render(source.replace("ns.s ~ ns.s", "ns.s + ns.s"))


def test_runaway_loop_hits_the_step_budget() -> None:
    source = "{% for i in range(60000) %}{% for j in range(60000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateSandboxError) as err:
        _render(source, SandboxLimits(max_steps=200_000))
    assert str(err.value) == (
        "chat template exceeded the sandbox step budget (200,000 steps): it loops far more than any chat "
        "template needs; fix the template's loops"
    )


def test_runaway_loop_hits_the_time_budget() -> None:
    source = "{% for i in range(60000) %}{% for j in range(60000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateSandboxError, match=r"exceeded the sandbox time budget \(0\.2 s\)"):
        _render(source, SandboxLimits(max_steps=10**12, max_seconds=0.2))


def test_default_limits_stop_a_runaway_loop_quickly() -> None:
    with pytest.raises(TemplateSandboxError, match="step budget"):
        _render("{% for i in range(60000) %}{% for j in range(60000) %}{{ '' }}{% endfor %}{% endfor %}")


def test_output_cap() -> None:
    source = "{% for i in range(1000) %}{{ messages[0].content * 1000 }}{% endfor %}"
    with pytest.raises(TemplateSandboxError) as err:
        _render(source, SandboxLimits(max_chars=100_000))
    assert str(err.value) == "chat template output exceeded the sandbox limit of 100,000 characters"


def test_escape_attempt_never_runs_code_outside(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
        "{{ joiner.__init__.__globals__['os'].popen('touch " + str(marker) + "').read() }}",
        "{{ lipsum.__globals__['os'].system('touch " + str(marker) + "') }}",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch "
        + str(marker)
        + "') }}",
    ]
    for payload in payloads:
        with pytest.raises(TemplateSandboxError):
            _render(payload)
    assert not marker.exists()


def test_trace_function_is_restored() -> None:
    before = sys.gettrace()
    _render("{{ messages[0].content }}")
    with pytest.raises(TemplateSandboxError):
        _render("{{ messages.__class__ }}")
    assert sys.gettrace() is before


def test_template_errors_are_template_errors_not_sandbox_errors() -> None:
    with pytest.raises(TemplateError) as err:
        _render("{{ raise_exception('Conversation roles must alternate user/assistant') }}")
    assert not isinstance(err.value, TemplateSandboxError)
    assert str(err.value) == (
        "chat template raised an error while rendering: Conversation roles must alternate user/assistant"
    )
    with pytest.raises(TemplateError) as err:
        _render("{% if %}")
    assert str(err.value) == (
        "chat template has a Jinja syntax error on line 1: Expected an expression, got 'end of statement "
        "block'; fix the template"
    )


def test_transformers_helpers_are_available() -> None:
    out = _render(
        "{{ {'b': '<é>', 'a': 1} | tojson }}|{{ {'a': 1} | tojson(indent=1) }}|{{ dict(x=1)['x'] }}|"
        "{% set ns = namespace(n=1) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}|{{ strftime_now('%Y') | length }}|"
        "{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}|"
        "{% generation %}gen{% endgeneration %}"
    )
    assert out == '{"b": "<é>", "a": 1}|{\n "a": 1\n}|1|2|4|02|gen'


def test_trim_and_lstrip_blocks_match_transformers() -> None:
    assert _render("  {% if true %}\nA\n  {% endif %}\nB") == "A\nB"
