"""The plain-Jinja2 renderer (``--a-renderer plain-jinja2``) and the ``jinja_environment`` pitfalls.

References are rendered by Jinja2 itself: ``jinja2.Template(source)`` for the constructed templates written
here, and for the fixture templates an ``ImmutableSandboxedEnvironment()`` with Jinja2's default options
(``jinja2.Template``'s options, without running repository templates outside a sandbox).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import pytest

from precdiff.errors import InputError, TemplateError, TemplateSandboxError
from precdiff.templates import diff_conversation, render_conversation
from precdiff.templates.render import render_with_template
from precdiff.templates.renderers import PLAIN_JINJA2
from precdiff.templates.sandbox import render_template

from .conftest import CHAT, FIXTURES, TEMPLATE_FAMILIES
from .test_parity import CONVERSATIONS, KWARGS
from .test_sandbox import HOSTILE

Write = Callable[[str, Any], Path]
Cli = Callable[[list[Any]], Any]

TOOL_CALL = [
    {"role": "user", "content": "Find it"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "search", "arguments": {"query": "a < b & c's", "city": "Zürich"}}}
        ],
    },
]
# Only block tags followed by a newline: trim_blocks is all that differs.
TRIM_ONLY = "{% for m in messages %}\n<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}\n<|assistant|>\n"
# One line, no newline after a block tag: only tojson differs.
TOJSON_ONLY = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% if m.tool_calls %}"
    "{{ m.tool_calls[0].function.arguments | tojson }}{% endif %}{{ '\\n' }}{% endfor %}"
)


def names(result: Any) -> list[str]:
    return [p.name for p in result.pitfalls]


def _plain(source: str, messages: list[dict[str, Any]], **context: Any) -> str:
    return jinja2.Template(source).render(messages=messages, add_generation_prompt=True, **context)


def _side(tokdirs: dict[str, Path], write: Write, source: str) -> str:
    return f"{tokdirs['phi3']}:{write('template.jinja', source)}"


def _as_transformers_passes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # apply_chat_template drops None values and copies reasoning_content onto thinking/reasoning
    out = []
    for message in messages:
        plain = {k: v for k, v in message.items() if v is not None}
        if "reasoning_content" in plain:
            plain = {"thinking": plain["reasoning_content"], **plain}
        out.append(plain)
    return out


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_plain_renderer_equals_jinja2_defaults(
    tokenizers: dict[str, Any], family: str, conversation: str
) -> None:
    tok = tokenizers[family]
    source = (FIXTURES / family / "chat_template.jinja").read_text(encoding="utf-8")
    messages, tools = CONVERSATIONS[conversation]
    kwargs = KWARGS.get(family, {})
    context = {
        **tok.special_tokens_map,
        **kwargs,
        "messages": _as_transformers_passes(messages),
        "tools": tools,
        "documents": None,
        "add_generation_prompt": True,
    }
    try:
        expected = jinja2.sandbox.ImmutableSandboxedEnvironment().from_string(source).render(**context)
    except Exception:  # the template fails under Jinja2's defaults (raise_exception undefined, a type error)
        with pytest.raises(TemplateError):
            render_with_template(
                tok, source, messages, tools=tools, template_kwargs=kwargs, renderer=PLAIN_JINJA2
            )
        return
    ours = render_with_template(
        tok, source, messages, tools=tools, template_kwargs=kwargs, renderer="plain-jinja2", tokenize=False
    )
    assert ours.text == expected


def test_trim_blocks_only(tokdirs: dict[str, Path], write: Write) -> None:
    engine = write("engine.txt", _plain(TRIM_ONLY, CHAT))
    result = diff_conversation(CHAT, _side(tokdirs, write, TRIM_ONLY), str(engine))
    assert names(result) == ["jinja_environment"]  # supersedes whitespace_only
    pitfall = result.pitfalls[0]
    assert pitfall.side == "B"
    assert pitfall.evidence == (
        "side B renders with plain Jinja2 (trim_blocks/lstrip_blocks off): A's template rendered by the "
        "plain-jinja2 renderer gives B's text exactly; render with transformers' settings "
        "(ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]); "
        "tojson = json.dumps(ensure_ascii=False), no HTML escaping, keys in order; raise_exception and "
        "strftime_now defined) or call tokenizer.apply_chat_template"
    )
    # the same side rendered by the plain renderer is the engine's text
    same = diff_conversation(CHAT, _side(tokdirs, write, TRIM_ONLY), str(engine), a_renderer="plain-jinja2")
    assert same.identical and same.a.renderer == "plain-jinja2" and same.b.renderer is None
    assert any(
        n.startswith("rendered by the plain-jinja2 renderer (trim_blocks/lstrip_blocks off")
        for n in same.a.notes
    )


def test_tojson_escaping_and_key_order_only(tokdirs: dict[str, Path], write: Write) -> None:
    engine_text = _plain(TOJSON_ONLY, TOOL_CALL)
    assert '{"city": "Z\\u00fcrich", "query": "a \\u003c b \\u0026 c\\u0027s"}' in engine_text
    engine = write("engine.txt", engine_text)
    result = diff_conversation(TOOL_CALL, _side(tokdirs, write, TOJSON_ONLY), str(engine))
    assert names(result) == ["jinja_environment"]  # supersedes tool_call_serialization
    assert result.pitfalls[0].evidence.startswith(
        "side B renders with plain Jinja2 (Jinja2's tojson: keys sorted, <>&' and non-ASCII escaped as "
        "\\uXXXX): A's template rendered by the plain-jinja2 renderer gives B's text exactly; render with "
        "transformers' settings"
    )
    # transformers' side writes the arguments as given
    assert '{"query": "a < b & c\'s", "city": "Zürich"}' in (result.a.text or "")


def test_both_options_and_the_reverse_direction(tokdirs: dict[str, Path], write: Write) -> None:
    source = TRIM_ONLY.replace(
        "{{ m.content }}", "{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}"
    )
    messages = [*TOOL_CALL, {"role": "user", "content": "Thanks"}]
    side = _side(tokdirs, write, source)
    engine = write("engine.txt", render_with_template(None, source, messages, tokenize=False).text)
    # side A is rendered as a plain jinja2.Template would; B is transformers' text
    result = diff_conversation(messages, side, str(engine), a_renderer="plain-jinja2")
    assert names(result) == ["jinja_environment"]
    assert result.pitfalls[0].side == "A"
    assert result.pitfalls[0].evidence.startswith(
        "side A renders with plain Jinja2 (trim_blocks/lstrip_blocks off; Jinja2's tojson: keys sorted, <>&' "
        "and non-ASCII escaped as \\uXXXX): A's template rendered by the transformers renderer gives B's text "
        "exactly"
    )


def test_helpers_guarded_by_is_defined(tokdirs: dict[str, Path], write: Write) -> None:
    # Llama 3.2-style: strftime_now when the renderer defines it, a fixed date otherwise
    source = (
        "{%- if strftime_now is defined %}{%- set d = strftime_now('%Y') %}{%- else %}{%- set d = '1999' %}"
        "{%- endif %}{{- 'Date: ' + d }}{%- for m in messages %}{{- '|' + m.content }}{%- endfor %}"
    )
    engine = write("engine.txt", _plain(source, CHAT))
    result = diff_conversation(CHAT, _side(tokdirs, write, source), str(engine))
    assert names(result) == ["jinja_environment", "ignored_switch"]
    assert "(no raise_exception/strftime_now)" in result.pitfalls[0].evidence


def test_real_template_tools(tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write) -> None:
    messages, tools = CONVERSATIONS["tools_dict_arguments"]
    messages = [*messages[:2], {**messages[2], "tool_calls": TOOL_CALL[1]["tool_calls"]}, *messages[3:]]
    qwen = str(tokdirs["qwen2"])
    plain = render_with_template(
        tokenizers["qwen2"], (FIXTURES / "qwen2" / "chat_template.jinja").read_text(encoding="utf-8"),
        messages, tools=tools, renderer="plain-jinja2", tokenize=False,
    ).text  # fmt: skip
    assert "\\u003c" in plain and "Zürich" not in plain
    engine = write("engine.txt", plain)
    result = diff_conversation(messages, qwen, str(engine), tools=tools)
    assert names(result) == ["jinja_environment"]
    assert "(Jinja2's tojson: keys sorted" in result.pitfalls[0].evidence
    # Meta's Llama 3.1 template on the real Llama 3 vocabulary, tools in the user message
    llama = f"{tokdirs['llama3']}:{tokdirs['llama3']}/llama-3.1-8b-instruct.jinja"
    chat = [m for m in messages if m["role"] in ("system", "user")]
    result = diff_conversation(chat, llama, llama, tools=tools, b_renderer="plain-jinja2")
    assert names(result) == ["jinja_environment"] and result.pitfalls[0].side == "B"
    assert result.a.token_ids is not None and result.a.token_ids[0] == 128000  # <|begin_of_text|>


def test_partial_explanation(tokdirs: dict[str, Path], write: Write) -> None:
    plain = _plain(TRIM_ONLY, CHAT)
    engine = write("engine.txt", plain.replace("And of Italy?", "And of Spain?"))
    result = diff_conversation(CHAT, _side(tokdirs, write, TRIM_ONLY), str(engine))
    assert "jinja_environment" not in names(result)
    assert "jinja_environment_partial" in names(result)
    partial = next(p for p in result.pitfalls if p.name == "jinja_environment_partial")
    at = plain.index("Italy")
    assert (
        f"moves the first difference from char 0 to char {at}, where another cause starts" in partial.evidence
    )


def test_no_finding_when_the_environment_is_not_the_cause(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    # a transformers render with a different last message: the plain re-render does not get closer
    text = render_conversation(tokenizers["qwen2"], CHAT).text
    engine = write("engine.txt", text.replace("And of Italy?", "And of Spain?"))
    result = diff_conversation(CHAT, str(tokdirs["qwen2"]), str(engine))
    assert result.verdict == "different"
    assert not {"jinja_environment", "jinja_environment_partial"} & set(names(result))
    # a template the plain renderer cannot run at all (strftime_now unguarded in precdiff's Llama 3 one)
    llama3 = str(tokdirs["llama3"])
    result = diff_conversation(
        CHAT, llama3, llama3, a_kwargs=KWARGS["llama3"], b_kwargs={"date_string": "02 Dec 2026"}
    )
    assert not {"jinja_environment", "jinja_environment_partial"} & set(names(result))


def test_renderer_errors(tokdirs: dict[str, Path], write: Write, cli: Cli) -> None:
    qwen = str(tokdirs["qwen2"])
    with pytest.raises(InputError) as err:
        diff_conversation(CHAT, qwen, qwen, a_renderer="minijinja")
    assert str(err.value) == (
        "unknown chat-template renderer 'minijinja'; --a-renderer / a_renderer= takes one of: transformers, "
        "plain-jinja2"
    )
    text = write("engine.txt", "hello")
    with pytest.raises(InputError) as err:
        diff_conversation(CHAT, qwen, str(text), b_renderer="plain-jinja2")
    assert str(err.value) == (
        f"--b-renderer / b_renderer= was given but side B ('{text}') is text input, not a template; a "
        "renderer applies only to a tokenizer directory, DIR:TEMPLATE or GGUF side"
    )
    chat = write("chat.json", CHAT)
    result = cli(["--messages", chat, "--a", qwen, "--b", qwen, "--b-renderer", "jinja"])
    assert result.exit_code == 2
    assert "unknown chat-template renderer 'jinja'; --b-renderer / b_renderer= takes one of" in result.output


def test_cli_names_the_renderer(tokdirs: dict[str, Path], write: Write, cli: Cli) -> None:
    chat = write("chat.json", TOOL_CALL)
    side = _side(tokdirs, write, TOJSON_ONLY)
    result = cli(["--messages", chat, "--a", side, "--b", side, "--b-renderer", "plain-jinja2"])
    assert result.exit_code == 1, result.output
    assert "side B renders with plain Jinja2" in " ".join(result.output.split())
    assert cli(["--messages", chat, "--a", side, "--b", side, "--b-renderer", "transformers"]).exit_code == 0


def test_plain_renderer_syntax_and_helpers() -> None:
    context: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(TemplateError) as err:
        render_template("{% for m in messages %}{% break %}{% endfor %}", context, settings=PLAIN_JINJA2)
    assert str(err.value) == (
        "chat template has a Jinja syntax error for the plain-jinja2 renderer (trim_blocks/lstrip_blocks off, "
        "Jinja2's tojson (keys sorted, non-ASCII and <>&' escaped as \\uXXXX), no "
        "raise_exception/strftime_now/loopcontrols) on line 1: Encountered unknown tag 'break'. Jinja was "
        "looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is "
        "'for'.; fix the template"
    )
    with pytest.raises(TemplateError) as err:
        render_template("{{ raise_exception('bad roles') }}", context, settings=PLAIN_JINJA2)
    assert str(err.value) == "chat template raised an error while rendering: 'raise_exception' is undefined"


@pytest.mark.parametrize(
    ("source", "message"),
    [h for h in HOSTILE if "raise_exception" not in h[0]],
    ids=[h[0][:30] for h in HOSTILE if "raise_exception" not in h[0]],
)
def test_hostile_template_is_stopped_by_the_plain_renderer(source: str, message: str) -> None:
    with pytest.raises(TemplateSandboxError) as err:
        render_template(source, {"messages": [{"role": "user", "content": "hi"}]}, settings=PLAIN_JINJA2)
    assert str(err.value) == message
