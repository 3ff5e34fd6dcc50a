"""Smooth accumulation of rounding across many layers is not a jump; a multiplied error is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from precdiff.compare.compare import compare
from precdiff.compare.localize import MIN_JUMP_GROWTH

LAYERS = 16
MakeCapture = Callable[..., Path]


def residual_stream(errors: list[float]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Layer outputs of A, and of B with the given rel-L2 error at each layer."""
    rng = np.random.default_rng(0)
    a: dict[str, np.ndarray] = {"model.embed_tokens": rng.normal(size=(1, 4, 64)).astype(np.float32)}
    b = dict(a)
    for layer, error in enumerate(errors):
        ref = rng.normal(size=(1, 4, 64))
        direction = rng.normal(size=ref.shape)
        delta = direction / np.linalg.norm(direction) * np.linalg.norm(ref) * error
        a[f"model.layers.{layer}"] = ref.astype(np.float32)
        b[f"model.layers.{layer}"] = (ref + delta).astype(np.float32)
    return a, b


@pytest.mark.parametrize("per_layer_growth", [1.15, 1.4])
def test_smooth_bf16_accumulation_is_within_noise(make_capture: MakeCapture, per_layer_growth: float) -> None:
    errors = [min(0.01 * per_layer_growth**i, 0.06) for i in range(LAYERS)]  # crosses the bf16 floor 3.1e-2
    a, b = residual_stream(errors)
    manifest = {"model": {"num_layers": LAYERS}}
    path_a = make_capture("a.h5", a, manifest=manifest)
    path_b = make_capture("b.h5", b, manifest={**manifest, "dtype": "bfloat16"})
    verdict = compare(path_a, path_b).verdict
    assert (verdict.status, verdict.reason, verdict.layer, verdict.module) == (
        "within_noise",
        "accumulated",
        None,
        None,
    ), verdict.message
    assert verdict.message.startswith("within noise: rel-L2 rises above the noise floor 3.1e-02 (up to")


def test_a_multiplied_error_on_the_same_background_is_a_jump(make_capture: MakeCapture) -> None:
    errors = [0.01 * 1.15**i for i in range(LAYERS)]
    for i in range(10, LAYERS):
        errors[i] *= MIN_JUMP_GROWTH * 1.5
    a, b = residual_stream(errors)
    manifest = {"model": {"num_layers": LAYERS}}
    verdict = compare(
        make_capture("a.h5", a, manifest=manifest),
        make_capture("b.h5", b, manifest={**manifest, "dtype": "bfloat16"}),
    ).verdict
    assert (verdict.status, verdict.layer, verdict.module) == ("diverged", 10, "model.layers.10"), (
        verdict.message
    )


def test_steady_growth_far_beyond_the_floor_is_a_drift(make_capture: MakeCapture) -> None:
    errors = [0.045 * 1.9**i for i in range(8)] + [1.0] * (LAYERS - 8)  # ×1.9 per layer: never a ×2 jump
    a, b = residual_stream(errors)
    manifest = {"model": {"num_layers": LAYERS}}
    verdict = compare(
        make_capture("a.h5", a, manifest=manifest),
        make_capture("b.h5", b, manifest={**manifest, "dtype": "bfloat16"}),
    ).verdict
    assert (verdict.status, verdict.reason, verdict.layer, verdict.module) == (
        "diverged",
        "drift",
        0,
        "model.layers.0",
    ), verdict.message
    assert verdict.message.startswith("divergence drifts from layer 0 (4.5e-02 in model.layers.0) to ")


def test_a_capture_without_layer_tensors_is_not_placed_before_the_layers(make_capture: MakeCapture) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, 4, 32)).astype(np.float32)
    verdict = compare(
        make_capture("a.h5", {"lm_head": logits}), make_capture("b.h5", {"lm_head": logits * 1.5})
    ).verdict
    assert verdict.status == "diverged" and verdict.layer is None
    assert verdict.message.startswith("divergence jumps outside the decoder layers in lm_head"), (
        verdict.message
    )
