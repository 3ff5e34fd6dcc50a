"""`precdiff compare` / `precdiff inspect` through the CLI: exit codes and the exact one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import precdiff.cli.compare  # noqa: F401  (registers the commands)
from precdiff.cli._app import app

MakeCapture = Callable[..., Path]
runner = CliRunner()


def tensors(seed: int = 0, scale: float = 0.0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    names = [
        "model.embed_tokens",
        "model.layers.0.mlp.down_proj",
        "model.layers.0",
        "model.layers.1.mlp.down_proj",
        "model.layers.1",
        "lm_head",
    ]
    base = {n: torch.from_numpy(rng.standard_normal((1, 4, 8)).astype(np.float32)) for n in names}
    return {n: v + scale * torch.ones_like(v) for n, v in base.items()}


def error_line(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    return result.exit_code, result.stderr.strip()


@pytest.fixture
def pair(make_capture: MakeCapture) -> tuple[Path, Path]:
    return make_capture("a.h5", tensors()), make_capture("b.h5", tensors())


def test_identical_captures_exit_0_and_json(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["compare", str(pair[0]), str(pair[1]), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "MATCH" in result.stdout
    document = json.loads(out.read_text())
    assert document["schema_version"] == 1
    assert document["verdict"]["status"] == "match"
    assert set(document) >= {
        "verdict",
        "tensors",
        "unmatched",
        "logprobs",
        "generation",
        "comparability",
        "layers",
    }
    assert [t["name"] for t in document["tensors"]][:2] == [
        "model.embed_tokens",
        "model.layers.0.mlp.down_proj",
    ]


def test_missing_file(pair: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.h5"
    assert error_line(["compare", str(pair[0]), str(missing)]) == (
        2,
        f"InputError: capture file {missing} does not exist",
    )


def test_not_hdf5(pair: tuple[Path, Path], tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    assert error_line(["compare", str(text), str(pair[1])]) == (
        2,
        f"CaptureFormatError: {text} is not an HDF5 file; pass a file written by `precdiff capture`",
    )


def test_truncated_file(make_capture: MakeCapture, tmp_path: Path) -> None:
    big = {f"model.layers.{i}": torch.randn(1, 64, 256) for i in range(4)}
    full = make_capture("full.h5", big)
    cut = tmp_path / "cut.h5"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, line = error_line(["compare", str(full), str(cut)])
    assert code == 2 and "\n" not in line
    assert line.startswith(f"CaptureFormatError: {cut} is damaged and cannot be opened (")
    assert line.endswith("); capture it again")


def test_hdf5_that_is_not_a_capture(pair: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    assert error_line(["compare", str(pair[0]), str(other)]) == (
        2,
        f"CaptureFormatError: {other} is an HDF5 file but not a precdiff capture (no format='precdiff-capture')",
    )


def test_different_weights(make_capture: MakeCapture, pair: tuple[Path, Path]) -> None:
    other = make_capture("w.h5", tensors(), manifest={"model": {"weights_sha256": "0123456789abcdef" * 4}})
    assert error_line(["compare", str(pair[0]), str(other)]) == (
        2,
        f"NotComparableError: {pair[0]} and {other} ran different weights (weights_sha256 wwwwwwwwwwww… vs "
        "0123456789ab…); compare two captures of the same model, or pass --force / force=True to compare anyway",
    )
    assert runner.invoke(app, ["compare", str(pair[0]), str(other), "--force"]).exit_code == 0


def test_different_tokens(make_capture: MakeCapture, pair: tuple[Path, Path]) -> None:
    other = make_capture("t.h5", tensors(), ids=(1, 2, 3, 4, 5))
    assert error_line(["compare", str(pair[0]), str(other)]) == (
        2,
        f"NotComparableError: {pair[0]} and {other} saw different input tokens (4 vs 5 tokens, one is a prefix of "
        f"the other up to position 4); pass --tokens-from {pair[0]} to capture B with A's exact tokens, or --force "
        "/ force=True to compare anyway",
    )


def test_partial_capture_is_compared_with_a_warning(
    make_capture: MakeCapture, pair: tuple[Path, Path]
) -> None:
    partial = make_capture("p.h5", dict(list(tensors().items())[:3]), finish=False)
    assert partial.name == "p.h5.partial"
    result = runner.invoke(app, ["compare", str(pair[0]), str(partial)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert (
        f"B ({partial}) is an incomplete capture (interrupted); compared the 3 tensors it holds"
        in result.stdout
    )
    inspected = runner.invoke(app, ["inspect", str(partial)], env={"COLUMNS": "400"})
    assert inspected.exit_code == 0 and "INCOMPLETE" in inspected.stdout


def test_nan_in_tensors_diverges_with_exit_1(make_capture: MakeCapture, pair: tuple[Path, Path]) -> None:
    broken = tensors()
    for name in ("model.layers.1.mlp.down_proj", "model.layers.1", "lm_head"):
        broken[name][0, 1, :] = float("nan")
    path = make_capture("nan.h5", broken)
    result = runner.invoke(app, ["compare", str(pair[0]), str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert (
        "DIVERGED — NaN/Inf first differ at layer 1 in model.layers.1.mlp.down_proj: A has 0 NaN 0 Inf, "
        "B has 8 NaN 0 Inf"
    ) in result.stdout


def test_real_divergence_exits_1(make_capture: MakeCapture, pair: tuple[Path, Path]) -> None:
    shifted = tensors()
    shifted["model.layers.1.mlp.down_proj"] = shifted["model.layers.1.mlp.down_proj"] * 1.5
    path = make_capture("s.h5", shifted)
    result = runner.invoke(app, ["compare", str(pair[0]), str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 1
    assert (
        "DIVERGED — jumps at layer 1 in model.layers.1.mlp.down_proj: rel-L2 0.0e+00 → 5.0e-01"
        in result.stdout
    )


def test_bad_option_is_one_line(pair: tuple[Path, Path]) -> None:
    assert error_line(["compare", str(pair[0]), str(pair[1]), "--noise-floor", "-1"]) == (
        2,
        "InputError: --noise-floor / noise_floor must be ≥ 0, got -1.0",
    )


def test_inspect_lists_tensors_and_writes_json(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "inspect.json"
    result = runner.invoke(
        app, ["inspect", str(pair[0]), "--json", str(out), "--all"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    assert "model.layers.1.mlp.down_proj" in result.stdout and "[1, 4, 8]" in result.stdout
    document = json.loads(out.read_text())
    assert document["complete"] is True and document["input_ids"] == [1, 2, 3, 4]
    assert [t["name"] for t in document["tensors"]][-1] == "lm_head"
