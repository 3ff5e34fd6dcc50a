"""Side specs that need care: unloadable tokenizers, DIR:tokenizer_config, two templates, --json targets."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from precdiff.errors import TemplateError
from precdiff.templates import diff_conversation
from precdiff.templates.sides import load_side

from .conftest import CHAT, FIXTURES

Cli = Callable[[Sequence[str]], Any]
Write = Callable[[str, Any], Path]


def error_line(result: Any) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return str(lines[0])


def test_directory_with_only_a_compressed_tokenizer_is_refused(tmp_path: Path) -> None:
    packed = tmp_path / "falcon"
    shutil.copytree(FIXTURES / "falcon", packed)
    with pytest.raises(TemplateError) as err:
        load_side(str(packed), "A")
    assert str(err.value) == (
        f"'{packed.resolve()}' has no vocabulary file (one of tokenizer.json, tokenizer.model, vocab.json, "
        "vocab.txt, spiece.model, sentencepiece.bpe.model, tekken.json); it holds tokenizer.json.xz: unpack "
        "it to tokenizer.json first; without one transformers would build a tokenizer of the special tokens "
        "alone"
    )


def test_unloadable_tokenizer_is_one_whole_line(cli: Cli, tmp_path: Path, write: Write) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{" + "x" * 5000, encoding="utf-8")
    result = cli(["--messages", write("chat.json", CHAT), "--a", broken, "--b", broken])
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(f"TemplateError: cannot load a tokenizer from '{broken.resolve()}': ")
    assert line.endswith((".", "(…)")) or len(line) < 400  # never cut mid-sentence


def _two_template_dir(tokdirs: dict[str, Path], tmp_path: Path) -> Path:
    d = tmp_path / "qwen2-two"
    shutil.copytree(tokdirs["qwen2"], d)
    config = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = (d / "qwen3.jinja").read_text(encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return d


def test_two_templates_pitfall_and_choosing_one(tokdirs: dict[str, Path], tmp_path: Path) -> None:
    d = _two_template_dir(tokdirs, tmp_path)
    same = diff_conversation(CHAT, str(d), f"{d}:chat_template.jinja")
    assert same.identical
    assert [p.name for p in same.pitfalls] == ["two_templates"]
    assert same.pitfalls[0].side == "both"
    assert "A uses chat_template.jinja" in same.pitfalls[0].evidence
    chosen = diff_conversation(CHAT, f"{d}:chat_template.jinja", f"{d}:tokenizer_config")
    assert not chosen.identical
    names = [p.name for p in chosen.pitfalls]
    assert "two_templates" in names and "template_revision" in names
    assert "B uses tokenizer_config" in next(p for p in chosen.pitfalls if p.name == "two_templates").evidence
    assert chosen.b.notes[0] == "template read from tokenizer_config.json"


def test_tokenizer_config_side_without_a_config_template(tokdirs: dict[str, Path]) -> None:
    with pytest.raises(TemplateError) as err:
        load_side(f"{tokdirs['phi3']}:tokenizer_config", "B")
    assert str(err.value) == (
        f"side B: '{tokdirs['phi3']}/tokenizer_config.json' has no chat_template; pass the directory alone "
        "or DIR:TEMPLATE"
    )


def test_template_name_inside_the_directory(tokdirs: dict[str, Path]) -> None:
    side = load_side(f"{tokdirs['qwen2']}:qwen3.jinja", "A")
    assert side.template == (tokdirs["qwen2"] / "qwen3.jinja").read_text(encoding="utf-8")


def test_json_into_a_missing_folder_is_one_line_exit_2(
    cli: Cli, tokdirs: dict[str, Path], write: Write, tmp_path: Path
) -> None:
    chat = write("chat.json", CHAT)
    target = tmp_path / "missing_dir" / "x.json"
    result = cli(["--messages", chat, "--a", tokdirs["phi3"], "--b", tokdirs["phi3"], "--json", target])
    assert result.exit_code == 2
    assert error_line(result) == (
        f"InputError: output folder {target.parent} does not exist; create it or pick another --json"
    )


@pytest.mark.parametrize("which", ["messages", "b"])
def test_json_onto_an_input_is_refused_and_the_input_untouched(
    cli: Cli, tokdirs: dict[str, Path], write: Write, which: str
) -> None:
    chat = write("chat.json", CHAT)
    engine = write("engine.txt", "<|user|>\nhello<|end|>\n")
    before = {chat: chat.read_bytes(), engine: engine.read_bytes()}
    target = chat if which == "messages" else engine
    result = cli(["--messages", chat, "--a", tokdirs["phi3"], "--b", engine, "--json", target])
    assert result.exit_code == 2
    assert error_line(result) == (
        f"InputError: --json {target} would overwrite {target}, an input of this command; pick another path"
    )
    assert {p: p.read_bytes() for p in before} == before


def test_json_is_written_atomically(cli: Cli, tokdirs: dict[str, Path], write: Write, tmp_path: Path) -> None:
    chat = write("chat.json", CHAT)
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")
    result = cli(["--messages", chat, "--a", tokdirs["phi3"], "--b", tokdirs["phi3"], "--json", target])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8"))["verdict"] == "identical"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.json")) == []
