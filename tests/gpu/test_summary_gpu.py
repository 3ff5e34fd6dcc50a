"""GPU checks of summary sketches through the capture path (run with the device tool; skipped without CUDA).

The sink computes each tensor's sketch and checksum on the GPU (the Triton kernel) and copies them to
the host in batches; here every row's sketch must equal the torch definition recomputed on the CPU
from the same capture's stored data, and a summary-only compare of two GPU runs must localize like
the full compare.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from summaries import ANY, summary_only

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


IDS = tuple(range(5, 69))


def _capture(path: Path, dtype: str, level: str = "module") -> Path:
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    options = CaptureOptions(device="cuda", dtype=dtype, level=level, max_new_tokens=0, focus=(ANY,))
    return capture("tiny:llama", path, CaptureInput(input_ids=IDS), options).path


@pytest.mark.parametrize("level", ["module", "op"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gpu_sketches_match_the_torch_definition_of_the_stored_data(
    tmp_path: Path, dtype: str, level: str
) -> None:
    from precdiff.capture.sketch import sketch_and_checksum
    from precdiff.store import open_capture

    path = _capture(tmp_path / "g.h5", dtype, level)
    with open_capture(path) as cap:
        checked = 0
        for info in cap.tensor_infos():
            stored = cap.sketch(info.name)
            assert stored is not None, info.name
            data = torch.from_numpy(np.ascontiguousarray(cap.tensor(info.name)))
            if info.dtype == "BF16":
                data = data.to(torch.bfloat16)  # decoded exactly to float32; back to its own bits
            sketch, checksum = sketch_and_checksum(data)
            assert int(checksum) % (1 << 64) == stored[1], info.name
            np.testing.assert_allclose(
                stored[0], sketch.numpy(), rtol=1e-12, atol=1e-9 * float(np.abs(sketch.numpy()).max() + 1)
            )
            checked += 1
    assert checked > 50


def test_gpu_summary_compare_localizes_like_the_full_compare(tmp_path: Path) -> None:
    from precdiff.compare.compare import compare

    a, b = _capture(tmp_path / "fp32.h5", "float32"), _capture(tmp_path / "bf16.h5", "bfloat16")
    full = compare(a, b)
    summary = compare(summary_only(a, tmp_path / "a.h5"), summary_only(b, tmp_path / "b.h5"))
    assert {t.status for t in summary.tensors} == {"estimated"}
    assert (summary.verdict.status, summary.verdict.layer) == (full.verdict.status, full.verdict.layer)
    for exact, estimated in zip(full.tensors, summary.tensors, strict=True):
        if exact.rel_l2:
            assert estimated.rel_l2 is not None and abs(estimated.rel_l2 / exact.rel_l2 - 1) < 0.25, (
                exact.name
            )


def test_gpu_op_level_summary_capture_matches_the_stored_data_of_a_full_one(tmp_path: Path) -> None:
    """Op level without focus: small tensors' summaries share kernel launches, launched before any
    in-place op; each tensor's checksum and sketch equal the torch definitions of the same tensor
    stored in full by a second, identical forward (the forward is deterministic)."""
    from precdiff.capture import capture
    from precdiff.capture.sketch import sketch_and_checksum
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.store import open_capture

    def run(path: Path, focus: tuple[str, ...]) -> Path:
        options = CaptureOptions(
            device="cuda", dtype="float32", level="op", max_new_tokens=0, summary=True, focus=focus
        )
        return capture("tiny:llama", path, CaptureInput(input_ids=IDS), options).path

    summary, full = run(tmp_path / "s.h5", ()), run(tmp_path / "f.h5", (ANY,))
    with open_capture(summary) as cap, open_capture(full) as ref:
        names = [info.name for info in cap.tensor_infos() if cap.sketch(info.name) is not None]
        assert len(names) > 200
        for name in names:
            stored = cap.sketch(name)
            assert stored is not None
            data = torch.from_numpy(np.ascontiguousarray(ref.tensor(name)))
            sketch, checksum = sketch_and_checksum(data)
            assert stored[1] == int(checksum) % (1 << 64), name
            np.testing.assert_allclose(stored[0], sketch.numpy(), rtol=1e-12, atol=1e-9)
