"""Parity with transformers: for every fixture family and conversation, precdiff renders and tokenizes
exactly as ``apply_chat_template`` does (text char for char, ids id for id), or fails where it fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from precdiff.errors import TemplateError
from precdiff.templates import diff_conversation, render_conversation

from .conftest import FIXTURES, TEMPLATE_FAMILIES

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}


def _tool_chat(arguments: Any) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,  # as OpenAI returns it; transformers drops None values
            "tool_calls": [
                {
                    "id": "call00001",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call00001", "content": '{"temp": 21, "unit": "C"}'},
        {"role": "assistant", "content": "It is 21 °C."},
        {"role": "user", "content": "And tomorrow?"},
    ]


# name -> (messages, tools)
CONVERSATIONS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {
    "no_system": (
        [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
        ],
        None,
    ),
    "system": (
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "  Colour of the sky? "},
        ],
        None,
    ),
    "multi_turn": (
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "Thanks — ça va? 東京"},
        ],
        None,
    ),
    "tools_dict_arguments": (_tool_chat({"city": "Paris", "unit": "C"}), [WEATHER]),
    "tools_string_arguments": (_tool_chat('{"city": "Paris", "unit": "C"}'), [WEATHER]),
    "content_parts": (
        [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Describe"}, {"type": "text", "text": " Rome."}],
            },
        ],
        None,
    ),
    "reasoning": (
        [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "A simple sum."},
            {"role": "user", "content": "3+3?"},
        ],
        None,
    ),
}
NAMED = {
    "default": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
    "tool_use": "Tools: {{ tools | map(attribute='function.name') | join(', ') }}\n"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
    "rag": "{% for d in documents %}[{{ d.title }}] {{ d.text }}\n{% endfor %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
}
# Template kwargs each family's template needs to be deterministic (llama3's template dates its prompt).
KWARGS: dict[str, dict[str, Any]] = {"llama3": {"date_string": "01 Dec 2026"}}


def _reference(
    tok: Any, messages: Any, tools: Any, gen: bool, kwargs: dict[str, Any]
) -> tuple[str, list[int]] | str:
    """transformers' text and ids, or the name of the exception it raised."""
    try:
        text = tok.apply_chat_template(
            messages, tools=tools, add_generation_prompt=gen, tokenize=False, **kwargs
        )
        ids = tok.apply_chat_template(
            messages, tools=tools, add_generation_prompt=gen, tokenize=True, return_dict=False, **kwargs
        )
    except Exception as exc:  # the template raised (raise_exception, a type error on content parts, ...)
        return type(exc).__name__
    return text, [int(i) for i in ids]


