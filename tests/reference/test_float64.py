"""``capture --dtype float64``: the reference run stays float64 through the model's float32 upcasts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from precdiff.capture.float64 import check_float64_device, keep_float64
from precdiff.errors import DeviceUnavailableError
from precdiff.store import open_capture


def test_keep_float64_turns_downcasts_of_float64_into_no_ops() -> None:
    x64, x32 = torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float32)
    with keep_float64(True):
        assert x64.to(torch.float32).dtype == torch.float64
        assert x64.float().dtype == torch.float64
        assert torch.softmax(x64, dim=-1, dtype=torch.float32).dtype == torch.float64
        assert x32.to(torch.float32).dtype == torch.float32  # only float64 tensors are kept
        assert x64.to(torch.bfloat16).dtype == torch.bfloat16  # explicit low-precision casts still happen
    assert x64.to(torch.float32).dtype == torch.float32  # only while active
    with keep_float64(False):
        assert x64.float().dtype == torch.float32


def test_float64_capture_holds_float64_activations(runs: dict[str, Path]) -> None:
    with open_capture(runs["fp64"]) as cap:
        assert cap.manifest is not None and cap.manifest.dtype == "float64"
        assert {i.dtype for i in cap.tensor_infos()} == {"F64", "I64"}


def test_float64_refused_on_devices_without_it() -> None:
    with pytest.raises(DeviceUnavailableError) as error:
        check_float64_device(torch.device("mps"))  # an Apple GPU: no float64 kernels, like Ascend NPUs
    assert str(error.value) == (
        "--dtype float64 needs a device with float64 kernels and mps has none; capture the float64 reference "
        "with --device cpu / device='cpu' (same tokens: --tokens-from)"
    )
    check_float64_device(torch.device("cpu"))
