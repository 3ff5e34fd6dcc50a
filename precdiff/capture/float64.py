"""The float64 reference run: which devices can do it, and float64 kept through the model's upcasts.

Hugging Face model code upcasts low-precision activations to float32 on purpose at a few places
(``LlamaRMSNorm`` does ``hidden_states.to(torch.float32)``, eager attention ``softmax(...,
dtype=torch.float32)``, many heads ``logits.float()``). For a float64 run these upcasts are
*downcasts* that would round the reference to float32 precision at every norm. :func:`keep_float64`
turns them into no-ops for float64 tensors, so every activation of the reference stays float64.
What it does not change: tensors created in float32 from scratch (the RoPE ``inv_freq`` buffer and the
cos/sin tables computed from it are float32 in every run, the reference included; all sides share
them, so they cancel out of every comparison against the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from precdiff.errors import DeviceUnavailableError

# Device types whose kernels compute float64 (Ascend NPUs and Apple MPS do not).
FLOAT64_DEVICE_TYPES = frozenset({"cpu", "cuda"})


def check_float64_device(device: torch.device) -> None:
    """Refuse a float64 run on a device without float64 kernels.

    Raises:
        DeviceUnavailableError: ``device`` is not a CPU or CUDA device.
    """
    if device.type not in FLOAT64_DEVICE_TYPES:
        raise DeviceUnavailableError(
            f"--dtype float64 needs a device with float64 kernels and {device.type} has none; capture the "
            "float64 reference with --device cpu / device='cpu' (same tokens: --tokens-from)"
        )


def _widen(value: Any) -> Any:
    return torch.float64 if value is torch.float32 else value


class _KeepFloat64(TorchFunctionMode):
    """Rewrites ``float32`` targets to ``float64`` in calls whose first argument is a float64 tensor."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.dtype is torch.float64:
            if func is torch.Tensor.float:
                return first
            args = (first, *(_widen(arg) for arg in args[1:]))
            if "dtype" in kwargs:
                kwargs["dtype"] = _widen(kwargs["dtype"])
        return func(*args, **kwargs)


@contextmanager
def keep_float64(enabled: bool) -> Iterator[None]:
    """While active (and ``enabled``), float64 tensors are never cast down to float32."""
    if not enabled:
        yield
        return
    with _KeepFloat64():
        yield
