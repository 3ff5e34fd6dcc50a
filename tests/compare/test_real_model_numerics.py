"""Per-token error under massive activations, the noise model on both sides of its line, near-ties in
ulps of the top logit, and verdicts from outputs alone (issue 10)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from precdiff.compare.compare import compare
from precdiff.compare.logprobs import compare_generation
from precdiff.compare.per_token import MASSIVE_RATIO, TokenSums, token_axis_of
from precdiff.store.reader import Generation, TopK

MakeCapture = Callable[..., Path]
TOKENS, HIDDEN, LAYERS = 8, 32, 6
GPU = {"device": {"type": "cuda", "index": 0, "name": "NVIDIA H200", "capability": "9.0"}}


def stream(
    fault_layer: int | None, fault: float, noise: float, *, massive: float = 1.0, ordinary_only: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per layer: mlp.down_proj and the layer output. B = A + ``noise`` relative error per tensor, plus
    ``fault`` relative error on down_proj of ``fault_layer`` and a tenth of it on every later output."""
    rng = np.random.default_rng(1)
    a: dict[str, np.ndarray] = {}
    b: dict[str, np.ndarray] = {}
    carried = 0.0
    scale = np.ones((1, TOKENS, 1))
    scale[0, 0, 0] = massive  # token 0 carries the massive activation

    def noisy(ref: np.ndarray, rel: float, extra: float) -> np.ndarray:
        direction = rng.normal(size=ref.shape) * scale
        out = ref + direction / np.linalg.norm(direction) * np.linalg.norm(ref) * rel
        if extra:
            bump = rng.normal(size=ref.shape)
            if ordinary_only:
                bump[0, 0] = 0.0
            per_token = np.linalg.norm(ref[0, 1:]) if ordinary_only else np.linalg.norm(ref)
            out = out + bump / np.linalg.norm(bump) * per_token * extra
        return out

    for layer in range(LAYERS):
        for suffix, own in ((".mlp.down_proj", fault if layer == fault_layer else 0.0), ("", 0.0)):
            ref = rng.normal(size=(1, TOKENS, HIDDEN)) * scale
            name = f"model.layers.{layer}{suffix}"
            a[name] = ref.astype(np.float32)
            b[name] = noisy(ref, noise * (1.15**layer), max(own, carried)).astype(np.float32)
        if layer == fault_layer:
            carried = fault / 10
    return a, b


def test_massive_token_hides_an_ordinary_token_fault_from_the_whole_tensor_norm(
    make_capture: MakeCapture,
) -> None:
    a, b = stream(3, 0.2, 2e-3, massive=1000.0, ordinary_only=True)
    manifest = {"model": {"num_layers": LAYERS}, "input": {"num_tokens": TOKENS}}
    ids = list(range(1, TOKENS + 1))
    result = compare(
        make_capture("a.h5", a, manifest=manifest, ids=ids),
        make_capture("b.h5", b, manifest={**manifest, "dtype": "bfloat16", **GPU}, ids=ids),
    )
    down = next(t for t in result.tensors if t.name == "model.layers.3.mlp.down_proj")
    assert down.rel_l2 is not None and down.rel_l2 < down.noise_floor / 10  # the whole tensor misses it
    assert down.massive_tokens == (0,)
    assert (result.verdict.status, result.verdict.layer, result.verdict.module) == (
        "diverged",
        3,
        "model.layers.3.mlp.down_proj",
    ), result.verdict.message
    assert [m.position for m in result.massive_tokens] == [0]
    assert result.massive_tokens[0].norm_ratio > MASSIVE_RATIO
    matrix = result.to_dict()["token_errors"]
    assert matrix["token_ids"] == ids
    assert [len(row["rel_l2"]) for row in matrix["stages"]] == [TOKENS] * LAYERS
    assert matrix["stages"][3]["rel_l2"][0] < matrix["stages"][3]["rel_l2"][1]


def test_same_settings_make_any_error_a_signal(make_capture: MakeCapture) -> None:
    """Issue 10 item 5: bf16 vs bf16 on one device, everything before bitwise equal, down_proj ×1.01."""
    a, b = stream(None, 0.0, 0.0)
    b["model.layers.4.mlp.down_proj"] = (a["model.layers.4.mlp.down_proj"] * 1.01).astype(np.float32)
    b["model.layers.4"] = (a["model.layers.4"] * 1.002).astype(np.float32)
    b["model.layers.5.mlp.down_proj"] = (a["model.layers.5.mlp.down_proj"] * 1.002).astype(np.float32)
    b["model.layers.5"] = (a["model.layers.5"] * 1.002).astype(np.float32)
    bf16 = {"model": {"num_layers": LAYERS}, "dtype": "bfloat16"}
    result = compare(make_capture("a.h5", a, manifest=bf16), make_capture("b.h5", b, manifest=bf16))
    assert result.expected_exact
    assert (result.verdict.status, result.verdict.layer, result.verdict.module) == (
        "diverged",
        4,
        "model.layers.4.mlp.down_proj",
    ), result.verdict.message
    # The same numbers between different devices stay below what bf16 noise can reach from zero.
    other = compare(
        make_capture("a2.h5", a, manifest=bf16), make_capture("b2.h5", b, manifest={**bf16, **GPU})
    )
    assert not other.expected_exact
    assert other.verdict.status == "within_noise", other.verdict.message


