"""compare() + localize() on synthetic captures with planted faults, comparability and edge cases."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from precdiff.compare.compare import compare, infer_layers_path
from precdiff.compare.logprobs import compare_topk, position_kl
from precdiff.compare.options import CompareOptions
from precdiff.errors import InputError, NotComparableError
from precdiff.store.format import layer_index as layer_of
from precdiff.store.reader import TopK

MakeCapture = Callable[..., Path]

LAYER_MODULES = (
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "self_attn[0]",
    "post_attention_layernorm",
    "mlp.gate_proj",
    "mlp.act_fn",
    "mlp.up_proj",
    "mlp.down_proj",
    "mlp",
)
NAMES = (
    ["model.embed_tokens"]
    + [f"model.layers.{i}.{m}" for i in range(3) for m in LAYER_MODULES + ("",)]
    + ["model.norm", "lm_head"]
)
NAMES = [n.rstrip(".") for n in NAMES]
BF16_RUN = {"dtype": "bfloat16"}
MESSAGE = re.compile(
    r"^divergence jumps at layer (\d+) in (\S+): rel-L2 \d\.\de[-+]\d\d → \d\.\de[-+]\d\d, growth ×[\d.e+]+ over the error it received$"
)


def model_tensors(
    fault: str | None = None, *, noise: float = 5e-3, fault_err: float = 0.2, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A and B in forward order; B carries `noise` relative error, `fault_err` from `fault` on."""
    rng = np.random.default_rng(seed)
    a, b = {}, {}
    level = noise
    for name in NAMES:
        if name == fault:
            level = fault_err
        x = rng.standard_normal((1, 4, 8)).astype(np.float32)
        d = rng.standard_normal(x.shape).astype(np.float32)
        d *= level * np.linalg.norm(x) / np.linalg.norm(d)
        a[name], b[name] = torch.from_numpy(x), torch.from_numpy(x + d)
    return a, b


@pytest.mark.parametrize(
    "fault",
    [
        "model.layers.1.self_attn.k_proj",
        "model.layers.2.mlp.down_proj",
        "model.layers.0.input_layernorm",
        "model.layers.1.mlp.gate_proj",
    ],
)
def test_planted_jump_is_named(make_capture: MakeCapture, fault: str) -> None:
    a, b = model_tensors(fault)
    result = compare(make_capture("a.h5", a), make_capture("b.h5", b, manifest=BF16_RUN))
    v = result.verdict
    assert v.status == "diverged" and not result
    assert (v.layer, v.module) == (int(fault.split(".")[2]), fault)
    match = MESSAGE.match(v.message)
    assert match and match.groups() == (str(v.layer), fault), v.message
    assert v.growth is not None and v.growth > 5


def test_noise_everywhere_is_within_noise(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)
    result = compare(make_capture("a.h5", a), make_capture("b.h5", b, manifest=BF16_RUN))
    assert result.verdict.status == "within_noise" and result
    assert [d.field for d in result.differences] == ["dtype"]
    assert [layer.label for layer in result.layers] == ["embeddings", "layer 0", "layer 1", "layer 2", "head"]


def test_same_noise_is_a_divergence_between_fp32_runs(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)  # 5e-3 is far above the fp32 floor 1.2e-4: it jumps at the first tensor
    result = compare(make_capture("a.h5", a), make_capture("b.h5", b))
    assert result.verdict.status == "diverged"
    assert result.verdict.module == "model.embed_tokens" and result.verdict.layer is None
    assert result.verdict.message.startswith("divergence jumps before the first layer in model.embed_tokens")


def test_noise_floor_override(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)
    result = compare(
        make_capture("a.h5", a), make_capture("b.h5", b), options=CompareOptions(noise_floor=0.05)
    )
    assert result.verdict.status == "within_noise"
    assert all(t.noise_floor == 0.05 for t in result.tensors)


def test_identical_captures_match(make_capture: MakeCapture) -> None:
    a, _ = model_tensors(None)
    result = compare(make_capture("a.h5", a), make_capture("b.h5", a))
    assert result.verdict.status == "match"
    assert result.verdict.message == f"match: all {len(NAMES)} tensors are bitwise identical"
    assert all(t.exact and t.rel_l2 == 0.0 and t.cosine == 1.0 for t in result.tensors)


