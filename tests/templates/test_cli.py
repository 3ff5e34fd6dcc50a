"""``precdiff tokens`` end to end: exit codes 0/1/2, the one-line errors, --json, the example README."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from precdiff.store.manifest import Manifest
from precdiff.templates import SCHEMA_VERSION, render_conversation

from .conftest import CHAT

Cli = Callable[[Sequence[str]], Any]
Write = Callable[[str, Any], Path]
ROOT = Path(__file__).resolve().parents[2]


def error_line(result: Any) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return str(lines[0])


def test_identical_exit_0(
    cli: Cli, tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write
) -> None:
    chat = write("chat.json", CHAT)
    engine = write("engine.txt", render_conversation(tokenizers["qwen2"], CHAT).text)
    result = cli(["--messages", chat, "--a", tokdirs["qwen2"], "--b", engine])
    assert result.exit_code == 0, result.output
    assert "identical" in result.output


def test_different_exit_1_and_json(cli: Cli, tokdirs: dict[str, Path], write: Write, tmp_path: Path) -> None:
    chat = write("chat.json", CHAT)
    spec = f"{tokdirs['qwen2']}:{tokdirs['qwen2']}/qwen3.jinja"
    out = tmp_path / "diff.json"
    result = cli(
        ["--messages", chat, "--a", spec, "--b", spec, "--a-kwarg", "enable_thinking=false", "--json", out]
    )
    assert result.exit_code == 1, result.output
    assert "thinking block difference" in result.output and "▶" in result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["schema"] == "precdiff.tokens" and doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["verdict"] == "different"
    assert [p["name"] for p in doc["pitfalls"]] == ["thinking_block"]
    assert doc["a"]["template_kwargs"] == {"enable_thinking": False}
    assert doc["a"]["text"].endswith("<think>\n\n</think>\n\n") and not doc["b"]["text"].endswith(
        "</think>\n\n"
    )
    assert doc["first_diff_char"] == len(doc["b"]["text"])
    assert (
        doc["a"]["token_ids"][: doc["first_diff_token"]] == doc["b"]["token_ids"][: doc["first_diff_token"]]
    )
    cells = re.findall(r"^\| ([^|]+) \|", (ROOT / "docs/tokens-json.md").read_text(), re.M)
    documented = {name for cell in cells for name in re.findall(r"`([a-z_0-9]+)`", cell)}
    assert set(doc) <= documented and set(doc["a"]) <= documented and set(doc["alignment"][0]) <= documented


def test_no_generation_prompt_and_add_special_tokens(
    cli: Cli, tokdirs: dict[str, Path], write: Write
) -> None:
    chat = write("chat.json", CHAT)
    # the older Phi-3-mini template writes bos_token and the tokenizer adds <s> too
    d = f"{tokdirs['phi3']}:{tokdirs['phi3']}/phi-3-mini-4k-instruct.jinja"
    assert cli(["--messages", chat, "--a", d, "--b", d, "--no-generation-prompt"]).exit_code == 0
    result = cli(["--messages", chat, "--a", d, "--b", d, "--b-add-special-tokens"])
    assert result.exit_code == 1 and "double BOS" in result.output


def test_tools_option(cli: Cli, tokdirs: dict[str, Path], write: Write) -> None:
    chat = write("chat.json", CHAT)
    tools = write("tools.json", [{"type": "function", "function": {"name": "f", "parameters": {}}}])
    result = cli(["--messages", chat, "--a", tokdirs["qwen2"], "--b", tokdirs["qwen2"], "--tools", tools])
    assert result.exit_code == 0, result.output


def _errors(tmp: Path, dirs: dict[str, Path]) -> list[tuple[list[str], str]]:
    good = tmp / "chat.json"
    good.write_text(json.dumps(CHAT))
    bad = tmp / "bad.json"
    bad.write_text('[{"role": "user" "content": "hi"}]')
    shape = tmp / "shape.json"
    shape.write_text('[{"content": "hi"}]')
    notpl = tmp / "notemplate"
    notpl.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (notpl / name).write_bytes((dirs["phi3"] / name).read_bytes())
    text = tmp / "engine.txt"
    text.write_text("<|user|>\nhi<|end|>\n")
    q = str(dirs["qwen2"])
    hostile = tmp / "hostile.jinja"
    hostile.write_text("{{ messages.__class__.__mro__ }}")
    return [
        (
            ["--messages", bad, "--a", q, "--b", q],
            f"InputError: messages file '{bad}' is not valid JSON: Expecting ',' delimiter at line 1 column 18; "
            "fix the file given to --messages",
        ),
        (
            ["--messages", shape, "--a", q, "--b", q],
            f"InputError: messages file '{shape}': message 0 has no string 'role'; each message must be a JSON "
            'list of objects like {"role": "user", "content": "Hello"}',
        ),
        (
            ["--messages", tmp / "missing.json", "--a", q, "--b", q],
            f"InputError: messages file not found: '{tmp / 'missing.json'}'; check the path given to --messages",
        ),
        (
            ["--messages", good, "--a", notpl, "--b", q],
            f"TemplateError: no chat template: '{notpl.resolve()}' has no chat_template.jinja and no chat_template "
            "in its tokenizer_config.json; give one as DIR:template.jinja (CLI) / chat_template= (Python)",
        ),
        (
            ["--messages", good, "--a", f"{q}:{tmp / 'nope.jinja'}", "--b", q],
            f"TemplateError: side A: template file not found: '{tmp / 'nope.jinja'}' (from "
            f"'{q}:{tmp / 'nope.jinja'}'); pass DIR:TEMPLATE with an existing template file, a file name "
            "inside DIR, or DIR:tokenizer_config",
        ),
        (
            ["--messages", good, "--a", q, "--b", q, "--a-kwarg", "enable_thinkin=false"],
            "TemplateError: the chat template does not read 'enable_thinkin'; it reads: add_generation_prompt, "
            "messages, tools; check the spelling of --a-kwarg",
        ),
        (
            ["--messages", good, "--a", q, "--b", q, "--b-kwarg", "enable_thinking"],
            "InputError: --b-kwarg expects KEY=VALUE (e.g. --b-kwarg enable_thinking=false), got 'enable_thinking'",
        ),
        (
            ["--messages", good, "--a", q, "--b", text, "--b-kwarg", "x=1"],
            f"InputError: --b-kwarg was given but side B ('{text}') is text input, not a template; template "
            "kwargs apply only to a tokenizer directory or DIR:TEMPLATE side",
        ),
        (
            ["--messages", good, "--a", q, "--b", tmp / "nothing"],
            f"InputError: side B: no such file or directory: '{tmp / 'nothing'}'; pass a tokenizer directory, "
            "DIR:TEMPLATE, a GGUF file, a rendered-text file, a token-id file or a precdiff capture",
        ),
        (
            ["--messages", good, "--a", hostile, "--b", q],
            f"TemplateError: side A: '{hostile}' is a template file, which needs a tokenizer; pass it as "
            f"DIR:{hostile} with the tokenizer directory it belongs to",
        ),
        (
            ["--messages", good, "--a", f"{q}:{hostile}", "--b", q],
            "TemplateSandboxError: chat template attempted a forbidden operation: access to attribute "
            "'__class__' of a 'list' object is not allowed",
        ),
        (
            ["--messages", good, "--a", tmp, "--b", q],
            f"TemplateError: '{tmp.resolve()}' is a directory without tokenizer files (tokenizer.json, "
            "tokenizer_config.json, tokenizer.model, vocab.json); pass a tokenizer directory, a rendered-text "
            "file or a token-id file",
        ),
    ]


def test_usage_errors_exit_2_with_one_line(cli: Cli, tokdirs: dict[str, Path], tmp_path: Path) -> None:
    for args, expected in _errors(tmp_path, tokdirs):
        result = cli(args)
        assert result.exit_code == 2, (args, result.output)
        assert error_line(result) == expected


def _readme_commands() -> list[list[str]]:
    readme = (ROOT / "examples/03_chat_template_diff/README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]
    assert commands and all(c[:4] == ["python", "-m", "precdiff", "tokens"] for c in commands)
    return [c[4:] for c in commands]


EXAMPLE_PITFALLS = ["double_bos", "generation_prompt", "template_revision", "jinja_environment"]


@pytest.mark.parametrize("expected", EXAMPLE_PITFALLS)
def test_example_readme_commands_run_and_name_the_pitfall(
    cli: Cli, expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    args = _readme_commands()[EXAMPLE_PITFALLS.index(expected)]
    args = [str(tmp_path / a) if a.endswith(".json") and a == "tokens-diff.json" else a for a in args]
    result = cli(args)
    assert result.exit_code == 1, result.output
    assert f"({expected})" in result.output


def test_capture_is_a_side(
    cli: Cli, tokdirs: dict[str, Path], tokenizers: dict[str, Any], write: Write, tmp_path: Path
) -> None:
    from precdiff.store.writer import CaptureWriter

    r = render_conversation(tokenizers["qwen2"], CHAT)
    path = tmp_path / "run.h5"
    with CaptureWriter(path) as writer:
        writer.write_manifest(Manifest.from_dict({"tokenizer": {"chat_template_sha256": r.template_sha256}}))
        writer.write_input(r.token_ids, r.text)
        writer.finish()
    chat = write("chat.json", CHAT)
    assert cli(["--messages", chat, "--a", tokdirs["qwen2"], "--b", path]).exit_code == 0
    result = cli(
        [
            "--messages",
            chat,
            "--a",
            f"{tokdirs['qwen2']}:{tokdirs['qwen2']}/qwen3.jinja",
            "--b",
            path,
            "--json",
            tmp_path / "cap.json",
        ]
    )
    assert result.exit_code == 1, result.output
    doc = json.loads((tmp_path / "cap.json").read_text(encoding="utf-8"))
    assert doc["b"]["kind"] == "capture" and doc["b"]["text_origin"] == "given"
    assert doc["b"]["template_sha256"] == r.template_sha256
    assert [p["name"] for p in doc["pitfalls"]] == ["default_system_prompt", "template_revision"]
