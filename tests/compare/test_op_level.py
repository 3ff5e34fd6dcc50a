"""Op level end to end on tiny:llama: differing op graphs aligned, planted op faults named exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from op_faults import planted, rms_norm_fused

from precdiff.capture import capture
from precdiff.compare.compare import compare
from precdiff.compare.results import SHAPE_MISMATCH, STATUS_DIVERGED
from precdiff.config import CaptureInput, CaptureOptions

IDS = CaptureInput(input_ids=(5, 6, 7, 8, 9, 10, 11, 12))


def _capture(path: Path, attn: str = "eager") -> Path:
    options = CaptureOptions(device="cpu", level="op", attn_implementation=attn, max_new_tokens=0, top_k=2)
    return capture("tiny:llama", path, IDS, options).path


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _capture(tmp_path_factory.mktemp("op") / "eager.h5")


def test_eager_vs_sdpa_aligned_without_false_verdict(eager: Path, tmp_path: Path) -> None:
    result = compare(eager, _capture(tmp_path / "sdpa.h5", "sdpa"))
    assert result.verdict.status != STATUS_DIVERGED and result.verdict.op is None
    assert not any(t.status == SHAPE_MISMATCH for t in result.tensors)
    ops = result.ops
    assert ops is not None and ops.paired > 100
    assert all(a.shape == b.shape for a, b in _pairs(eager, tmp_path / "sdpa.h5"))
    fused = [f.message for f in ops.fusions if f.message.startswith("fused on B")]
    assert len(fused) == 4  # one per layer: SDPA against eager's bmm/softmax/… chain
    assert fused[0].startswith(
        "fused on B: model.layers.0.self_attn/aten._scaled_dot_product_flash_attention_for_cpu.default#0 ↔ "
    )
    assert fused[0].endswith(" ops on A")
    assert any(name.startswith("model.layers.0.self_attn/aten._softmax") for name in ops.a_only)


def _pairs(a: Path, b: Path) -> list[tuple[object, object]]:
    from precdiff.compare.op_align import align_ops
    from precdiff.store.reader import open_capture

    with open_capture(a) as cap_a, open_capture(b) as cap_b:
        return [(x, y) for x, y in align_ops(cap_a, cap_b).pairs]


@pytest.mark.parametrize(
    ("fault", "op"),
    [
        ("softmax", "model.layers.1.self_attn/aten._softmax.default#0"),
        ("rotary", "model.layers.1.self_attn/aten.add.Tensor#0"),  # q·cos + rotate_half(q)·sin
        ("residual", "model.layers.1/aten.add.Tensor#0"),
        ("rsqrt", "model.layers.1.input_layernorm/aten.rsqrt.default#0"),
    ],
)
def test_planted_op_fault_is_named(
    eager: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, op: str
) -> None:
    with planted(monkeypatch, fault, layer=1):
        faulty = _capture(tmp_path / f"{fault}.h5")
    result = compare(eager, faulty)
    verdict = result.verdict
    assert verdict.status == STATUS_DIVERGED and verdict.layer == 1
    assert verdict.op == op
    assert f"; op {op}: rel-L2 " in verdict.message
    assert result.to_dict()["verdict"]["op"] == op
    assert result.ops is not None and result.ops.jump is not None and result.ops.jump.growth > 100


def test_fused_rms_norm_aligned_at_the_module_boundary(
    eager: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rms_norm_fused(monkeypatch)
    fused = _capture(tmp_path / "fused.h5")
    monkeypatch.undo()
    result = compare(eager, fused)
    assert result.verdict.status != STATUS_DIVERGED and result.verdict.op is None
    assert result.ops is not None
    messages = [f.message for f in result.ops.fusions]
    assert (
        "fused on B: model.layers.0.input_layernorm/precdiff_test.rms_norm.default#0 ↔ 6 ops on A" in messages
    )
    # The norms' module outputs are the comparison points: paired by name, within noise.
    norm = next(t for t in result.tensors if t.name == "model.layers.0.input_layernorm")
    assert norm.rel_l2 is not None and norm.rel_l2 <= norm.noise_floor
