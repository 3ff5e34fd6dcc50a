"""Messages, tools and kwargs parsing, and render_conversation's contract for ``capture --messages``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from precdiff.errors import InputError, TemplateError
from precdiff.templates import (
    Rendering,
    load_messages,
    load_tools,
    parse_template_kwargs,
    render_conversation,
)

from .conftest import CHAT

Write = Callable[[str, Any], Path]


def test_load_messages_accepts_a_list_or_a_request_body(write: Write) -> None:
    assert load_messages(write("a.json", CHAT)) == CHAT
    assert load_messages(write("b.json", {"model": "m", "messages": CHAT})) == CHAT


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"role": "user"}, "must be a JSON list of objects like"),
        ([], "is an empty list; give at least one message"),
        (["hi"], "message 0 is a str, not an object"),
        ([{"role": "user", "content": 3}], "message 0 (user) has 'content' of type int"),
        ([{"role": "assistant"}], "message 0 (assistant) has neither 'content' nor 'tool_calls'"),
    ],
)
def test_load_messages_rejects_bad_shapes(write: Write, content: Any, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_messages(write("m.json", content))


def test_load_tools(write: Write) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert load_tools(write("t.json", {"tools": tools})) == tools
    with pytest.raises(InputError, match="must be a JSON list of tool schemas"):
        load_tools(write("u.json", {"name": "f"}))


def test_parse_template_kwargs() -> None:
    parsed = parse_template_kwargs(["enable_thinking=false", "n=3", "s=hello", "py=True", 'j={"a": 1}', "e="])
    assert parsed == {"enable_thinking": False, "n": 3, "s": "hello", "py": True, "j": {"a": 1}, "e": ""}


def test_render_conversation_contract(tokenizers: dict[str, Any]) -> None:
    r = render_conversation(
        tokenizers["qwen2"],
        CHAT,
        tools=None,
        add_generation_prompt=True,
        chat_template=None,
        template_kwargs=None,
    )
    assert isinstance(r, Rendering)
    assert r.text.endswith("<|im_start|>assistant\n") and r.token_ids[-3:] == [151644, 77091, 198]
    assert r.add_special_tokens is False and len(r.template_sha256) == 64
    with pytest.raises(Exception):  # frozen
        r.text = "x"  # type: ignore[misc]
    assert set(r.to_dict()) >= {"text", "token_ids", "template_sha256", "add_special_tokens"}


def test_render_conversation_errors(tokenizers: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="messages: message 0 has no string 'role'"):
        render_conversation(tokenizers["qwen2"], [{"content": "x"}])
    with pytest.raises(TemplateError, match="the chat template does not read 'nope'"):
        render_conversation(tokenizers["qwen2"], CHAT, template_kwargs={"nope": 1})
    tok = tokenizers["phi3"]
    with pytest.raises(TemplateError, match="no chat template"):
        render_conversation(_NoTemplate(tok), CHAT)


class _NoTemplate:
    """A tokenizer stand-in without a chat template (everything else delegated)."""

    chat_template = None
    name_or_path = "no-template-tokenizer"

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tok, name)
