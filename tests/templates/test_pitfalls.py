"""Every pitfall on a constructed case with real templates and tokenizers, plus identical controls."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from precdiff.templates import PITFALLS, diff_conversation, render_conversation
from precdiff.templates.diff import align_tokens, first_difference, make_visible, render_window, text_chunks

from .conftest import CHAT, TEMPLATE_FAMILIES

Write = Callable[[str, Any], Path]


def names(result: Any) -> list[str]:
    return [p.name for p in result.pitfalls]


@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_identical_controls(
    family: str, tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    tok, d = tokenizers[family], str(tokdirs[family])
    r = render_conversation(tok, CHAT)
    text_file = write("engine.txt", r.text)
    tokens_json = write("tokenize.json", {"count": len(r.token_ids), "tokens": r.token_ids})
    plain_ids = write("ids.txt", ", ".join(map(str, r.token_ids)))
    for other in (d, f"{d}:{d}/chat_template.jinja", str(text_file), str(tokens_json), str(plain_ids)):
        result = diff_conversation(CHAT, d, other)
        assert result.verdict == "identical", other
        assert result.identical and bool(result)
        assert result.first_diff_char is None and result.first_diff_token is None
        assert result.pitfalls == () and result.alignment == ()
        assert result.b.token_ids == r.token_ids


def test_default_system_prompt(tokdirs: dict[str, Path], write: Write) -> None:
    engine = write(
        "engine.txt",
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nParis.<|im_end|>\n<|im_start|>user\nAnd of Italy?"
        "<|im_end|>\n<|im_start|>assistant\n",
    )
    result = diff_conversation(CHAT, str(tokdirs["qwen2"]), str(engine))
    assert result.verdict == "different"
    assert names(result) == ["default_system_prompt"]
    assert result.pitfalls[0].side == "A"
    assert "You·are·Qwen,·created·by·Alibaba·Cloud" in result.pitfalls[0].evidence
    assert result.first_diff_char == len("<|im_start|>")
    assert result.first_diff_token == 1
    assert result.b.tokenizer_borrowed and result.b.text_origin == "given"
    assert any("uses side A's tokenizer" in n for n in result.b.notes)
    # control: an explicit system message means nothing is injected
    chat = [{"role": "system", "content": "Be brief."}, *CHAT]
    assert "default_system_prompt" not in names(diff_conversation(chat, str(tokdirs["qwen2"]), str(engine)))


def test_generation_prompt_missing_and_extra(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    d = str(tokdirs["phi3"])
    without = render_conversation(tokenizers["phi3"], CHAT, add_generation_prompt=False).text
    # the Phi-3.5 template writes eos_token instead of the prompt; an engine that drops both:
    engine = write("engine.txt", without.removesuffix("<|endoftext|>"))
    result = diff_conversation(CHAT, d, str(engine))
    assert names(result) == ["generation_prompt"]
    assert result.pitfalls[0].evidence == "A ends with the generation prompt '<|assistant|>↵'; B does not"
    with_prompt = write("with.txt", render_conversation(tokenizers["qwen2"], CHAT).text)
    result = diff_conversation(CHAT, str(with_prompt), str(tokdirs["qwen2"]), add_generation_prompt=False)
    assert names(result) == ["generation_prompt"]
    assert result.pitfalls[0].side == "A"
    assert result.pitfalls[0].evidence == (
        "A ends with the generation prompt '<|im_start|>assistant↵'; B does not"
    )


def test_double_bos(tokdirs: dict[str, Path]) -> None:
    # the older Phi-3-mini template writes bos_token and the tokenizer's add_special_tokens adds <s> too
    d = f"{tokdirs['phi3']}:{tokdirs['phi3']}/phi-3-mini-4k-instruct.jinja"
    result = diff_conversation(CHAT, d, d, b_add_special_tokens=True)
    assert result.verdict == "same_text_different_ids"
    assert names(result) == ["double_bos"]
    assert result.pitfalls[0].side == "B"
    assert result.pitfalls[0].evidence == (
        "B starts with <s> twice (ids 1, 1): the text already starts with it and "
        "add_special_tokens=True adds another"
    )
    assert result.first_diff_token == 1 and result.first_diff_char is None
    assert result.b.add_special_tokens is True and result.a.add_special_tokens is False
    assert result.alignment[0].op == "equal" and result.alignment[1].op == "insert"


def test_double_bos_in_engine_token_ids(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    d = f"{tokdirs['phi3']}:{tokdirs['phi3']}/phi-3-mini-4k-instruct.jinja"
    r = render_conversation(
        tokenizers["phi3"], CHAT, chat_template=(tokdirs["phi3"] / "phi-3-mini-4k-instruct.jinja").read_text()
    )
    ids = tokenizers["phi3"](r.text, add_special_tokens=True)["input_ids"]
    engine = write("tokenize.json", {"tokens": ids})
    result = diff_conversation(CHAT, d, str(engine))
    assert result.verdict == "different"
    assert names(result) == ["double_bos"]
    assert result.pitfalls[0].evidence == "B starts with <s> twice (ids 1, 1)"
    assert (
        result.b.text_origin == "decoded" and result.b.text is not None and result.b.text.startswith("<s><s>")
    )
    assert any("decoded from the ids with side A's tokenizer" in n for n in result.b.notes)


def test_whitespace_only_trailing_newline(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    text = render_conversation(tokenizers["qwen2"], CHAT).text
    engine = write("engine.txt", text + "\n")
    result = diff_conversation(CHAT, str(tokdirs["qwen2"]), str(engine))
    assert result.verdict == "different"
    assert names(result) == ["whitespace_only"]
    assert result.pitfalls[0].evidence == (
        f"only whitespace differs (1 region(s)): first at A[{len(text)}] '' vs B[{len(text)}] '↵'; "
        "B is a text file whose only extra character is a final newline"
    )


def test_whitespace_only_lstrip_blocks(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    # An engine that loads the template without lstrip_blocks keeps the indentation of `{%- ... %}` lines
    text = render_conversation(tokenizers["qwen2"], CHAT).text
    engine = write("engine.txt", text.replace("<|im_end|>", "<|im_end|>\n", 1))
    result = diff_conversation(CHAT, str(tokdirs["qwen2"]), str(engine))
    assert names(result) == ["whitespace_only"]


def test_thinking_block(tokdirs: dict[str, Path]) -> None:
    spec = f"{tokdirs['qwen2']}:{tokdirs['qwen2']}/qwen3.jinja"
    result = diff_conversation(CHAT, spec, spec, a_kwargs={"enable_thinking": False})
    assert result.verdict == "different"
    assert names(result) == ["thinking_block"]
    assert result.pitfalls[0].side == "A"
    assert "<think>↵↵</think>↵↵" in result.pitfalls[0].evidence
    assert "{'enable_thinking': False}" in result.pitfalls[0].evidence
    control = diff_conversation(CHAT, spec, spec, a_kwargs={"enable_thinking": True})
    assert control.identical


def test_tool_call_serialization(tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write) -> None:
    def chat(arguments: Any) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}
                ],
            },
            {"role": "tool", "content": "21C"},
        ]

    # the engine parsed the OpenAI argument string into a mapping before rendering; HF got the string
    engine = write("engine.txt", render_conversation(tokenizers["qwen2"], chat({"city": "Paris"})).text)
    result = diff_conversation(chat('{"city": "Paris"}'), str(tokdirs["qwen2"]), str(engine))
    assert names(result) == ["tool_call_serialization"]
    assert result.pitfalls[0].evidence == (
        'arguments of call \'get_weather\': A writes a JSON string \'"{\\"city\\":·\\"Paris\\"}"\', '
        'B writes a mapping \'{"city":·"Paris"}\''
    )
    # Qwen3's template writes a string verbatim: compact vs spaced JSON
    spec = f"{tokdirs['qwen2']}:{tokdirs['qwen2']}/qwen3.jinja"
    engine3 = write(
        "engine3.txt",
        render_conversation(
            tokenizers["qwen2"],
            chat({"city": "Paris"}),
            chat_template=(tokdirs["qwen2"] / "qwen3.jinja").read_text(),
        ).text,
    )
    result = diff_conversation(chat('{"city":"Paris"}'), spec, str(engine3))
    assert names(result) == ["tool_call_serialization"]
    assert "A writes a compact mapping" in result.pitfalls[0].evidence


def test_template_revision(tokdirs: dict[str, Path]) -> None:
    d = str(tokdirs["phi3"])
    # Phi-3.5 vs the older Phi-3-mini template: the older one starts with bos_token
    result = diff_conversation(CHAT, d, f"{d}:{d}/phi-3-mini-4k-instruct.jinja")
    assert result.verdict == "different"
    assert names(result) == ["template_revision"]
    assert "alike as text: the same family, a different revision" in result.pitfalls[0].evidence


def test_different_tokenizer_same_text(tokdirs: dict[str, Path]) -> None:
    q, f = tokdirs["qwen2"], tokdirs["falcon"]
    result = diff_conversation(CHAT, str(q), f"{f}:{q}/chat_template.jinja")
    assert result.verdict == "same_text_different_ids"
    assert names(result) == ["special_token_ids", "different_tokenizer"]
    assert result.pitfalls[0].evidence.startswith(
        "<|im_end|> is a special token for A but B's tokenizer splits it into 6 pieces"
    )
    assert result.pitfalls[1].evidence.startswith(
        "A and B use different tokenizers: Qwen2Tokenizer (151936 tokens) vs "
    )


def test_special_token_ids_differ(tokdirs: dict[str, Path]) -> None:
    chat = [{"role": "user", "content": "Say <|endoftext|> please"}]
    p, q = tokdirs["phi3"], tokdirs["qwen2"]
    result = diff_conversation(chat, str(p), f"{q}:{p}/chat_template.jinja")
    assert result.verdict == "same_text_different_ids"
    assert "<|endoftext|> is id 32000 in A's tokenizer and 151643 in B's" in result.pitfalls[0].evidence


def test_engine_ids_from_another_tokenizer(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    text = render_conversation(tokenizers["qwen2"], CHAT).text
    engine = write("ids.json", tokenizers["falcon"](text, add_special_tokens=False)["input_ids"])
    result = diff_conversation(CHAT, str(tokdirs["qwen2"]), str(engine))
    assert result.verdict == "different"
    assert names(result) == ["default_system_prompt", "different_tokenizer"] or names(result) == [
        "different_tokenizer"
    ]
    assert "the ids were made by a different tokenizer" in result.pitfalls[-1].evidence


def test_every_pitfall_has_a_case() -> None:
    tested = {
        "double_bos",
        "generation_prompt",
        "default_system_prompt",
        "whitespace_only",
        "thinking_block",
        "tool_call_serialization",
        "template_revision",
        "special_token_ids",
        "different_tokenizer",
        # tests/templates/test_pitfalls_real.py
        "ignored_switch",
        "two_templates",
        "special_tokens_as_text",
        # tests/templates/test_renderer.py
        "jinja_environment",
        "jinja_environment_partial",
    }
    assert {rule.name for rule in PITFALLS} == tested


def test_text_only_sides_without_any_tokenizer(write: Write) -> None:
    a, b = write("a.txt", "<s>[INST] hi [/INST]"), write("b.txt", "<s> [INST] hi [/INST]")
    result = diff_conversation(CHAT, str(a), str(b))
    assert result.verdict == "different" and result.first_diff_char == 3
    assert result.a.token_ids is None and result.first_diff_token is None
    assert names(result) == ["whitespace_only"]


def test_diff_helpers() -> None:
    assert first_difference("abc", "abd") == 2 and first_difference([1, 2], [1, 2, 3]) == 2
    assert first_difference("x", "x") is None and first_difference(None, "x") is None
    assert make_visible(" \n\t\u00a0\u200b") == "·↵→⟨U+00A0⟩⟨U+200B⟩"
    window = render_window("x" * 100 + "<|im_start|>abc", 112, ["<|im_start|>"], before=5, after=5)
    assert window.start == 100 and [s.kind for s in window.segments] == ["special", "text"]
    assert [(c.tag, c.a_start, c.a_end, c.b_start, c.b_end) for c in text_chunks("a b c", "a  b c")] == [
        ("insert", 2, 2, 2, 3)
    ]
    rows = align_tokens(list(range(10)), [0, 1, 2, 3, 4, 5, 99, 7, 8, 9], str, str, context=2, rows=4)
    assert [(r.op, r.a_index, r.b_id) for r in rows] == [
        ("equal", 4, 4),
        ("equal", 5, 5),
        ("replace", 6, 99),
        ("equal", 7, 7),
    ]
    assert json.loads(json.dumps(rows[2].to_dict()))["a_piece"] == "6"
