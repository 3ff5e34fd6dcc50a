"""``check_invariance`` on tiny dense (Llama) and MoE (Qwen2-MoE) float32 models on CPU.

Batch-invariant kernels must give an invariant report at module and op level, with and without
padding, and prefill == decode. A kernel that is batch dependent by construction (``planted.py``) must be
reported not invariant, naming the first tensor that breaks, at module and at op level.
"""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from precdiff.invariance import InvarianceOptions, check_invariance

SMALL = (1, 2, 4)


@pytest.mark.parametrize("level", ["module", "op"])
def test_batch_invariant_dense_is_invariant(level: str) -> None:
    report = check_invariance(
        "tiny:llama",
        InvarianceOptions(device="cpu", kernels="batch-invariant", level=level, batch_sizes=SMALL),
    )
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
            "model.layers.0.mlp.down_proj"
        )


@pytest.mark.parametrize("padding", ["left", "right"])
def test_batch_invariant_dense_is_invariant_with_padding(padding: str) -> None:
    report = check_invariance(
        "tiny:llama",
        InvarianceOptions(device="cpu", kernels="batch-invariant", padding=padding, batch_sizes=SMALL),
    )
    assert report
    assert all(o.padded_length > len(report.probe.ids) for o in report.outputs)


@pytest.mark.parametrize("level", ["module", "op"])
def test_batch_invariant_moe_is_invariant(level: str) -> None:
    report = check_invariance(
        "tiny:qwen2_moe",
        InvarianceOptions(device="cpu", kernels="batch-invariant", level=level, batch_sizes=(1, 2)),
    )
    assert report, report.first_non_invariant
    # The experts' own op sequence depends on which experts the companions hit: reported, not guessed.
    assert any("experts" in t.name for t in report.not_aligned) or level == "module"


@pytest.mark.parametrize(
    "level, first",
    [
        ("module", "model.layers.1.mlp.act_fn"),
        ("op", "model.layers.1.mlp.act_fn/aten.mul.Tensor#0"),
    ],
)
def test_batch_dependent_kernel_is_named_as_the_first_break(
    planted_dense: tuple[nn.Module, Any], level: str, first: str
) -> None:
    model, tokenizer = planted_dense
    report = check_invariance(
        model,
        InvarianceOptions(kernels="batch-invariant", level=level, batch_sizes=SMALL),
        tokenizer=tokenizer,
    )
    assert not report and not report.batch_invariant
    headline = report.first_non_invariant
    assert headline is not None and headline.name == first, headline
    assert headline.max_ulp >= 1 and report.to_dict()["first_non_invariant"] == headline.name
    # Everything before the planted module is invariant under the batch-invariant kernels.
    names = [t.name for t in report.tensors]
    assert all(t.max_ulp == 0 for t in report.tensors[: names.index(first)])
    # Decode runs one row: the planted rounding differs from the prefill's.
    assert not report.prefill_decode_consistent


def test_batch_dependent_kernel_in_moe_is_named() -> None:
    from planted import plant_batch_dependent

    from precdiff.capture import tiny

    model = plant_batch_dependent(tiny.build_model("qwen2_moe"), "model.layers.0.mlp.shared_expert.act_fn")
    report = check_invariance(
        model,
        InvarianceOptions(kernels="batch-invariant", level="op", batch_sizes=(1, 2)),
        tokenizer=tiny.build_tokenizer("qwen2_moe"),
    )
    headline = report.first_non_invariant
    assert headline is not None, report.to_dict()
    assert headline.name == "model.layers.0.mlp.shared_expert.act_fn/aten.mul.Tensor#0", headline


def test_report_json_is_complete_and_finite() -> None:
    import json

    report = check_invariance(
        "tiny:llama", InvarianceOptions(device="cpu", level="module", batch_sizes=(1, 2))
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["schema"] == "precdiff.invariance" and data["schema_version"] == 1
    assert data["invariant"] == bool(report)
    assert data["summary"]["tensors"] == len(data["tensors"]) == len(report.tensors)
    assert set(data["first_non_invariant_by_batch_size"]) == {"2"}
    assert data["probe"]["length"] == len(report.probe.ids) and data["run"]["device"] == "cpu"
