"""Index rows buffered column by column, appended to :data:`~precdiff.store.format.TENSOR_INDEX` in one
HDF5 write per batch.

An op-level summary capture writes thousands of index rows per forward while the forward runs, and
the host's time bounds it, so a batch of rows is never a Python object per row: the writer hands over
whole columns (a summary batch's statistics and sketches stay arrays), and the nine text fields of
every row are joined into one UTF-8 buffer whose string addresses fill the rows; HDF5 copies the
strings itself. Built and appended this way a row costs 5.6 µs here, against 9.8 µs for h5py's own
path (an array of Python strings, which h5py turns into C strings one by one), in the same file
format (benchmarks/results/writer_fixed_costs_cpu_s7.json).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import h5py
import numpy as np

from precdiff.store import format as fmt
from precdiff.store.h5io import json_strings

Sketches = tuple[np.ndarray, np.ndarray]  # float64 [m, width], uint64 [m] checksums
# A dtype and shape's index fields: dtype code, shape, shape padded to MAX_NDIM with -1, numel, ndim.
Layout = tuple[str, tuple[int, ...], list[int], int, int]


class IndexRows:
    """The rows of ``index_dtype`` not appended yet.

    :meth:`add` takes a batch as columns (every field but the statistics, which come as one
    ``[k, 7]`` array); :meth:`build` makes the array HDF5 writes with :attr:`memory_type`.
    """

    def __init__(self, index_dtype: np.dtype) -> None:
        fields = index_dtype.fields
        assert fields is not None, "a compound dtype"
        self._text = [name for name, (kind, *_) in fields.items() if kind.kind == "O"]
        self._numbers = [name for name in fields if name not in self._text and name != fmt.T_STATS]
        self._dtype, self.memory_type = _memory_form(index_dtype)
        self.clear()

    def clear(self) -> None:
        self._columns: dict[str, list[Any]] = {name: [] for name in (*self._text, *self._numbers)}
        self._stats: list[np.ndarray] = []
        self._sketches: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.count = 0

    def add(
        self,
        columns: Mapping[str, Sequence[Any]],
        stats: np.ndarray,
        sketches: Sketches | None = None,
        sketched: np.ndarray | None = None,
    ) -> None:
        """Buffer ``len(stats)`` rows: ``columns`` holds every field but the statistics;
        ``sketches`` are those of the rows ``sketched`` (positions in this batch; None: every row)."""
        for name in self._text:  # refused before it is buffered: the rows around it still append
            if "\0" in "".join(columns[name]):
                raise ValueError(
                    f"{name} {_nul(columns[name])!r} holds a NUL character, which HDF5 strings cannot"
                )
        for name, values in columns.items():
            self._columns[name].extend(values)
        self._stats.append(stats)
        if sketches is not None:
            self._sketches.append((self.count, *sketches, sketched))
        self.count += stats.shape[0]

    def add_rows(
        self,
        fields: tuple[Sequence[Any], ...],
        layouts: Sequence[Layout],
        stats: np.ndarray,
        sketches: Sketches | None,
        sketched: np.ndarray | None,
        *,
        stored: Sequence[bool],
        placements: Sequence[str],
        calls: Sequence[str],
    ) -> None:
        """:meth:`add` of rows given by field: ``fields`` are the names, modules, roles, kinds, token
        axes (or None), input references (or None) and aliased names (or None); ``layouts`` each
        row's dtype and shape fields; the rest as the format stores them."""
        names, modules, roles, kinds, axes, inputs, aliases = fields
        codes, _, padded, numels, ndims = zip(*layouts, strict=True)
        columns = {
            fmt.T_NAME: names,
            fmt.T_MODULE: modules,
            fmt.T_ROLE: roles,
            fmt.T_DTYPE: codes,
            fmt.T_NDIM: ndims,
            fmt.T_SHAPE: padded,
            fmt.T_NUMEL: numels,
            fmt.T_STORED: stored,
            fmt.T_KIND: kinds,
            fmt.T_TOKEN_AXIS: [fmt.NO_TOKEN_AXIS if axis is None else axis for axis in axes],
            fmt.T_INPUTS: [json_strings(refs) if refs is not None else "" for refs in inputs],
            fmt.T_ALIAS_OF: [alias or "" for alias in aliases],
            fmt.T_PLACEMENT: placements,
            fmt.T_CALL: calls,
        }
        self.add(columns, stats, sketches, sketched)

    def build(self) -> tuple[np.ndarray, bytes, Sketches | None]:
        """The buffered rows in the memory form of :attr:`memory_type`, the buffer their strings'
        addresses point into (keep it until they are written) and the sketch rows (NaN rows and
        checksum 0 for rows without one), or None when no row has a sketch."""
        count = self.count
        rows = np.zeros(count, dtype=self._dtype)
        for name in self._numbers:
            rows[name] = self._columns[name]
        rows[fmt.T_STATS] = self._stats[0] if len(self._stats) == 1 else np.concatenate(self._stats)
        texts = bytes(
            "\0".join(chain.from_iterable(self._columns[name] for name in self._text)) + "\0", "utf-8"
        )
        buffer = np.frombuffer(texts, dtype=np.uint8)
        ends = np.flatnonzero(buffer == 0)  # UTF-8 has a zero byte only where the text has NUL (refused)
        assert ends.size == count * len(self._text), "a text field with NUL got past add()"
        starts = np.empty_like(ends)
        starts[:1] = 0
        starts[1:] = ends[:-1] + 1
        addresses = (starts.astype(np.uint64) + np.uint64(buffer.ctypes.data)).reshape(len(self._text), count)
        for name, column in zip(self._text, addresses, strict=True):
            rows[name] = column
        return rows, texts, self._sketch_rows()

    def _sketch_rows(self) -> Sketches | None:
        if not self._sketches:
            return None
        count = self.count
        parts = self._sketches
        if all(part[3] is None for part in parts) and sum(part[1].shape[0] for part in parts) == count:
            # Summary batches, every row with its sketch: the rows are the parts, one after another.
            if len(parts) == 1:
                return parts[0][1], parts[0][2]
            return np.concatenate([part[1] for part in parts]), np.concatenate([part[2] for part in parts])
        width = parts[0][1].shape[1]
        if any(part[1].shape[1] != width for part in self._sketches):
            raise ValueError("sketches of different widths in one batch of rows")
        values = np.full((count, width), np.nan)
        checksums = np.zeros(count, dtype=np.uint64)
        for start, sketch, checksum, sketched in self._sketches:
            rows = start + (np.arange(sketch.shape[0]) if sketched is None else sketched)
            values[rows] = sketch
            checksums[rows] = checksum
        return values, checksums


def _nul(values: Sequence[str]) -> str:
    return next(value for value in values if "\0" in value)


@functools.cache
def _memory_form(index_dtype: np.dtype) -> tuple[np.dtype, h5py.h5t.TypeID]:
    """``index_dtype`` with each text field an address (uint64), and the HDF5 type that reads those as
    variable-length UTF-8 C strings: the memory form of the rows. Made once per process."""
    fields = index_dtype.fields
    assert fields is not None, "a compound dtype"
    text = h5py.h5t.C_S1.copy()
    text.set_size(h5py.h5t.VARIABLE)
    text.set_cset(h5py.h5t.CSET_UTF8)
    memory_type = h5py.h5t.create(h5py.h5t.COMPOUND, index_dtype.itemsize)
    formats = []
    for name, (kind, offset, *_) in fields.items():
        is_text = kind.kind == "O"
        memory_type.insert(name.encode(), offset, text if is_text else h5py.h5t.py_create(kind))
        formats.append(np.uint64 if is_text else kind)
    dtype = np.dtype(
        {
            "names": list(fields),
            "formats": formats,
            "offsets": [fields[name][1] for name in fields],
            "itemsize": index_dtype.itemsize,
        }
    )
    return dtype, memory_type
