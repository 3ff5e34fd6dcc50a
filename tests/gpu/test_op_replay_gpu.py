"""GPU checks of aten-op replay (run with the device tool; skipped without CUDA).

An op-level bf16 capture on CUDA replays op by op on the same GPU bit for bit (inputs rebuilt from the
stored producers through the recorded layouts and view ops); the same forward captured on the CPU
replays on CUDA within what bf16 explains, standard and batch-invariant kernels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

IDS = (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)


def _capture(path: Path, device: str) -> Path:
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    options = CaptureOptions(device=device, dtype="bfloat16", level="op", max_new_tokens=0, top_k=2)
    return capture("tiny:llama", path, CaptureInput(input_ids=IDS), options).path


def _ops(path: Path) -> list[str]:
    """Layer 1's op outputs, less the auxiliary outputs (logsumexp, RNG state) of fused attention
    kernels, which only that device's kernel computes: replay refuses them with a one-line error."""
    from precdiff.replay.aten_call import DEVICE_ATTENTION
    from precdiff.store import open_capture

    with open_capture(path) as cap:
        names = [i.name for i in cap.tensor_infos() if i.kind == "op_output" and "layers.1." in i.name]
    fused = tuple(prefix.removeprefix("aten.") for prefix in DEVICE_ATTENTION)
    return [n for n in names if not (any(f in n for f in fused) and not n.endswith("[0]"))]


def test_cuda_capture_replays_bit_for_bit_on_cuda(tmp_path: Path) -> None:
    from precdiff.replay import ReplayOptions, replay

    run = _capture(tmp_path / "cuda.h5", "cuda")
    names = _ops(run)
    assert len(names) > 30
    results = {n: replay(run, ReplayOptions(tensor=n, device="cuda")) for n in names}
    assert all(r for r in results.values()), [r.message for r in results.values() if not r]
    assert [n for n, r in results.items() if not r.reproduced_bitwise] == []


@pytest.mark.parametrize("kernels", ["standard", "batch-invariant"])
def test_cpu_capture_replays_within_bf16_on_cuda(tmp_path: Path, kernels: str) -> None:
    from precdiff.replay import ReplayOptions, replay

    run = _capture(tmp_path / "cpu.h5", "cpu")
    for name in _ops(run):
        result = replay(run, ReplayOptions(tensor=name, device="cuda", kernels=kernels))
        assert result, result.message
        assert result.device.startswith("cuda")
