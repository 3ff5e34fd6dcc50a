"""Tuned tile tables per GPU model: JSON round trip, cache lookup, selection order, tuner bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from precdiff.errors import KernelError
from precdiff.kernels import gemm_tiles, tile_tables
from precdiff.kernels.gemm_tiles import POINTER, TMA, UNBOUNDED
from precdiff.kernels.tune import TuneOptions, build_tables, shapes_from_config

H200 = ("NVIDIA H200", (9, 0))
A_CONFIG = (16, 32, 256, 4, 3, POINTER)
B_CONFIG = (64, 128, 128, 4, 3, TMA)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRECDIFF_CACHE_DIR", str(tmp_path / "cache"))
    tile_tables.for_device.cache_clear()
    gemm_tiles.select.cache_clear()
    yield tmp_path / "cache"
    tile_tables.for_device.cache_clear()
    gemm_tiles.select.cache_clear()


def _table() -> tile_tables.TileTable:
    tables = {"half": {(4096, 4096): [(64, A_CONFIG), (UNBOUNDED, B_CONFIG)]}}
    return tile_tables.TileTable(H200[0], H200[1], "test", tables, source="")


def test_file_name_is_keyed_by_gpu_name_and_capability() -> None:
    assert tile_tables.file_name("NVIDIA H200", (9, 0)) == "nvidia_h200_sm90.json"
    assert tile_tables.file_name("NVIDIA H100 80GB HBM3", (9, 0)) == "nvidia_h100_80gb_hbm3_sm90.json"


def test_round_trip_through_the_user_cache(isolated_cache: Path) -> None:
    path = tile_tables.write(_table(), {"evidence": {"half": {"bit_check": {}}}})
    assert path == isolated_cache / "gemm_tiles" / "nvidia_h200_sm90.json"
    data = json.loads(path.read_text())
    assert data["tables"]["half"]["4096x4096"][-1][0] is None  # unbounded bucket
    found = tile_tables.for_device(*H200)
    assert found is not None and found.tables == _table().tables and found.source == str(path)
    assert tile_tables.for_device("NVIDIA H100 80GB HBM3", (9, 0)) is None


def test_a_shipped_table_serves_its_gpu_model() -> None:
    """precdiff/kernels/tables/nvidia_h200_sm90.json (tuned 2026-12-01) serves an H200 without tuning."""
    shipped = tile_tables.for_device("NVIDIA H200", (9, 0))
    assert shipped is not None and shipped.source.endswith("nvidia_h200_sm90.json")
    assert gemm_tiles.tables_for("half", (9, 0), "NVIDIA H200") == shipped.tables["half"]
    assert gemm_tiles.tables_for("half", (9, 0), "NVIDIA H100 80GB HBM3") == gemm_tiles.TUNED["half"]


def test_the_gpus_own_table_wins_over_the_shipped_h100_table() -> None:
    shipped = gemm_tiles.select(32, 4096, 4096, "half", (9, 0), "NVIDIA H100 80GB HBM3")
    tile_tables.write(_table())
    gemm_tiles.select.cache_clear()
    assert gemm_tiles.select(32, 4096, 4096, "half", (9, 0), "NVIDIA H200") == A_CONFIG
    # 256 rows take the TMA config; the nearest shape serves an untuned (K, N).
    assert gemm_tiles.select(256, 4096, 4096, "half", (9, 0), "NVIDIA H200") == B_CONFIG
    assert gemm_tiles.select(256, 4096, 11008, "half", (9, 0), "NVIDIA H200") == B_CONFIG
    # Another GPU of the same capability keeps the shipped table; fp32 (not tuned here) falls back too.
    assert gemm_tiles.select(32, 4096, 4096, "half", (9, 0), "NVIDIA H100 80GB HBM3") == shipped
    assert gemm_tiles.select(32, 4096, 4096, "fp32", (9, 0), "NVIDIA H200") == gemm_tiles.select(
        32, 4096, 4096, "fp32", (9, 0)
    )


@pytest.mark.parametrize(
    "content, why",
    [
        ("not json", "cannot read"),
        ('{"format": 2}', "format 1"),
        (
            '{"format": 1, "capability": [9, 0], "device_name": "x", "tables": {"half": {"4x4": [[8, 1, 2]]}}}',
            "6",
        ),
        (
            '{"format": 1, "capability": [9, 0], "device_name": "x", "tables": {"half": {"4x4": [[8, 16, 16, 16, 4, 3, 0]]}}}',
            "unbounded",
        ),
    ],
)
def test_a_broken_table_file_is_a_one_line_error_with_the_fix(
    isolated_cache: Path, content: str, why: str
) -> None:
    path = tile_tables.user_path(*H200)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(KernelError, match="run `precdiff kernels tune` again") as caught:
        tile_tables.for_device(*H200)
    assert why in str(caught.value) and str(path) in str(caught.value)


def test_build_tables_merges_adjacent_winners_and_ends_unbounded() -> None:
    rows = [
        {"M": m, "K": 4096, "N": 4096, "best": json.dumps(list(cfg))}
        for m, cfg in [(1, A_CONFIG), (8, A_CONFIG), (64, B_CONFIG), (256, B_CONFIG), (1024, A_CONFIG)]
    ]
    assert build_tables(rows) == {(4096, 4096): [(8, A_CONFIG), (256, B_CONFIG), (UNBOUNDED, A_CONFIG)]}


def test_shapes_from_a_model_config() -> None:
    from precdiff.capture.configs import load_config

    config = load_config("tiny:llama")
    shapes = shapes_from_config(config)
    hidden, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    assert {(hidden, inter), (inter, hidden), (hidden, vocab)} <= set(shapes)


def test_options_are_validated() -> None:
    from precdiff.errors import InputError

    with pytest.raises(InputError, match="--dtypes takes bf16, fp16, fp32"):
        TuneOptions(dtypes=("int8",)).validate()
    with pytest.raises(InputError, match="--shapes needs"):
        TuneOptions(shapes=((0, 4),)).validate()


def test_tune_without_cuda_is_a_one_line_error() -> None:
    import torch

    from precdiff.kernels.tune import tune

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(KernelError, match="needs"):
        tune(TuneOptions())


def test_cli_errors_are_one_line_and_exit_2() -> None:
    import torch
    from typer.testing import CliRunner

    from precdiff.cli._app import app, register_commands

    register_commands()
    runner = CliRunner()
    bad = runner.invoke(app, ["kernels", "tune", "--dtypes", "int8"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.output.strip().splitlines() == [
        "InputError: --dtypes takes bf16, fp16, fp32 separated by commas, got 'int8'"
    ]
    shapes = runner.invoke(app, ["kernels", "tune", "--shapes", "/no/such/model"])
    assert shapes.exit_code == 2 and "neither K×N shapes" in shapes.output
    if not torch.cuda.is_available():
        none = runner.invoke(app, ["kernels", "tune"])
        assert none.exit_code == 2 and "needs a CUDA GPU" in none.output
