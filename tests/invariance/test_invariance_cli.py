"""``precdiff invariance`` / ``precdiff determinism``: exit codes 0/1/2, JSON output, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from precdiff.cli._app import app, register_commands

register_commands()
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_invariance_exit_codes_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from planted import plant_batch_dependent

    from precdiff.invariance import session

    real_load = session.load_model

    def load_with_planted_kernel(*args: Any, **kwargs: Any) -> Any:
        loaded = real_load(*args, **kwargs)
        plant_batch_dependent(loaded.model, "model.layers.1.mlp.act_fn")
        return loaded

    monkeypatch.setattr(session, "load_model", load_with_planted_kernel)
    out = tmp_path / "inv.json"
    code, text = run(
        "invariance",
        "tiny:llama",
        "--kernels",
        "batch-invariant",
        "--device",
        "cpu",
        "--batch-sizes",
        "1,2",
        "--level",
        "op",
        "--json",
        str(out),
    )
    assert code == 1, text
    assert "NOT INVARIANT" in text and "first non-invariant op:" in text
    data = json.loads(out.read_text())
    assert data["invariant"] is False
    assert data["first_non_invariant"] == "model.layers.1.mlp.act_fn/aten.mul.Tensor#0"
    monkeypatch.setattr(session, "load_model", real_load)
    code, text = run(
        "invariance",
        "tiny:llama",
        "--device",
        "cpu",
        "--batch-sizes",
        "1,2",
        "--kernels",
        "batch-invariant",
        "--padding",
        "left",
    )
    assert code == 0, text
    assert "INVARIANT" in text and "NOT INVARIANT" not in text


def test_determinism_exit_code_and_json(tmp_path: Path) -> None:
    out = tmp_path / "det.json"
    code, text = run(
        "determinism",
        "tiny:llama",
        "--device",
        "cpu",
        "--runs",
        "3",
        "--max-new-tokens",
        "3",
        "--max-companions",
        "2",
        "--kernels",
        "batch-invariant",
        "--json",
        str(out),
    )
    assert code == 0, text
    assert "DETERMINISTIC" in text and "1 unique completion of 3 tokens in 3 runs" in text
    assert json.loads(out.read_text())["unique_completions"] == 1


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["invariance", "tiny:llama", "--batch-sizes", "1,x"],
            "InputError: --batch-sizes takes positive integers separated by commas, got '1,x'; e.g. --batch-sizes 1,2,8,32",
        ),
        (
            ["invariance", "tiny:llama", "--batch-sizes", "1", "--device", "cpu"],
            (
                "InputError: --batch-sizes / batch_sizes= needs positive sizes and at least one above 1, got 1; "
                "e.g. --batch-sizes 1,2,8,32"
            ),
        ),
        (
            ["invariance", "tiny:llama", "--padding", "diag", "--device", "cpu"],
            "InputError: unknown --padding 'diag'; use one of: none, left, right (padding=...)",
        ),
        (
            ["invariance", "tiny:llama", "--level", "layer", "--device", "cpu"],
            "InputError: unknown --level 'layer'; use one of: module, op (level=...)",
        ),
        (
            ["determinism", "tiny:llama", "--kernels", "fast", "--device", "cpu"],
            "InputError: unknown --kernels 'fast'; use one of: standard, batch-invariant (kernels=...)",
        ),
        (
            ["determinism", "tiny:llama", "--runs", "0", "--device", "cpu"],
            "InputError: --runs / runs= must be >= 1, got 0",
        ),
        (
            ["invariance", "tiny:nope"],
            (
                "ModelLoadError: unknown tiny model 'tiny:nope'; choose one of: tiny:llama, tiny:mistral, tiny:qwen2, "
                "tiny:qwen3, tiny:gemma2, tiny:gemma3, tiny:phi3, tiny:qwen2_moe, tiny:qwen3_moe, tiny:mixtral"
            ),
        ),
        (
            ["determinism", "/no/such/model", "--device", "cpu"],
            (
                "ModelLoadError: model '/no/such/model' is neither a local directory nor tiny:<arch>; pass a Hugging Face "
                "model directory (config.json + *.safetensors) or e.g. tiny:llama"
            ),
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(args: list[str], expected: str) -> None:
    code, text = run(*args)
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in text
    assert lines == [expected]
