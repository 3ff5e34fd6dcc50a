"""Planted faults: perturb one module's weights in a copy of a tiny model, capture both, and require the
verdict to name exactly that layer and module, on a clean float32 background and on a noisy one
(reference float32, other side bfloat16 with the fault well above bfloat16 noise)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from precdiff.capture import capture
from precdiff.compare import CompareOptions
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.store import open_capture

PROMPT = "Planted faults must be found exactly where they were planted, in every architecture."
# Size of the perturbation relative to the weight's RMS: an output error of tens of percent, well above
# bf16 noise (rounding of one activation is 2^-9 ≈ 2e-3 relative; the compare noise floor for bf16 is
# 0.5·√(2^-8) ≈ 3.1e-2, see docs/compare-json.md).
FAULT_SCALE = 0.3

# (architecture, parameter, expert index or None, layer, module the verdict must name)
CASES = [
    ("llama", "model.layers.2.self_attn.k_proj.weight", None, 2, "model.layers.2.self_attn.k_proj"),
    ("qwen3", "model.layers.1.mlp.down_proj.weight", None, 1, "model.layers.1.mlp.down_proj"),
    (
        "mistral",
        "model.layers.2.post_attention_layernorm.weight",
        None,
        2,
        "model.layers.2.post_attention_layernorm",
    ),
    ("phi3", "model.layers.1.self_attn.o_proj.weight", None, 1, "model.layers.1.self_attn.o_proj"),
    (
        "qwen2_moe",
        "model.layers.2.mlp.experts.{expert}.down_proj.weight",
        "routed",
        2,
        "model.layers.2.mlp.experts",
    ),
]


def most_routed_expert(reference: Path, layer: int) -> int:
    """The expert the router picked most often in the reference run (from the captured router indices)."""
    with open_capture(reference) as cap:
        indices = cap.tensor(f"model.layers.{layer}.mlp.gate[2]")
    values, counts = np.unique(indices, return_counts=True)
    return int(values[np.argmax(counts)])


def plant(source: Path, target: Path, parameter: str, expert: int | None) -> None:
    """Copy a model directory and perturb one parameter (for an MoE, one expert's own weight: checkpoints
    store experts separately even where transformers fuses them in memory)."""
    shutil.copytree(source, target)
    weights_path = target / "model.safetensors"
    weights = load_file(weights_path)  # safetensors: no unpickling
    name = parameter.format(expert=expert)
    weight = weights[name].float()
    rms = weight.pow(2).mean().sqrt()
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(7)) * rms * FAULT_SCALE
    weights[name] = (weight + noise).to(weights[name].dtype)
    save_file(weights, weights_path, metadata={"format": "pt"})


@pytest.fixture(scope="module")
def reference_captures(
    tmp_path_factory: pytest.TempPathFactory, tiny_dir: Callable[[str], Path]
) -> dict[str, Path]:
    captures: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("planted_ref")
    for arch in sorted({case[0] for case in CASES}):
        path = folder / f"{arch}.h5"
        capture(
            str(tiny_dir(arch)),
            path,
            CaptureInput(prompt=PROMPT),
            CaptureOptions(device="cpu", dtype="float32", max_new_tokens=4),
        )
        captures[arch] = path
    return captures


@pytest.mark.parametrize("background", ["float32", "bfloat16"])
@pytest.mark.parametrize("arch, parameter, expert, layer, module", CASES, ids=[c[0] for c in CASES])
def test_planted_fault_is_named_exactly(
    tmp_path: Path,
    tiny_dir: Callable[[str], Path],
    reference_captures: dict[str, Path],
    arch: str,
    parameter: str,
    expert: str | None,
    layer: int,
    module: str,
    background: str,
) -> None:
    faulty_dir = tmp_path / "faulty"
    expert_index = most_routed_expert(reference_captures[arch], layer) if expert == "routed" else None
    plant(tiny_dir(arch), faulty_dir, parameter, expert_index)
    other = tmp_path / "faulty.h5"
    capture(
        str(faulty_dir),
        other,
        CaptureInput(tokens_from=str(reference_captures[arch])),
        CaptureOptions(device="cpu", dtype=background, max_new_tokens=4),
    )
    result = compare(reference_captures[arch], other, options=CompareOptions(force=True))
    assert result.verdict.status == "diverged"
    assert (result.verdict.layer, result.verdict.module) == (layer, module), result.verdict


def test_bf16_background_alone_is_within_noise(
    tmp_path: Path, reference_captures: dict[str, Path], tiny_dir: Callable[[str], Path]
) -> None:
    other = tmp_path / "bf16.h5"
    capture(
        str(tiny_dir("llama")),
        other,
        CaptureInput(tokens_from=str(reference_captures["llama"])),
        CaptureOptions(device="cpu", dtype="bfloat16", max_new_tokens=4),
    )
    result = compare(reference_captures["llama"], other)
    assert result.verdict.status == "within_noise", result.verdict
    assert (result.verdict.layer, result.verdict.module) == (None, None)
