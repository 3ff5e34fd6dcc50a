"""``check_invariance`` on tiny dense (Llama) and MoE (Qwen2-MoE) float32 models on CPU.

Batch-invariant kernels must give an invariant report at module and op level, with and without
padding, and prefill == decode. Standard kernels must be reported not invariant, naming the first
tensor that breaks (the silu tail of a dense MLP, the shared-expert sigmoid of the MoE block).
"""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from precdiff.invariance import InvarianceOptions, check_invariance

SMALL = (1, 2, 4)


@pytest.mark.parametrize("level", ["module", "op"])
def test_batch_invariant_dense_is_invariant(level: str) -> None:
    report = check_invariance("tiny:llama", InvarianceOptions(device="cpu", kernels="batch-invariant",
                                                              level=level, batch_sizes=SMALL))
    assert report, report.first_non_invariant
    assert report.first_non_invariant is None and report.batch_invariant and report.prefill_decode_consistent
    assert [o.batch_size for o in report.outputs] == [2, 4]
    assert all(o.logprobs.bitwise_equal and o.greedy_changed_positions == () for o in report.outputs)
    assert len(report.decode) == 4 and all(d.logits.max_ulp == 0 for d in report.decode)
    names = [t.name for t in report.tensors]
    assert "model.layers.0.mlp.down_proj" in names
    if level == "op":
        assert "model.layers.0.mlp.down_proj/aten.mm.default#0" in names
        assert names.index("model.layers.0.mlp.down_proj/aten.mm.default#0") < names.index(
            "model.layers.0.mlp.down_proj")


@pytest.mark.parametrize("padding", ["left", "right"])
def test_batch_invariant_dense_is_invariant_with_padding(padding: str) -> None:
    report = check_invariance("tiny:llama", InvarianceOptions(device="cpu", kernels="batch-invariant",
                                                              padding=padding, batch_sizes=SMALL))
    assert report
    assert all(o.padded_length > len(report.probe.ids) for o in report.outputs)


@pytest.mark.parametrize("level", ["module", "op"])
def test_batch_invariant_moe_is_invariant(level: str) -> None:
    report = check_invariance("tiny:qwen2_moe", InvarianceOptions(device="cpu", kernels="batch-invariant",
                                                                  level=level, batch_sizes=(1, 2)))
    assert report, report.first_non_invariant
    # The experts' own op sequence depends on which experts the companions hit: reported, not guessed.
    assert any("experts" in t.name for t in report.not_aligned) or level == "module"


@pytest.mark.parametrize("level, first", [
    ("module", ".mlp.act_fn"),
    ("op", ".mlp.act_fn/aten.silu.default#0"),
])
def test_standard_dense_is_not_invariant_and_names_the_first_break(
        dense_variant: tuple[nn.Module, Any], level: str, first: str) -> None:
    model, tokenizer = dense_variant
    report = check_invariance(model, InvarianceOptions(level=level, batch_sizes=SMALL), tokenizer=tokenizer)
    assert not report and not report.batch_invariant
    headline = report.first_non_invariant
    assert headline is not None and headline.name.endswith(first), headline
    assert headline.max_ulp >= 1 and report.to_dict()["first_non_invariant"] == headline.name
    # Standard CPU decode (M=1 GEMMs) differs from the prefill.
    assert not report.prefill_decode_consistent


def test_standard_moe_is_not_invariant() -> None:
    from precdiff.capture import tiny

    model = tiny.build_model("qwen2_moe")
    report = check_invariance(model, InvarianceOptions(level="op", batch_sizes=(1, 2)),
                              tokenizer=tiny.build_tokenizer("qwen2_moe"))
    headline = report.first_non_invariant
    assert headline is not None and headline.name.endswith(".mlp/aten.sigmoid.default#0"), headline


def test_report_json_is_complete_and_finite() -> None:
    import json

    report = check_invariance("tiny:llama", InvarianceOptions(device="cpu", level="module", batch_sizes=(1, 2)))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["schema"] == "precdiff.invariance" and data["schema_version"] == 1
    assert data["invariant"] == bool(report)
    assert data["summary"]["tensors"] == len(data["tensors"]) == len(report.tensors)
    assert set(data["first_non_invariant_by_batch_size"]) == {"2"}
    assert data["probe"]["length"] == len(report.probe.ids) and data["run"]["device"] == "cpu"