def test_nan_in_b_diverges_at_its_first_tensor(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)
    for name in NAMES[NAMES.index("model.layers.1.mlp.up_proj") :]:
        b[name] = b[name].clone()
        b[name][0, 0, 0] = float("nan")
    result = compare(make_capture("a.h5", a), make_capture("b.h5", b, manifest=BF16_RUN))
    v = result.verdict
    assert (v.status, v.reason, v.layer, v.tensor) == (
        "diverged",
        "nonfinite",
        1,
        "model.layers.1.mlp.up_proj",
    )
    assert v.message == (
        "divergence: NaN/Inf first differ at layer 1 in model.layers.1.mlp.up_proj: "
        "A has 0 NaN 0 Inf, B has 1 NaN 0 Inf"
    )
    broken = {t.name: t for t in result.tensors}["model.layers.1.mlp.up_proj"]
    assert math.isnan(broken.rel_l2 or 0.0) and broken.nan_b == 1 and broken.nonfinite_mismatch == 1
    document = result.to_dict()
    json.dumps(document, allow_nan=False)  # strict JSON even with NaN metrics
    assert document["tensors"][NAMES.index("model.layers.1.mlp.up_proj")]["rel_l2"] == "nan"


def test_unmatched_shape_mismatch_and_filters(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)
    del b["lm_head"]
    b["extra"] = torch.zeros(2)
    b["model.norm"] = torch.zeros(1, 5, 8)
    result = compare(make_capture("a.h5", a), make_capture("b.h5", b, manifest=BF16_RUN))
    assert result.unmatched_a == ("lm_head",) and result.unmatched_b == ("extra",)
    norm = {t.name: t for t in result.tensors}["model.norm"]
    assert norm.status == "shape_mismatch" and norm.rel_l2 is None
    assert result.verdict.reason == "shape" and result.verdict.status == "diverged"
    only = compare(
        make_capture("a2.h5", a),
        make_capture("b2.h5", a),
        options=CompareOptions(include=(r"layers\.1\.",), exclude=("mlp",)),
    )
    assert {t.layer for t in only.tensors} == {1} and not any("mlp" in t.name for t in only.tensors)


def test_summary_only_captures_compare_norms(make_capture: MakeCapture) -> None:
    a, b = model_tensors("model.layers.1.mlp.up_proj", fault_err=0.5)
    b = {name: value * 1.5 if name == "model.layers.1.mlp.up_proj" else value for name, value in b.items()}
    result = compare(
        make_capture("a.h5", a, summary=True), make_capture("b.h5", b, summary=True, manifest=BF16_RUN)
    )
    up = {t.name: t for t in result.tensors}["model.layers.1.mlp.up_proj"]
    assert up.status == "stats_only" and up.cosine is None
    # the stored norms give the lower bound |‖b‖−‖a‖|/‖a‖ of rel-L2
    assert up.rel_l2 is not None and 0.3 < up.rel_l2 < 0.8
    assert result.verdict.module == "model.layers.1.mlp.up_proj"


def test_refuses_different_weights_and_tokens(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)
    path_a = make_capture("a.h5", a)
    other = make_capture("w.h5", b, manifest={"model": {"weights_sha256": "v" * 64}})
    with pytest.raises(NotComparableError) as err:
        compare(path_a, other)
    assert str(err.value) == (
        f"{path_a} and {other} ran different weights (weights_sha256 wwwwwwwwwwww… vs "
        "vvvvvvvvvvvv…); compare two captures of the same model, or pass --force / force=True "
        "to compare anyway"
    )
    tokens = make_capture("t.h5", b, ids=(1, 2, 9, 4))
    with pytest.raises(NotComparableError) as err:
        compare(path_a, tokens)
    assert str(err.value) == (
        f"{path_a} and {tokens} saw different input tokens (4 vs 4 tokens, first difference "
        f"at position 2: 3 vs 9); pass --tokens-from {path_a} to capture B with A's exact "
        "tokens, or --force / force=True to compare anyway"
    )
    config = make_capture("c.h5", b, manifest={"model": {"config": {"hidden_size": 16, "dtype": "bfloat16"}}})
    with pytest.raises(NotComparableError, match=r"ran different models \(hidden_size 8 vs 16\)"):
        compare(path_a, config)
    forced = compare(path_a, tokens, options=CompareOptions(force=True))
    assert forced.forced and {d.field: d.severity for d in forced.differences}["input.ids"] == "warn"


