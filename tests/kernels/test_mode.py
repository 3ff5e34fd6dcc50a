"""The mode switch: settings record, exact restore after exceptions and nesting, error messages."""

from __future__ import annotations

import json

import pytest
import torch

from precdiff.errors import KernelError
from precdiff.kernels import (
    ATTENTION_IMPLEMENTATION,
    KernelSettings,
    active_dispatch_keys,
    batch_invariant_mode,
)


def _flags() -> tuple[object, ...]:
    b = torch.backends
    return (
        b.cuda.matmul.fp32_precision,
        b.cudnn.fp32_precision,
        b.cuda.flash_sdp_enabled(),
        b.cuda.mem_efficient_sdp_enabled(),
        b.cuda.math_sdp_enabled(),
        b.cuda.matmul.allow_bf16_reduced_precision_reduction,
    )


def _mm_is_overridden() -> bool:
    # fp32 GEMM rows differ with M under MKL (see test_cpu_kernels); with the override they do not.
    torch.manual_seed(0)
    w = torch.randn(256, 256)
    x = torch.randn(40, 256)
    return all(torch.equal((x[:m] @ w)[0], (x @ w)[0]) for m in (1, 3, 17))


def test_settings_record_is_json_and_complete() -> None:
    with batch_invariant_mode("cpu") as settings:
        assert isinstance(settings, KernelSettings)
        record = settings.to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "torch" and record["device_type"] == "cpu"
    assert record["attention_implementation"] == ATTENTION_IMPLEMENTATION
    assert {"mm", "addmm", "bmm", "mean.dim", "_softmax", "_log_softmax"} <= set(record["ops_overridden"])
    assert record["globals"]["torch.backends.cuda.flash_sdp_enabled"] == {"old": True, "new": False}
    assert record["globals"]["torch.backends.cuda.matmul.fp32_precision"]["new"] == "ieee"


def test_restores_everything_after_an_exception() -> None:
    before = _flags()
    standard = _mm_is_overridden()
    with pytest.raises(ValueError, match="inside"), batch_invariant_mode("cpu"):
        assert _flags() != before and _mm_is_overridden()
        raise ValueError("inside")
    assert _flags() == before
    assert active_dispatch_keys() == {}
    assert _mm_is_overridden() == standard is False


def test_nesting_keeps_the_outer_mode_until_it_exits() -> None:
    before = _flags()
    with batch_invariant_mode("cpu") as outer:
        inside = _flags()
        with pytest.raises(RuntimeError), batch_invariant_mode(torch.device("cpu")) as inner:
            assert active_dispatch_keys() == {"CPU": 2}
            assert inner.to_dict()["ops_overridden"] == outer.to_dict()["ops_overridden"]
            raise RuntimeError
        assert active_dispatch_keys() == {"CPU": 1} and _flags() == inside and _mm_is_overridden()
    assert active_dispatch_keys() == {} and _flags() == before and not _mm_is_overridden()


def test_unknown_device_type_message() -> None:
    with pytest.raises(KernelError) as info, batch_invariant_mode("meta"):
        pass
    assert str(info.value) == (
        "batch-invariant kernels are not available for device type 'meta'; "
        "use --device cpu, cuda or npu (device=...)"
    )
    assert active_dispatch_keys() == {}


def test_import_needs_neither_triton_nor_torch_npu() -> None:
    import subprocess
    import sys

    code = (
        "import sys, precdiff.kernels; assert 'triton' not in sys.modules and 'torch_npu' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
