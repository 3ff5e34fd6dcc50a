"""Faults planted by construction, so that a test can fail the same way on every CPU.

Imported by tests as ``from planted import ...`` (``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

import torch
from torch import nn


def round_by_rows(y: torch.Tensor) -> torch.Tensor:
    """``y`` rounded the way a kernel that picks its blocking from the row count would round it.

    Multiplies by ``1 + k·eps`` with ``k`` the bit length of the number of rows (tokens × batch), so the
    same token gets different bits alone, inside a batch and in decode: batch dependent *by
    construction*. One IEEE multiply gives the same bits on every CPU, unlike the standard kernels whose
    variance depends on the machine's SIMD width and thread count.
    """
    rows = y.numel() // max(y.shape[-1], 1)
    return y * (1.0 + torch.finfo(y.dtype).eps * rows.bit_length())


class BatchDependent(nn.Module):
    """Wraps a module so that its output is rounded by :func:`round_by_rows`."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return round_by_rows(self.inner(x))


def plant_batch_dependent(model: nn.Module, module_name: str) -> nn.Module:
    """Replace ``module_name`` inside ``model`` by a :class:`BatchDependent` wrapper of itself."""
    parent_name, _, attr = module_name.rpartition(".")
    parent = model.get_submodule(parent_name)
    setattr(parent, attr, BatchDependent(getattr(parent, attr)))
    return model
