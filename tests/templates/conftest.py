"""Fixtures for the templates tests: real tokenizers (vendored under tests/fixtures/tokenizers) and helpers.

Most fixtures store their ``tokenizer.json`` xz-compressed (``tokenizer.json.xz``) to keep the repository
small; they are unpacked once per session into a temporary directory, which is then a plain tokenizer
directory like any other.
"""

from __future__ import annotations

import json
import lzma
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tokenizers"
FAMILIES = ("phi3", "qwen2", "falcon", "llama3", "mistral", "deepseek")
# Families whose directory has its own chat_template.jinja (falcon is a tokenizer-only fixture).
TEMPLATE_FAMILIES = ("phi3", "qwen2", "llama3", "mistral", "deepseek")
# Families checked against llama.cpp's reference tokenizations (llamacpp_vectors.json).
VECTOR_FAMILIES = ("phi3", "qwen2", "falcon", "llama3")


@pytest.fixture(scope="session")
def tokdirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    out: dict[str, Path] = {}
    for name in FAMILIES:
        src = FIXTURES / name
        packed = src / "tokenizer.json.xz"
        if not packed.exists():
            out[name] = src
            continue
        dst = root / name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.xz"))
        (dst / "tokenizer.json").write_bytes(lzma.decompress(packed.read_bytes()))
        out[name] = dst
    return out


@pytest.fixture(scope="session")
def tokenizers(tokdirs: dict[str, Path]) -> dict[str, Any]:
    from precdiff.templates.sides import load_tokenizer

    return {name: load_tokenizer(str(path.resolve())) for name, path in tokdirs.items()}


@pytest.fixture()
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Write text (str) or JSON (anything else) to tmp_path/name and return the path."""

    def _write(name: str, content: Any) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        return path

    return _write


def _app() -> Any:
    from precdiff.cli import _app

    try:
        return _app.register_commands()
    except ImportError:  # other command modules may not exist yet
        import precdiff.cli.tokens  # noqa: F401

        return _app.app


@pytest.fixture()
def cli() -> Callable[[Sequence[str]], Any]:
    """Invoke ``precdiff tokens ARGS`` through Typer's CliRunner."""
    app = _app()
    runner = CliRunner()

    def invoke(args: Sequence[str]) -> Any:
        argv = [str(a) for a in args]
        if len(app.registered_commands) > 1 or app.registered_callback is not None:
            argv = ["tokens", *argv]  # a lone command is run without its name by Typer
        return runner.invoke(app, argv, env={"COLUMNS": "200", "HF_HUB_OFFLINE": "1"})

    return invoke


CHAT = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]
