"""Writing tensors stored in full with the real CaptureWriter, for tests that build captures by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from precdiff.capture.stats import stats_to_dict, tensor_stats_torch
from precdiff.store import CaptureWriter
from precdiff.store.dtypes import to_storage


def write_stored(
    writer: CaptureWriter,
    name: str,
    tensor: torch.Tensor,
    stats: Mapping[str, float] | Sequence[float] | None = None,
) -> None:
    """``tensor`` stored in full as the output of a module named ``name``, with ``stats`` (default:
    the tensor's own statistics)."""
    writer.write_tensor(
        name,
        module=name,
        role="output",
        dtype=tensor.dtype,
        shape=tuple(tensor.shape),
        stats=stats if stats is not None else stats_to_dict(tensor_stats_torch(tensor).tolist()),
        data=to_storage(tensor),
    )