@pytest.mark.parametrize(("fault", "status"), [(0.012, "diverged"), (0.0, "within_noise")])
def test_a_jump_below_the_dtype_floor_is_found_and_smooth_noise_is_not(
    make_capture: MakeCapture, fault: float, status: str
) -> None:
    """fp32 reference vs bf16 on another device: bf16-like noise growing ×1.15 per layer from 2e-3; a module
    that adds 1.2e-2 (below the 3.1e-2 floor) on top of it is a jump, the noise alone is not."""
    a, b = stream(3 if fault else None, fault, 2e-3)
    manifest = {"model": {"num_layers": LAYERS}}
    result = compare(
        make_capture("a.h5", a, manifest=manifest),
        make_capture("b.h5", b, manifest={**manifest, "dtype": "bfloat16", **GPU}),
    )
    assert result.verdict.status == status, result.verdict.message
    if fault:
        assert (result.verdict.layer, result.verdict.module) == (3, "model.layers.3.mlp.down_proj")
        assert result.verdict.rel_l2 is not None and result.verdict.rel_l2 < result.verdict.noise_floor


def _generation(top: list[float], second: list[float], ids: list[int]) -> Generation:
    lp_top = np.zeros(len(ids), dtype=np.float32)
    lp_second = np.asarray(second, dtype=np.float32) - np.asarray(top, dtype=np.float32)
    topk_ids = np.asarray([[i, i + 1] for i in ids], dtype=np.int64)
    return Generation(
        ids=np.asarray(ids, dtype=np.int64),
        topk=TopK(topk_ids, np.stack([lp_top, lp_second], axis=1)),
        margin=-lp_second,
        top_logit=np.asarray(top, dtype=np.float32),
    )


def test_a_margin_of_one_bf16_ulp_is_a_near_tie() -> None:
    import torch

    logits = torch.tensor([20.0, 20.0 - 0.125, 19.0]).to(torch.bfloat16).float()  # one bf16 ulp apart at 20
    a = _generation([float(logits[0])], [float(logits[1])], [5])
    b = _generation([float(logits[0])], [float(logits[0])], [6])  # exact tie on the other side
    gen = compare_generation(a, b, None, ("BF16", "F32"))
    assert (gen.first_divergent_step, gen.near_tie, gen.logit_ulp, gen.margin_ulps(gen.margin_a)) == (
        0,
        True,
        0.125,
        1.0,
    )
    assert gen.near_tie_threshold == 0.5
    fp32 = compare_generation(a, b, None, ("F32",))
    assert (fp32.near_tie, fp32.near_tie_threshold) == (False, 0.01)  # fp32 ulps are tiny: not a tie
    old = Generation(ids=a.ids, topk=a.topk, margin=a.margin)  # a capture without top logits
    assert compare_generation(old, b, None, ("BF16",)).near_tie_threshold == 16 * 2.0**-8


def test_token_sums_match_a_direct_computation_across_block_cuts() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    b[1, 2, 0] = np.nan
    sums = TokenSums((2, 5, 3), 1, 5)
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    for cut in ((0, 7), (7, 16), (16, 30)):
        sums.add(sums.measure(cut[0], flat_a[cut[0] : cut[1]], flat_b[cut[0] : cut[1]]))
    errors = sums.result(0.0)
    for token in (0, 1, 3, 4):
        expected = np.linalg.norm(b[:, token] - a[:, token]) / np.linalg.norm(a[:, token])
        assert errors.rel_l2[token] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(errors.rel_l2[2])


def test_token_axis_prefers_the_recorded_axis() -> None:
    class Info:
        shape = (1, 4, 4)
        token_axis = 2

    class Guess:
        shape = (1, 4, 4)

    assert (token_axis_of(Info(), 4), token_axis_of(Guess(), 4), token_axis_of(Guess(), 1)) == (2, 1, None)


def _outputs_only(make_capture: MakeCapture, name: str, flip: bool, manifest: dict[str, object]) -> Path:
    ids = np.asarray([[3, 4], [5, 6]], dtype=np.int64)
    lps = np.log(np.asarray([[0.7, 0.2], [0.6, 0.3]], dtype=np.float32))
    if flip:
        ids = ids[:, ::-1].copy()
    return make_capture(name, {}, manifest=manifest, logprobs=(ids, lps), ids=[1, 2])  # one row per token


@pytest.mark.parametrize(("flip", "status"), [(False, "match"), (True, "diverged")])
def test_outputs_only_comparison_has_a_verdict_that_can_fail(
    make_capture: MakeCapture, flip: bool, status: str
) -> None:
    result = compare(
        _outputs_only(make_capture, "a.h5", False, {}),
        _outputs_only(make_capture, "b.h5", flip, {"dtype": "bfloat16", **GPU}),
    )
    assert (result.verdict.status, result.verdict.reason) == (status, "outputs"), result.verdict.message


def test_kernel_settings_collapse_into_one_header_line() -> None:
    from precdiff.compare.results import Difference
    from precdiff.report.differences import grouped

    differences = [
        Difference("dtype", "float32", "bfloat16", "warn"),
        Difference("kernels", "standard", "batch-invariant", "warn"),
        Difference("kernel_settings.backend", None, "triton", "warn"),
        *(Difference(f"kernel_settings.globals.flag{i}", False, True, "warn") for i in range(25)),
        Difference("versions.torch", "2.11", "2.13", "warn"),
    ]
    assert grouped(differences, ("standard", "batch-invariant")) == [
        ("dtype", "float32 vs bfloat16"),
        ("kernels", "standard vs batch-invariant (triton)"),
        ("versions", "torch 2.11 vs 2.13"),
    ]