@pytest.mark.parametrize("gen", [True, False], ids=["gen", "nogen"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_render_equals_apply_chat_template(
    tokenizers: dict[str, Any], family: str, conversation: str, gen: bool
) -> None:
    tok = tokenizers[family]
    messages, tools = CONVERSATIONS[conversation]
    kwargs = KWARGS.get(family, {})
    expected = _reference(tok, messages, tools, gen, kwargs)
    if isinstance(expected, str):
        with pytest.raises(TemplateError):
            render_conversation(tok, messages, tools=tools, add_generation_prompt=gen, template_kwargs=kwargs)
        return
    ours = render_conversation(tok, messages, tools=tools, add_generation_prompt=gen, template_kwargs=kwargs)
    assert ours.text == expected[0]
    assert ours.token_ids == expected[1]


# Further real templates (paths under FIXTURES) with a fixture tokenizer, checked the same way with
# chat_template=: Meta's Llama 3.1 template on the real Llama 3 vocabulary, and falcon (no template of its own)
# with IBM Granite 3.3's.
EXTRA_TEMPLATES = (
    ("llama3", "llama3/llama-3.1-8b-instruct.jinja"),
    ("falcon", "falcon/granite-3.3-2b-instruct.jinja"),
)
DOCUMENTS = [
    {"title": "Paris", "text": "Paris is the capital of France <and> its largest city."},
    {"title": "Rome", "text": "Rome is the capital of Italy."},
]


@pytest.mark.parametrize("gen", [True, False], ids=["gen", "nogen"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize(("family", "template"), EXTRA_TEMPLATES)
def test_extra_template_equals_apply_chat_template(
    tokenizers: dict[str, Any], family: str, template: str, conversation: str, gen: bool
) -> None:
    tok = tokenizers[family]
    messages, tools = CONVERSATIONS[conversation]
    source = (FIXTURES / template).read_text(encoding="utf-8")
    kwargs = {**KWARGS.get(family, {}), "chat_template": source}
    expected = _reference(tok, messages, tools, gen, kwargs)
    options: dict[str, Any] = {"tools": tools, "add_generation_prompt": gen, "chat_template": source}
    if isinstance(expected, str):
        with pytest.raises(TemplateError):
            render_conversation(tok, messages, template_kwargs=KWARGS.get(family), **options)
        return
    ours = render_conversation(tok, messages, template_kwargs=KWARGS.get(family), **options)
    assert (ours.text, ours.token_ids) == expected


@pytest.mark.parametrize("gen", [True, False], ids=["gen", "nogen"])
def test_documents_equal_apply_chat_template(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Any, gen: bool
) -> None:
    tok = tokenizers["falcon"]
    source = (FIXTURES / "falcon" / "granite-3.3-2b-instruct.jinja").read_text(encoding="utf-8")
    messages = [
        {"role": "system", "content": "Answer from the documents."},
        {"role": "user", "content": "Capital?"},
    ]
    text = tok.apply_chat_template(
        messages, documents=DOCUMENTS, chat_template=source, add_generation_prompt=gen, tokenize=False
    )
    ids = tok.apply_chat_template(
        messages, documents=DOCUMENTS, chat_template=source, add_generation_prompt=gen, return_dict=False
    )
    assert "<and>" in text
    ours = render_conversation(
        tok,
        messages,
        chat_template=source,
        add_generation_prompt=gen,
        template_kwargs={"documents": DOCUMENTS},
    )
    assert (ours.text, ours.token_ids) == (text, list(ids))
    spec = f"{tokdirs['falcon']}:{FIXTURES / 'falcon' / 'granite-3.3-2b-instruct.jinja'}"
    result = diff_conversation(
        messages, spec, spec, a_kwargs={"documents": DOCUMENTS}, add_generation_prompt=gen
    )
    assert result.a.text == text and result.a.token_ids == list(ids)
    assert result.verdict == "different"  # side B has no documents
    assert "Paris is the capital" not in (result.b.text or "")


def test_named_templates_equal_apply_chat_template(tokdirs: dict[str, Path], tmp_path: Path) -> None:
    from precdiff.templates.sides import load_tokenizer

    directory = tmp_path / "named"
    shutil.copytree(tokdirs["phi3"], directory, ignore=shutil.ignore_patterns("*.jinja"))
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = [
        {"name": "default", "template": NAMED["default"]},
        {"name": "tool_use", "template": NAMED["tool_use"]},
        {"name": "rag", "template": NAMED["rag"]},
    ]
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    # AutoTokenizer.from_pretrained(local_files_only=True), cached: the sides below load the same object
    tok = load_tokenizer(str(directory.resolve()))
    assert isinstance(tok.chat_template, dict) and sorted(tok.chat_template) == ["default", "rag", "tool_use"]
    messages, tools = CONVERSATIONS["tools_dict_arguments"]
    d = str(directory)
    cases = [
        # (side spec, tools, documents, apply_chat_template's keyword arguments)
        (d, None, None, {}),
        (d, tools, None, {"tools": tools}),  # tools given: transformers picks tool_use
        (d, [], None, {"tools": []}),  # even an empty list, as transformers does
        (f"{d}:rag", None, DOCUMENTS, {"chat_template": "rag", "documents": DOCUMENTS}),
        (f"{d}:default", tools, None, {"tools": tools, "chat_template": "default"}),
    ]
    for spec, given_tools, documents, options in cases:
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **options)
        kwargs = {"documents": documents} if documents else None
        result = diff_conversation(messages, spec, spec, tools=given_tools, a_kwargs=kwargs, b_kwargs=kwargs)
        assert result.identical and result.a.text == expected, spec
    assert "Tools: get_weather" in str(diff_conversation(messages, d, d, tools=tools).a.text)
    with pytest.raises(TemplateError) as err:
        diff_conversation(messages, f"{d}:summary", d)
    assert str(err.value) == (
        f"side A: template file not found: 'summary' (from '{d}:summary'); pass DIR:TEMPLATE with an existing "
        "template file, a file name inside DIR, or DIR:tokenizer_config, or one of its named templates "
        "(default, rag, tool_use)"
    )


def test_every_family_renders_most_conversations(tokenizers: dict[str, Any]) -> None:
    # The parity test above must compare renders, not only matching failures.
    for family in TEMPLATE_FAMILIES:
        rendered = [
            name
            for name, (messages, tools) in CONVERSATIONS.items()
            if not isinstance(
                _reference(tokenizers[family], messages, tools, True, KWARGS.get(family, {})), str
            )
        ]
        assert len(rendered) >= 4, (family, rendered)


@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_tokens_command_side_equals_apply_chat_template(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], family: str
) -> None:
    messages, tools = CONVERSATIONS["system"]
    kwargs = KWARGS.get(family, {})
    result = diff_conversation(
        messages, str(tokdirs[family]), str(tokdirs[family]), a_kwargs=kwargs, b_kwargs=kwargs
    )
    expected = _reference(tokenizers[family], messages, tools, True, kwargs)
    assert not isinstance(expected, str)
    assert result.identical
    assert (result.a.text, result.a.token_ids) == expected


def test_fixture_templates_are_the_shipped_files() -> None:
    for family in TEMPLATE_FAMILIES:
        assert (FIXTURES / family / "chat_template.jinja").is_file()
