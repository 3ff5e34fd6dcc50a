"""HDF5 writes for the capture writer that skip h5py's high-level Python: appends to extendible
datasets and scalar attributes. h5py's ``attrs[name] = value`` writes under a temporary name and
renames (0.17 against 0.09 ms per attribute here, benchmarks/writer_fixed_costs.py); a summary
capture's fixed costs before its first kernel and after its last are a few ms in all. Plus the index
rows' text helpers and the creation of the sketch datasets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring_ascii

import h5py
import numpy as np

from precdiff.store import format as fmt


def json_strings(items: Iterable[str]) -> str:
    """``json.dumps(list(items))`` for strings, the same text at a fraction of the cost (no encoder
    object per call): one per op-level index row."""
    return "[" + ", ".join(map(encode_basestring_ascii, items)) + "]"


def chunk_shape(shape: Sequence[int], itemsize: int) -> tuple[int, ...] | None:
    """A chunk of about :data:`~precdiff.store.format.CHUNK_BYTES`, full along the trailing axes.

    Trailing axes are kept whole while they fit, so a chunk is a contiguous run of rows of the
    C-ordered tensor; returns ``None`` (contiguous storage) for tensors that fit one chunk.
    """
    if not shape or int(np.prod(shape)) * itemsize <= fmt.CHUNK_BYTES:
        return None
    chunk = [1] * len(shape)
    budget = max(1, fmt.CHUNK_BYTES // itemsize)
    for axis in range(len(shape) - 1, -1, -1):
        if shape[axis] <= budget:
            chunk[axis] = max(1, shape[axis])
            budget //= max(1, shape[axis])
        else:
            chunk[axis] = max(1, budget)
            break
    return tuple(chunk)


def append_rows(
    dataset: h5py.Dataset, rows: np.ndarray, memory_type: h5py.h5t.TypeID | None = None, at: int | None = None
) -> int:
    """Write ``rows`` at row ``at`` (default: the end) of a dataset extendible along its first axis,
    growing it; returns where they went. h5py's resize and slice assignment, less their Python
    (~0.5 ms per call, index appends are per batch of rows)."""
    dataset_id = dataset.id
    start = dataset_id.shape[0] if at is None else at
    shape = (start + rows.shape[0], *rows.shape[1:])
    dataset_id.set_extent(shape)
    space = dataset_id.get_space()
    space.select_hyperslab((start,) + (0,) * (rows.ndim - 1), rows.shape)
    dataset_id.write(h5py.h5s.create_simple(rows.shape), space, rows, memory_type)
    return start


def new_attribute(object_id: h5py.h5o.ObjectID, name: str, value: str | int | bool) -> None:
    """Create attribute ``name`` (absent so far) holding a scalar, of the HDF5 type h5py's
    ``attrs[name] = value`` gives it: a variable-length UTF-8 string, an int64, a bool (an enum)."""
    data = np.array(value, dtype=h5py.string_dtype()) if isinstance(value, str) else np.asarray(value)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    h5py.h5a.create(object_id, name.encode(), h5py.h5t.py_create(data.dtype, logical=True), space).write(data)


def set_attribute(object_id: h5py.h5o.ObjectID, name: str, value: int | bool) -> None:
    """Overwrite existing scalar attribute ``name`` in place, keeping its type."""
    h5py.h5a.open(object_id, name.encode()).write(np.asarray(value))


def sketch_datasets(file: h5py.File, width: int, method: str) -> tuple[h5py.Dataset, h5py.Dataset]:
    """Create :data:`~precdiff.store.format.SKETCHES` (rows of ``width`` float64, NaN until written:
    index rows without a sketch) and :data:`~precdiff.store.format.SKETCH_CHECKSUMS`, both empty and
    extendible, the sketches named by ``method``."""
    sketches = file.create_dataset(
        fmt.SKETCHES,
        shape=(0, width),
        maxshape=(None, width),
        dtype=np.float64,
        chunks=(fmt.SKETCH_CHUNK_ROWS, width),
        fillvalue=np.nan,
    )
    sketches.attrs[fmt.ATTR_SKETCH_METHOD] = method
    checksums = file.create_dataset(
        fmt.SKETCH_CHECKSUMS,
        shape=(0,),
        maxshape=(None,),
        dtype=np.uint64,
        chunks=(fmt.SKETCH_CHUNK_ROWS * 16,),
    )
    return sketches, checksums
