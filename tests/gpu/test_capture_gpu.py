"""GPU checks of the capture stage (run with the device tool; skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("numel", [1, 1000, 32768, 32769, 5_000_003])
def test_triton_stats_match_torch(dtype: torch.dtype, numel: int) -> None:
    from precdiff.capture.stats import combine_partials, tensor_stats_torch
    from precdiff.capture.stats_triton import partials_cuda

    x = (torch.randn(numel, device="cuda") * 4 + 1).to(dtype)
    if numel > 10:
        x[3] = float("nan")
        x[7] = float("inf")
        x[9] = float("-inf")
    ours = np.asarray(combine_partials(partials_cuda(x).cpu().numpy()))
    reference = tensor_stats_torch(x).cpu().numpy()
    np.testing.assert_array_equal(ours[[0, 1, 5, 6]], reference[[0, 1, 5, 6]])  # min, max, counts: exact
    np.testing.assert_allclose(ours[[2, 3, 4]], reference[[2, 3, 4]], rtol=2e-5, atol=1e-6)
    if numel == 1:
        assert ours[3] == 0.0  # the shifted sums make a single element's std exactly 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("numel", [1, 255, 256, 16385, 5_000_003])
def test_triton_sketch_matches_the_torch_definition(dtype: torch.dtype, numel: int) -> None:
    """Checksum bit for bit, sketch to float64 rounding, against capture/sketch.py's torch path on the CPU."""
    from precdiff.capture.sketch import sketch_and_checksum

    x = (torch.randn(numel, device="cuda") * 3).to(dtype)
    if numel > 10:
        x[5] = float("nan")
        x[8] = float("inf")
    gpu_sketch, gpu_checksum = sketch_and_checksum(x)
    cpu_sketch, cpu_checksum = sketch_and_checksum(x.cpu())
    assert int(gpu_checksum) == int(cpu_checksum)
    np.testing.assert_allclose(gpu_sketch.cpu().numpy(), cpu_sketch.numpy(), rtol=1e-12, atol=1e-9)


def test_capture_on_cuda_bf16_round_trips(tmp_path: Path) -> None:
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.store import open_capture

    result = capture(
        "tiny:qwen3_moe",
        tmp_path / "g.h5",
        CaptureInput(prompt="Hello GPU"),
        CaptureOptions(device="cuda", dtype="bfloat16", deterministic=True),
    )
    with open_capture(result.path) as cap:
        assert cap.complete and cap.manifest.device["type"] == "cuda"
        info = cap.info("model.layers.0.self_attn.q_proj")
        values = cap.tensor(info.name).astype(np.float64)
        np.testing.assert_allclose(info.stats["l2"], np.linalg.norm(values), rtol=1e-5)