def test_partial_capture_is_compared_and_flagged(make_capture: MakeCapture) -> None:
    a, b = model_tensors(None)
    partial_b = {name: b[name] for name in NAMES[:10]}
    path_b = make_capture("b.h5", partial_b, finish=False, manifest=BF16_RUN)
    result = compare(make_capture("a.h5", a), path_b)
    assert not result.b.complete and result.b.path.endswith(".partial")
    assert result.warnings == (
        f"B ({path_b}) is an incomplete capture (interrupted); compared the 10 tensors it holds",
    )
    assert len(result.tensors) == 10 and len(result.unmatched_a) == len(NAMES) - 10


def test_invalid_options_are_input_errors() -> None:
    with pytest.raises(InputError, match=r"invalid regular expression '\(' for --include / include"):
        CompareOptions(include=("(",))
    with pytest.raises(InputError, match="--noise-floor / noise_floor must be ≥ 0, got -1"):
        CompareOptions(noise_floor=-1)


def test_layer_names() -> None:
    assert (
        infer_layers_path(
            ["model.embed_tokens", "model.layers.0.mlp", "model.layers.1", "model.layers.0.mlp.experts.5"]
        )
        == "model.layers"
    )
    assert layer_of("model.layers.12.self_attn[0]", "model.layers") == 12
    assert layer_of("model.layers.3:input[0]", "model.layers") == 3
    assert layer_of("model.norm", "model.layers") is None


def test_logprobs_kl_matches_full_kl_when_topk_is_the_vocabulary() -> None:
    rng = np.random.default_rng(3)
    logits_a, logits_b = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    lp_a = logits_a - np.log(np.exp(logits_a).sum(1, keepdims=True))
    lp_b = logits_b - np.log(np.exp(logits_b).sum(1, keepdims=True))
    ids = np.tile(np.arange(6), (5, 1))
    full = (np.exp(lp_a) * (lp_a - lp_b)).sum(1)
    for t in range(5):
        assert position_kl(ids[t], lp_a[t], ids[t], lp_b[t]) == pytest.approx(full[t], rel=1e-9)
    result = compare_topk(TopK(ids, lp_a), TopK(ids, lp_b))
    assert result.kl_mean == pytest.approx(full.mean(), rel=1e-9)
    assert result.top1_agreement == float(np.mean(lp_a.argmax(1) == lp_b.argmax(1)))
    assert result.max_abs_delta == pytest.approx(np.abs(lp_a - lp_b).max())
    same = compare_topk(TopK(ids, lp_a), TopK(ids, lp_a))
    assert same.exact and same.kl_max == 0.0 and same.top1_agreement == 1.0


def test_generation_near_tie(make_capture: MakeCapture) -> None:
    a, _ = model_tensors(None)
    topk = np.zeros((3, 2), dtype=np.int64), np.zeros((3, 2), dtype=np.float32)
    gen_a = (np.array([5, 6, 7]), *topk, np.array([1.0, 0.02, 0.5], dtype=np.float32))
    gen_b = (np.array([5, 9, 7]), *topk, np.array([1.0, 0.01, 0.5], dtype=np.float32))
    result = compare(
        make_capture("a.h5", a, generation=gen_a),
        make_capture("b.h5", a, generation=gen_b, manifest=BF16_RUN),
    )
    g = result.generation
    assert g is not None and (g.first_divergent_step, g.identical_prefix, g.token_a, g.token_b) == (
        1,
        1,
        6,
        9,
    )
    assert g.near_tie is True and g.near_tie_threshold == 0.0625
    assert result.verdict.status == "within_noise"  # tensors identical, generation not: no "match"
