"""Reading a tensor's stored bytes straight from the file, beside HDF5 (``compare``'s hot path).

An unfiltered dataset written by :class:`~precdiff.store.writer.CaptureWriter` lies in the file as a
few runs of the C-ordered tensor (one when contiguous). A block of values inside one run is handed
out as a read-only view of those bytes mapped in memory: no copy, and none of HDF5's chunk machinery
(~3x slower per byte, benchmarks/README.md "Fused pass").
"""

from __future__ import annotations

import bisect
import mmap
from typing import Any

import h5py
import numpy as np


def file_runs(dataset: h5py.Dataset) -> list[tuple[int, int, int]] | None:
    """Where a dataset's values lie in the file: ``(first flat element, elements, byte offset)`` runs
    in C order, or None when they cannot be read straight from the file (filters, non-native byte
    order, chunks that are not runs of the C-ordered tensor, storage not yet allocated)."""
    if not dataset.dtype.isnative or dataset.id.get_create_plist().get_nfilters():
        return None
    shape = dataset.shape
    if dataset.chunks is None:
        offset = dataset.id.get_offset()
        return None if offset is None else [(0, dataset.size, offset)]
    chunk = dataset.chunks
    # A chunk is a run of the C-ordered tensor when it is 1 along the leading axes, whole along the
    # trailing ones, and anything along the one between (what the writer's chunk_shape makes).
    split = next((axis for axis in range(len(shape)) if chunk[axis] != 1), len(shape) - 1)
    if any(chunk[axis] != shape[axis] for axis in range(split + 1, len(shape))):
        return None
    strides = [int(np.prod(shape[axis + 1 :])) for axis in range(len(shape))]
    chunks: list[Any] = []
    dataset.id.chunk_iter(chunks.append)
    runs = []
    for stored in chunks:
        if stored.byte_offset is None or stored.filter_mask:
            return None
        first = sum(c * stride for c, stride in zip(stored.chunk_offset, strides))
        rows = min(chunk[split], shape[split] - stored.chunk_offset[split])
        runs.append((first, rows * strides[split], stored.byte_offset))
    runs.sort()
    merged: list[tuple[int, int, int]] = []  # runs that follow each other in the file too, joined
    for first, count, offset in runs:
        if first != (merged[-1][0] + merged[-1][1] if merged else 0):
            return None  # every element in exactly one run (a chunk never written reads as the fill value)
        if merged and merged[-1][2] + merged[-1][1] * dataset.dtype.itemsize == offset:
            merged[-1] = (merged[-1][0], merged[-1][1] + count, merged[-1][2])
        else:
            merged.append((first, count, offset))
    return merged if sum(count for _, count, _ in merged) == dataset.size else None


def mapped_block(
    fd: int, runs: list[tuple[int, int, int]], first: int, dtype: np.dtype[Any], size: int
) -> np.ndarray | None:
    """Values ``first … first + size`` of the tensor as a read-only view of their bytes mapped from
    ``fd``, when they lie in one of ``runs`` (:func:`file_runs`); None otherwise. Each block maps only
    its own bytes, unmapped when the block is dropped, so the file's pages do not pile up in the
    process's memory."""
    index = bisect.bisect_right(runs, first, key=lambda run: run[0]) - 1
    start, count, offset = runs[index]
    if first + size > start + count:
        return None
    begin = offset + (first - start) * dtype.itemsize
    aligned = begin - begin % mmap.ALLOCATIONGRANULARITY
    mapped = mmap.mmap(fd, begin - aligned + size * dtype.itemsize, access=mmap.ACCESS_READ, offset=aligned)
    return np.frombuffer(mapped, dtype, size, begin - aligned)
