"""``precdiff sensitivity``: exit codes 0/1/2, the two JSON files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import CALIB
from typer.testing import CliRunner

from precdiff.cli._app import app, register_commands

register_commands()
runner = CliRunner()
SMALL = ["--device", "cpu", "--max-prompts", "2", "--max-tokens", "16"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_budget_run_writes_both_files_and_exits_1(tmp_path: Path) -> None:
    out, full = tmp_path / "sensitive_layers.json", tmp_path / "report.json"
    code, text = run(
        "sensitivity", "tiny:llama", "--calib", str(CALIB), *SMALL, "--bits", "4", "--granularity",
        "group:32", "--asymmetric", "--budget", "0.1", "--out", str(out), "--json", str(full),
    )  # fmt: skip
    assert code == 1, text
    assert "3 of 30 layers must stay in float" in text and "int4 group:32 asym" in text
    records = json.loads(out.read_text())
    assert len(records) == 30 and sum(r["flag"] == "bf16" for r in records) == 3
    assert {r["flag"] for r in records} == {"bf16", "int4"}
    assert set(records[0]) >= {"layer", "op", "flag", "kl", "R", "energy"}
    document = json.loads(full.read_text())
    assert document["schema"] == "precdiff.sensitivity" and document["mode"] == "budget"
    assert document["scheme"] == {
        "bits": 4, "granularity": "group", "group_size": 32, "symmetric": False, "label": "int4 group:32 asym"
    }  # fmt: skip
    assert document["run"]["prompts"] == 2 and document["verification"] is None


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    code, text = run("sensitivity", "tiny:llama", "--calib", str(CALIB), *SMALL, "--granularity", "group:0")
    assert code == 2
    assert text.strip() == (
        "InputError: unknown --granularity 'group:0'; use tensor, channel or group:N with N >= 1, e.g. "
        "group:128 (granularity='group:128')"
    )
    code, text = run("sensitivity", "tiny:llama", "--calib", str(CALIB), *SMALL, "--out", str(CALIB))
    assert code == 2
    assert text.strip() == (
        f"InputError: output {CALIB} is also an input of the command; pick another --out / --json path"
    )
    code, text = run("sensitivity", "tiny:llama", "--calib", str(CALIB), *SMALL, "--budget", "1.5")
    assert code == 2 and "--budget / budget= is a fraction of layers in (0, 1], got 1.5" in text
