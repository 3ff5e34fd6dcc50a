"""Op level from summaries: planted op faults (op_faults.py) are named down to the op by a compare of
summary captures, as by the full compare (test_op_level.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from op_faults import planted
from summaries import ANY, summary_only

from precdiff.capture import capture
from precdiff.compare.compare import compare
from precdiff.compare.results import STATUS_DIVERGED
from precdiff.config import CaptureInput, CaptureOptions

IDS = CaptureInput(input_ids=(5, 6, 7, 8, 9, 10, 11, 12))


def _capture(path: Path) -> Path:
    options = CaptureOptions(
        device="cpu", level="op", attn_implementation="eager", max_new_tokens=0, top_k=2, focus=(ANY,)
    )
    return capture("tiny:llama", path, IDS, options).path


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _capture(tmp_path_factory.mktemp("op_summary") / "eager.h5")


@pytest.mark.parametrize(
    ("fault", "op"),
    [
        ("softmax", "model.layers.1.self_attn/aten._softmax.default#0"),
        ("rsqrt", "model.layers.1.input_layernorm/aten.rsqrt.default#0"),
    ],
)
def test_summary_compare_names_the_planted_op(
    eager: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, op: str
) -> None:
    with planted(monkeypatch, fault, layer=1):
        faulty = _capture(tmp_path / f"{fault}.h5")
    full = compare(eager, faulty)
    summary = compare(summary_only(eager, tmp_path / "a.h5"), summary_only(faulty, tmp_path / "b.h5"))
    named = [(r.verdict.status, r.verdict.layer, r.verdict.module, r.verdict.op) for r in (full, summary)]
    assert named[0][::3] == (STATUS_DIVERGED, op) and named[0][1] == 1
    assert named[1] == named[0], summary.verdict.message
    assert summary.ops is not None and summary.ops.jump is not None and summary.ops.jump.growth > 100
