"""``precdiff replay``: a planted fault reproduces in isolation, upstream modules replay clean,
the reproducer prints the same error in a fresh process, bad input gives one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from reference_runs import PLANTED_ERROR, PLANTED_MODULE
from typer.testing import CliRunner

import precdiff.cli.replay  # noqa: F401  (registers the command)
from precdiff.cli._app import app
from precdiff.errors import ReplayError
from precdiff.replay import AS_EXPECTED, COMPUTES_DIFFERENTLY, ReplayOptions, replay
from precdiff.store import format as fmt

UPSTREAM = (
    "model.layers.0",  # a whole decoder layer: hidden states, position embeddings and ids as inputs
    "model.layers.1.self_attn",  # attention with its position_embeddings keyword input
    "model.layers.1.post_attention_layernorm",
    "model.layers.1.mlp.gate_proj",
    "model.layers.1.mlp.up_proj",
    "model.layers.1.mlp.act_fn",
)


def run_replay(run: Path, tensor: str, **kwargs: str) -> object:
    return replay(run, ReplayOptions(tensor=tensor, device="cpu", **kwargs))


def test_planted_fault_reproduces_in_isolation(runs: dict[str, Path]) -> None:
    result = replay(runs["planted"], ReplayOptions(tensor=PLANTED_MODULE, device="cpu"))
    assert result.status == COMPUTES_DIFFERENTLY and not result
    assert result.captured_vs_reference == pytest.approx(PLANTED_ERROR, rel=1e-4)
    assert result.here_vs_reference < 1e-6 and result.ratio > 1000
    assert result.message.startswith(f"{PLANTED_MODULE} computes differently in the captured run:")


@pytest.mark.parametrize("tensor", UPSTREAM)
def test_upstream_modules_replay_clean(runs: dict[str, Path], tensor: str) -> None:
    result = replay(runs["planted"], ReplayOptions(tensor=tensor, device="cpu"))
    assert result.status == AS_EXPECTED and result
    assert result.reproduced_bitwise  # same CPU, same dtype, same inputs: the same bits
    assert result.captured_vs_reference < 1e-6


def test_bf16_run_replays_within_bf16(runs: dict[str, Path]) -> None:
    result = replay(runs["bf16"], ReplayOptions(tensor="model.layers.2.mlp", device="cpu"))
    assert result.status == AS_EXPECTED and result.captured_dtype == "bfloat16"
    assert 1e-4 < result.captured_vs_reference < 0.05  # bf16 rounding of a whole MLP block


REPROS = (
    "model.layers.1.mlp.down_proj",
    "model.layers.1.self_attn",
    "model.layers.1.input_layernorm",
    "model.layers.0.mlp",
)


def test_reproducer_prints_the_same_error_in_a_fresh_process(runs: dict[str, Path], tmp_path: Path) -> None:
    results = {
        name: replay(
            runs["planted"], ReplayOptions(tensor=name, device="cpu", emit_repro=str(tmp_path / name))
        )
        for name in REPROS
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # torch and safetensors only
    # One fresh interpreter runs every script as __main__ (one torch import instead of four).
    code = (
        "import runpy, sys\n"
        "for folder in sys.argv[1:]:\n"
        "    sys.argv = ['repro.py', '--device', 'cpu']\n"
        "    runpy.run_path(folder + '/repro.py', run_name='__main__')\n"
    )
    folders = [str(tmp_path / name) for name in REPROS]
    done = subprocess.run(
        [sys.executable, "-c", code, *folders],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    printed = [float(v) for v in re.findall(r"captured output vs float64: rel-L2 (\S+)", done.stdout)]
    assert len(printed) == len(REPROS)
    for name, value in zip(REPROS, printed):
        assert value == pytest.approx(results[name].captured_vs_reference, rel=1e-5)
        assert results[name].repro == str(tmp_path / name)
    assert {p.name for p in (tmp_path / PLANTED_MODULE).iterdir()} == {
        "repro.py",
        "weights.safetensors",
        "inputs.safetensors",
    }
    assert "import precdiff" not in (tmp_path / PLANTED_MODULE / "repro.py").read_text()


def test_no_inputs_saved(llama_capture: Path) -> None:
    with pytest.raises(ReplayError) as error:
        run_replay(llama_capture, "model.layers.0.mlp")
    assert str(error.value) == (
        f"{llama_capture} was captured without --save-inputs; replay needs the inputs the module received: "
        "capture again with --save-inputs / save_inputs=True (--include can limit it to the modules of interest)"
    )


def test_unknown_input_and_op_level_tensors(runs: dict[str, Path]) -> None:
    run = runs["planted"]
    with pytest.raises(ReplayError) as error:
        run_replay(run, "model.layers.9.mlp")
    assert str(error.value) == (
        f"{run} has no tensor or module call named 'model.layers.9.mlp'; `precdiff inspect {run} --all` "
        "lists them (pass an output, e.g. --tensor model.layers.0.mlp.down_proj)"
    )
    with pytest.raises(ReplayError) as error:
        run_replay(run, "model.layers.0.mlp:input[0]")
    assert str(error.value) == (
        "'model.layers.0.mlp:input[0]' is an input of model.layers.0.mlp; replay the module's output instead: "
        "--tensor model.layers.0.mlp"
    )
    with pytest.raises(ReplayError) as error:
        run_replay(run, "model.layers.0.mlp/aten.mm.default#0")
    # A module-level capture has no op outputs (op replay: tests/reference/test_op_replay.py).
    assert str(error.value) == (
        f"{run} has no op output named 'model.layers.0.mlp/aten.mm.default#0'; `precdiff inspect {run} --all` "
        "lists them (e.g. --tensor 'model.layers.0.mlp.down_proj/aten.mm.default#0')"
    )


def test_wrong_weights(runs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "other_weights.h5"
    shutil.copy(runs["planted"], copy)
    with h5py.File(copy, "r+") as handle:
        manifest = json.loads(handle[fmt.MANIFEST][()])
        manifest["model"]["weights_sha256"] = "0" * 64
        del handle[fmt.MANIFEST]
        handle.create_dataset(fmt.MANIFEST, data=json.dumps(manifest), dtype=h5py.string_dtype())
    with pytest.raises(
        ReplayError, match=r"^the weights of tiny:llama \(sha256 [0-9a-f]{12}…\) are not those"
    ):
        run_replay(copy, PLANTED_MODULE)


def test_emit_repro_of_an_unsupported_module(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(
        ReplayError, match=r"^--emit-repro cannot write LlamaDecoderLayer as plain torch code"
    ):
        run_replay(runs["planted"], "model.layers.0", emit_repro=str(tmp_path / "r"))


def test_cli_exit_codes(runs: dict[str, Path], llama_capture: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "replay.json"
    args = ["replay", str(runs["planted"]), "--tensor", PLANTED_MODULE, "--device", "cpu", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # the op computes differently: a significant finding
    assert json.loads(out.read_text())["status"] == COMPUTES_DIFFERENTLY
    clean = runner.invoke(
        app, ["replay", str(runs["planted"]), "--tensor", "model.layers.0.mlp", "--device", "cpu"]
    )
    assert clean.exit_code == 0, clean.output
    bad = runner.invoke(
        app, ["replay", str(llama_capture), "--tensor", "model.layers.0.mlp", "--device", "cpu"]
    )
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("ReplayError: ")
