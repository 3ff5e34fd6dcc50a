"""The failure kinds of issue 11 on the real families (Llama 3, Mistral, DeepSeek), each named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from precdiff.errors import TemplateError
from precdiff.store.manifest import Manifest
from precdiff.templates import diff_conversation, render_conversation

from .conftest import CHAT

Write = Callable[[str, Any], Path]
LLAMA3 = {"date_string": "01 Dec 2026"}
# A template (as some GGUF files embed) that never reads add_generation_prompt.
NO_SWITCH = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def names(result: Any) -> list[str]:
    return [p.name for p in result.pitfalls]


@pytest.mark.parametrize("family", ["llama3", "mistral", "deepseek"])
def test_special_tokens_reach_the_template(tokenizers: dict[str, Any], family: str) -> None:
    # bos_token / eos_token live as AddedToken objects in tokenizer_config.json; the templates read them.
    tok = tokenizers[family]
    chat = [*CHAT[:2], {"role": "user", "content": "And of Italy?"}]
    r = render_conversation(tok, chat, template_kwargs=LLAMA3 if family == "llama3" else None)
    assert r.text.startswith(tok.bos_token)
    assert r.token_ids[0] == tok.bos_token_id and r.token_ids[1] != tok.bos_token_id


@pytest.mark.parametrize("where", ["tokenizer_config", "special_tokens_map", "tokenizer_json_only"])
def test_special_tokens_wherever_they_live(tokdirs: dict[str, Path], tmp_path: Path, where: str) -> None:
    # Meta's Llama 3.1 template writes {{ bos_token }}: precdiff passes what transformers passes, whether
    # bos/eos are in tokenizer_config.json, in special_tokens_map.json, or nowhere but tokenizer.json.
    from precdiff.templates.sides import load_tokenizer

    directory = tmp_path / where
    shutil.copytree(
        tokdirs["llama3"], directory, ignore=shutil.ignore_patterns("*.xz", "chat_template.jinja")
    )
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    specials = {k: config.pop(k) for k in ("bos_token", "eos_token")}
    if where == "tokenizer_config":
        config.update(specials)
    elif where == "special_tokens_map":
        (directory / "special_tokens_map.json").write_text(json.dumps(specials), encoding="utf-8")
    config_path.write_text(json.dumps(config), encoding="utf-8")
    template = (directory / "llama-3.1-8b-instruct.jinja").read_text(encoding="utf-8")
    # AutoTokenizer.from_pretrained(local_files_only=True), cached: the side below loads the same object
    tok = load_tokenizer(str(directory.resolve()))
    text = tok.apply_chat_template(CHAT, chat_template=template, tokenize=False, add_generation_prompt=True)
    ids = tok.apply_chat_template(CHAT, chat_template=template, add_generation_prompt=True, return_dict=False)
    spec = f"{directory}:llama-3.1-8b-instruct.jinja"
    result = diff_conversation(CHAT, spec, spec)
    assert (result.a.text, result.a.token_ids) == (text, list(ids))
    assert text.startswith("<|begin_of_text|>") == (where != "tokenizer_json_only")


def test_user_kwarg_add_generation_prompt_wins(tokdirs: dict[str, Path]) -> None:
    d = str(tokdirs["llama3"])
    result = diff_conversation(
        CHAT, d, d, a_kwargs=LLAMA3, b_kwargs={**LLAMA3, "add_generation_prompt": False}
    )
    assert result.verdict == "different"
    assert names(result) == ["generation_prompt"]
    assert result.pitfalls[0].evidence == (
        "A ends with the generation prompt '<|start_header_id|>assistant<|end_header_id|>↵↵'; B does not"
    )
    assert result.a.add_generation_prompt is True and result.b.add_generation_prompt is False


def test_template_ignoring_add_generation_prompt_is_a_finding(tokdirs: dict[str, Path], write: Write) -> None:
    template = write("embedded.jinja", NO_SWITCH)
    d = str(tokdirs["qwen2"])
    chat = [{"role": "system", "content": "Be brief."}, *CHAT]
    result = diff_conversation(chat, d, f"{d}:{template}")
    assert names(result) == ["generation_prompt", "template_revision", "ignored_switch"]
    finding = next(p for p in result.pitfalls if p.name == "ignored_switch")
    assert finding.side == "B"
    assert finding.evidence == (
        "B's template ignores add_generation_prompt: the prompt never ends with the assistant header"
    )


def test_thinking_switch_the_template_ignores_is_a_finding_not_an_error(
    tokdirs: dict[str, Path], write: Write
) -> None:
    d = str(tokdirs["qwen2"])
    result = diff_conversation(CHAT, d, d, b_kwargs={"enable_thinking": False})
    assert result.identical
    assert names(result) == ["ignored_switch"]
    assert result.pitfalls[0].evidence == (
        "B's template ignores enable_thinking=false: it renders the same whatever the switch says"
    )
    with pytest.raises(TemplateError, match=r"does not read 'enable_thinkng'"):
        diff_conversation(CHAT, d, d, b_kwargs={"enable_thinkng": False})


def test_deepseek_thinking_kwarg(tokdirs: dict[str, Path]) -> None:
    d = str(tokdirs["deepseek"])
    result = diff_conversation(CHAT, d, d, b_kwargs={"thinking": True})
    assert result.verdict == "different"
    assert names(result) == ["thinking_block"]
    assert result.a.text is not None and result.a.text.endswith("<｜Assistant｜><think></think>")
    assert result.b.text is not None and result.b.text.endswith("<｜Assistant｜><think>")


def test_tool_call_arguments_as_string_are_double_encoded_by_deepseek(tokenizers: dict[str, Any]) -> None:
    # Passed as given: DeepSeek-V3.1's template applies tojson to a JSON string (double encoding), the
    # Llama-3-format template writes the string as is; both equal the dict form only where the template says so.
    def chat(arguments: Any) -> list[dict[str, Any]]:
        call = {"id": "call00001", "type": "function", "function": {"name": "f", "arguments": arguments}}
        return [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [call]}]

    as_dict, as_string = chat({"x": 1}), chat('{"x": 1}')
    deepseek = [render_conversation(tokenizers["deepseek"], c).text for c in (as_dict, as_string)]
    assert '<｜tool▁sep｜>{"x": 1}<｜tool▁call▁end｜>' in deepseek[0]
    assert '<｜tool▁sep｜>"{\\"x\\": 1}"<｜tool▁call▁end｜>' in deepseek[1]
    llama = [
        render_conversation(tokenizers["llama3"], c, template_kwargs=LLAMA3).text
        for c in (as_dict, as_string)
    ]
    assert llama[0] == llama[1]


def test_content_parts_are_passed_as_given(tokenizers: dict[str, Any]) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image"}]}]
    text = render_conversation(tokenizers["llama3"], parts, template_kwargs=LLAMA3).text
    assert "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" in text
    with pytest.raises(TemplateError, match="TypeError"):
        render_conversation(tokenizers["deepseek"], parts)  # its template concatenates content as a string


def test_special_tokens_tokenized_as_plain_text(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    tok = tokenizers["llama3"]
    text = render_conversation(tok, CHAT, template_kwargs=LLAMA3).text
    plain = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    engine = write("engine_ids.json", {"tokens": plain})
    result = diff_conversation(CHAT, str(tokdirs["llama3"]), str(engine), a_kwargs=LLAMA3)
    assert result.verdict == "same_text_different_ids"
    assert names(result) == ["special_tokens_as_text"]
    assert result.pitfalls[0].side == "B"
    assert "parse_special=False" in result.pitfalls[0].evidence


def test_double_bos_uses_the_capture_manifest_bos_id(
    tokdirs: dict[str, Path], tokenizers: dict[str, Any], tmp_path: Path
) -> None:
    from precdiff.store.writer import CaptureWriter

    tok = tokenizers["llama3"]
    r = render_conversation(tok, CHAT, template_kwargs=LLAMA3)
    path = tmp_path / "run.h5"
    with CaptureWriter(path) as writer:
        writer.write_manifest(Manifest.from_dict({"tokenizer": {"bos_token_id": tok.bos_token_id}}))
        writer.write_input([tok.bos_token_id, *r.token_ids], None)
        writer.finish()
    result = diff_conversation(CHAT, str(tokdirs["llama3"]), str(path), a_kwargs=LLAMA3)
    assert names(result) == ["double_bos"]
    assert result.pitfalls[0].side == "B"
    assert json.dumps(result.to_dict())  # the document stays serialisable
