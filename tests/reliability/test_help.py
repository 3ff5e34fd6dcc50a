"""Help reads like a click CLI: value kinds as PATH/INTEGER/TEXT, flags without a type, no Typer
placeholders (``<bool>``, ``<list[str]>``, ``{a}``)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from precdiff.cli._app import register_commands

app = register_commands()
COMMANDS = [[], ["capture"], ["compare"], ["inspect"], ["tokens"], ["invariance"], ["determinism"]]
COMMANDS += [["demo"], ["tiny"], ["tiny", "save"], ["tiny", "list"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "precdiff")
def test_help_has_no_typer_placeholders(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for placeholder in ("<bool>", "<list[", "<path>", "<int>", "<str>", "{a}", "{model}"):
        assert placeholder not in result.output, (placeholder, result.output)


def test_compare_help_names_value_kinds() -> None:
    text = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "200"}).output
    assert "compare [OPTIONS] A B" in text
    assert "--json" in text and "PATH" in text and "FLOAT" in text and "INTEGER" in text
    force = next(line for line in text.splitlines() if "--force" in line)
    assert "PATH" not in force and "TEXT" not in force  # a flag takes no value


def test_version() -> None:
    from precdiff import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"precdiff {__version__}"
