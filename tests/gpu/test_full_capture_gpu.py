"""Full captures on CUDA through pinned staging buffers (capture/host_copy.py) against synchronous CPU
copies of the same tensors, bit for bit (run on a GPU machine; skipped without CUDA):

    PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider tests/gpu/test_full_capture_gpu.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from precdiff.capture.hooks import attach
from precdiff.capture.host_copy import MIN_BUFFER, HostCopies
from precdiff.capture.names import name_filter
from precdiff.capture.sink import TensorSink
from precdiff.capture.tiny import build_model
from precdiff.store import CaptureWriter, open_capture
from precdiff.store.dtypes import to_storage

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def stored_bytes(path: Path) -> dict[str, bytes]:
    with open_capture(path) as cap:
        return {name: cap._dataset(cap.info(name))[()].tobytes() for name in cap.tensor_names()}


def test_default_sink_stages_cuda_tensors_in_pinned_buffers() -> None:
    copies = HostCopies.for_device(torch.device("cuda"))
    assert copies is not None and copies.handles(torch.ones(1, device="cuda"))
    staged = copies.stage(torch.arange(10, device="cuda", dtype=torch.bfloat16))
    assert staged._buffer.is_pinned()
    assert staged.host().tobytes() == to_storage(torch.arange(10, dtype=torch.bfloat16)).tobytes()
    staged.release()


def test_staged_cuda_tensors_equal_their_cpu_copies(tmp_path: Path) -> None:
    """Mixed dtypes and sizes (0-d, empty, odd, over the raw-write threshold, non-contiguous), a pool
    small enough to be reused and exhausted, and each tensor overwritten in place right after the hook:
    the file holds the values at hook time."""
    generator = torch.Generator(device="cuda").manual_seed(0)
    dtypes = (torch.bfloat16, torch.float16, torch.float32, torch.int64, torch.bool, torch.uint8)
    copies = HostCopies("cuda", budget=4 * MIN_BUFFER)
    expected: dict[str, bytes] = {}
    path = tmp_path / "cuda.h5"
    with CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cuda"), host_copies=copies)
        for i in range(60):
            dtype = dtypes[i % len(dtypes)]
            shape = [(), (0, 3), (7,), (33, 517), (3, 1000, 311)][i % 5]
            x = torch.randn(shape, device="cuda", generator=generator) * 50
            x = x.to(dtype) if dtype.is_floating_point or dtype == torch.bool else x.abs().to(dtype)
            if i % 7 == 3 and x.ndim == 2:
                x = x.t()  # non-contiguous
            expected[f"t{i}"] = to_storage(x.cpu()).tobytes()
            sink(f"t{i}", f"t{i}", "output", x)
            if dtype == torch.bool:  # the forward goes on, changing the tensor in place
                x.logical_not_()
            else:
                x.add_(1)
        sink.flush()
        writer.finish()
    assert copies.pool.in_use == 0 and copies.pool.allocations >= 2
    assert stored_bytes(path) == expected


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_full_model_capture_on_cuda_equals_synchronous_copies(tmp_path: Path, dtype: torch.dtype) -> None:
    """A real forward under hooks: every stored tensor equals a synchronous ``.cpu()`` of it taken in the
    hook, before the forward went on."""
    model = build_model("llama").to(device="cuda", dtype=dtype).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7]], device="cuda")
    copies: dict[str, bytes] = {}
    path = tmp_path / "model.h5"
    with CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cuda"), num_tokens=7)

        def both(name: str, module: str, role: str, tensor: torch.Tensor) -> None:
            if writer.accepts(tensor.dtype, tensor.shape) is None:
                copies[name] = to_storage(tensor.detach().cpu()).tobytes()
            sink(name, module, role, tensor)

        with torch.no_grad(), attach(model, name_filter(None, None), both):
            model(input_ids=ids, use_cache=False)
        sink.flush()
        writer.finish()
    stored = stored_bytes(path)
    assert len(stored) > 20 and stored == {name: copies[name] for name in stored}
