"""``precdiff replay`` of one aten op of an op-level capture: a planted op fault reproduces in isolation
while the ops upstream replay clean, ops fed through skipped views replay bit for bit, the op
reproducer prints the same error in a fresh process, bad input gives one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from op_faults import SCALE, planted
from typer.testing import CliRunner

import precdiff.cli.replay  # noqa: F401  (registers the command)
from precdiff.capture import capture
from precdiff.cli._app import app
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import ReplayError
from precdiff.replay import AS_EXPECTED, COMPUTES_DIFFERENTLY, ReplayOptions, replay
from precdiff.replay.results import ReplayResult
from precdiff.store import format as fmt
from precdiff.store.reader import open_capture

IDS = CaptureInput(input_ids=(5, 6, 7, 8, 9, 10, 11, 12))
NORM = "model.layers.1.input_layernorm"
RSQRT = f"{NORM}/aten.rsqrt.default#0"  # planted: rsqrt × 1.02 in layer 1's input norm
UPSTREAM = (
    f"{NORM}/aten.pow.Tensor_Scalar#0",
    f"{NORM}/aten.mean.dim#0",
    f"{NORM}/aten.add.Tensor#0",  # mean + eps: the rsqrt's input
    "model.layers.0/aten.add.Tensor#1",  # layer 0's output (residual add)
    "model.layers.0.mlp.down_proj/aten.mm.default#0",
)
DOWNSTREAM = f"{NORM}/aten.mul.Tensor#0"  # x · rsqrt(...): computes right from the faulty input it got
VIEWS = (
    "model.embed_tokens/aten.embedding.default#0",  # a parameter and the token ids (a constant)
    "model.layers.1.self_attn.q_proj/aten.mm.default#0",  # view of the activation, t() of the weight
    "model.layers.1.self_attn/aten.neg.default#0",  # rotate_half: a slice of a transposed view
    "model.layers.1.self_attn/aten.cat.default#0",
    "model.layers.1.self_attn/aten.clone.default#0",  # repeat_kv: unsqueeze + expand of k
    "model.layers.1.self_attn/aten.bmm.default#0",  # q (non-contiguous producer) · kᵀ, expanded
    "model.layers.1.self_attn/aten._softmax.default#0",
    "model.layers.1.self_attn/aten.bmm.default#1",  # probs · v
)


def _capture(path: Path, **options: Any) -> Path:
    settings = CaptureOptions(
        device="cpu", level="op", attn_implementation="eager", max_new_tokens=0, top_k=2, **options
    )
    return capture("tiny:llama", path, IDS, settings).path


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _capture(tmp_path_factory.mktemp("op_replay") / "clean.h5")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch, planted(patch, "rsqrt", layer=1):
        yield _capture(tmp_path_factory.mktemp("op_replay") / "rsqrt.h5")


def run(path: Path, tensor: str, **options: str) -> ReplayResult:
    return replay(path, ReplayOptions(tensor=tensor, device="cpu", **options))


def test_planted_op_fault_reproduces_in_isolation(faulty: Path) -> None:
    result = run(faulty, RSQRT)
    assert result.status == COMPUTES_DIFFERENTLY and not result
    assert result.captured_vs_reference == pytest.approx(SCALE - 1, rel=1e-4)
    assert result.here_vs_reference < 1e-6 and result.ratio > 1000
    assert result.module_class == "aten.rsqrt.default" and result.module == NORM
    assert result.inputs == (f"{NORM}/aten.add.Tensor#0",)
    assert result.message.startswith(f"{RSQRT} computes differently in the captured run:")


@pytest.mark.parametrize("tensor", (*UPSTREAM, DOWNSTREAM))
def test_other_ops_replay_clean(faulty: Path, tensor: str) -> None:
    result = run(faulty, tensor)
    assert result.status == AS_EXPECTED and result
    assert result.reproduced_bitwise and result.captured_vs_here == 0.0


@pytest.mark.parametrize("tensor", VIEWS)
def test_ops_fed_through_skipped_views_replay_bit_for_bit(clean: Path, tensor: str) -> None:
    result = run(clean, tensor)
    assert result.status == AS_EXPECTED
    assert result.reproduced_bitwise and result.captured_vs_here == 0.0


def test_recorded_call_of_bmm(clean: Path) -> None:
    with open_capture(clean) as cap:
        text = cap.op_call("model.layers.1.self_attn/aten.bmm.default#0")
    assert text is not None
    call = json.loads(text)
    assert call["op"] == "aten.bmm.default" and call["args"] == [{"t": 0}, {"t": 1}]
    query, key = call["inputs"]
    # The rotary add keeps the transposed layout of its input: the base is laid out that way again.
    assert query["base"] == [[512, 16, 64, 1], 0]
    assert [step[0] for step in query["views"]] == ["aten.expand.default", "aten.view.default"]
    assert [step[0] for step in key["views"]] == [
        "aten._unsafe_view.default",
        "aten.transpose.int",
        "aten.expand.default",
        "aten.view.default",
    ]


def test_op_reproducer_prints_the_same_error_in_a_fresh_process(
    faulty: Path, clean: Path, tmp_path: Path
) -> None:
    cases = {"rsqrt": (faulty, RSQRT), "bmm": (clean, VIEWS[5]), "embedding": (clean, VIEWS[0])}
    results = {
        key: run(path, tensor, emit_repro=str(tmp_path / key)) for key, (path, tensor) in cases.items()
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # torch and safetensors only
    code = (
        "import runpy, sys\n"
        "for folder in sys.argv[1:]:\n"
        "    sys.argv = ['repro.py', '--device', 'cpu']\n"
        "    runpy.run_path(folder + '/repro.py', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *(str(tmp_path / key) for key in cases)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    captured = [float(v) for v in re.findall(r"captured output vs float64: rel-L2 (\S+)", done.stdout)]
    here = [float(v) for v in re.findall(r"cpu float32 vs float64: rel-L2 (\S+)", done.stdout)]
    assert len(captured) == len(here) == len(cases)
    for key, got, got_here in zip(cases, captured, here):
        assert got == pytest.approx(results[key].captured_vs_reference, rel=1e-6, abs=1e-15)
        assert got_here == pytest.approx(results[key].here_vs_reference, rel=1e-6, abs=1e-15)
    assert captured[0] == pytest.approx(SCALE - 1, rel=1e-4)
    assert {p.name for p in (tmp_path / "rsqrt").iterdir()} == {"repro.py", "inputs.safetensors"}
    assert "import precdiff" not in (tmp_path / "rsqrt" / "repro.py").read_text()


def _edit_index(source: Path, target: Path, edit: Callable[[np.ndarray], np.ndarray]) -> Path:
    shutil.copy(source, target)
    with h5py.File(target, "r+") as handle:
        rows = edit(handle[fmt.TENSOR_INDEX][()])
        del handle[fmt.TENSOR_INDEX]
        handle.create_dataset(fmt.TENSOR_INDEX, data=rows)
    return target


def _edit_call(source: Path, target: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    def edit(rows: np.ndarray) -> np.ndarray:
        names = [n.decode() if isinstance(n, bytes) else n for n in rows[fmt.T_NAME]]
        row = names.index(name)
        call = json.loads(rows[fmt.T_CALL][row])
        change(call)
        rows[fmt.T_CALL][row] = json.dumps(call)
        return rows

    return _edit_index(source, target, edit)


def _error(path: Path, tensor: str) -> str:
    with pytest.raises(ReplayError) as error:
        run(path, tensor)
    return str(error.value)


def test_file_without_calls(clean: Path, tmp_path: Path) -> None:
    """A format-2 file written before calls were recorded (no ``call`` index field)."""

    def drop(rows: np.ndarray) -> np.ndarray:
        full = fmt.index_dtype()
        dtype = np.dtype([(n, full.fields[n][0]) for n in full.names if n != fmt.T_CALL])
        old = np.empty(len(rows), dtype=dtype)
        for name in dtype.names or ():
            old[name] = rows[name]
        return old

    old = _edit_index(clean, tmp_path / "old.h5", drop)
    with open_capture(old) as cap:
        assert cap.op_call(RSQRT) is None and cap.info(RSQRT).inputs is not None
    assert _error(old, RSQRT) == (
        f"{old} records no call for {RSQRT} (it was captured by a precdiff that did not record op calls); "
        f"capture again with this precdiff (capture --level op) to replay the op, or replay its module call: "
        f"--tensor {NORM}"
    )


def test_summary_capture_names_the_focus_that_stores_the_inputs(faulty: Path, tmp_path: Path) -> None:
    include = (re.escape(NORM),)
    with pytest.MonkeyPatch.context() as patch, planted(patch, "rsqrt", layer=1):
        summary = _capture(tmp_path / "summary.h5", summary=True, include=include)
        message = _error(summary, RSQRT)
        focus = re.search(r"--focus '([^']+)'", message)
        assert focus is not None
        assert message == (
            f"{RSQRT} needs {NORM}/aten.add.Tensor#0, {RSQRT} in full, which {summary} holds as statistics "
            f"only (--summary); capture again with --focus '{focus[1]}' / focus=('{focus[1]}',) to store them"
        )
        assert focus[1] == "^(?:" + re.escape(f"{NORM}/aten.add.Tensor#0") + "|" + re.escape(RSQRT) + ")$"
        focused = _capture(tmp_path / "focus.h5", focus=(focus[1],), include=include)
    result = run(focused, RSQRT)
    assert result.status == COMPUTES_DIFFERENTLY
    assert result.captured_vs_reference == pytest.approx(run(faulty, RSQRT).captured_vs_reference, rel=1e-12)


def test_unreplayable_random_and_constant_inputs(clean: Path, tmp_path: Path) -> None:
    def generator(call: dict[str, Any]) -> None:
        call["kwargs"]["generator"] = {"unreplayable": "Generator"}

    bad = _edit_call(clean, tmp_path / "bad.h5", RSQRT, generator)
    assert _error(bad, RSQRT) == (
        f"{RSQRT} cannot be replayed: its call holds an argument the capture could not record (Generator); "
        f"replay its module call instead: --tensor {NORM}"
    )
    rand = _edit_call(clean, tmp_path / "rand.h5", RSQRT, lambda call: call.update(op="aten.bernoulli.p"))
    assert _error(rand, RSQRT) == (
        f"{RSQRT} is a random op (aten.bernoulli.p): its output depends on the random generator's state, "
        f"which replay does not reproduce; replay a deterministic op, or its module call: --tensor {NORM}"
    )
    embedding = VIEWS[0]
    constant = _edit_call(
        clean, tmp_path / "constant.h5", embedding, lambda call: call["inputs"].__setitem__(1, None)
    )
    assert _error(constant, embedding) == (
        f"input 1 of {embedding} is a tensor made outside the traced forward (e.g. a mask built before it) "
        f"whose value {constant} does not hold; replay its module call instead: --tensor model.embed_tokens"
    )
    assert _error(clean, "model.layers.1/aten.nope.default#0") == (
        f"{clean} has no op output named 'model.layers.1/aten.nope.default#0'; `precdiff inspect {clean} --all` "
        "lists them (e.g. --tensor 'model.layers.0.mlp.down_proj/aten.mm.default#0')"
    )


def test_cli_exit_codes(faulty: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "replay.json"
    found = runner.invoke(
        app, ["replay", str(faulty), "--tensor", RSQRT, "--device", "cpu", "--json", str(out)]
    )
    assert found.exit_code == 1, found.output
    assert json.loads(out.read_text())["module_class"] == "aten.rsqrt.default"
    clean = runner.invoke(app, ["replay", str(faulty), "--tensor", UPSTREAM[2], "--device", "cpu"])
    assert clean.exit_code == 0, clean.output
    bad = runner.invoke(
        app, ["replay", str(faulty), "--tensor", f"{NORM}/aten.rsqrt.default#9", "--device", "cpu"]
    )
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("ReplayError: ")
