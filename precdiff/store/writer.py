"""Streaming writer of capture files.

Tensors go to disk one at a time and the file is flushed after each, so memory stays bounded and a
capture killed half-way leaves ``NAME.partial`` holding everything written before the kill (a
tensor's index row is written after its data). Only :meth:`CaptureWriter.finish` sets ``complete``
and renames the file to its final name. Uncompressed tensor bytes bypass HDF5 (store/rawio.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import torch

from precdiff._version import __version__
from precdiff.errors import CaptureError, InputError
from precdiff.store import format as fmt
from precdiff.store.dtypes import STORABLE_DTYPES, dtype_code
from precdiff.store.h5io import append_rows, chunk_shape, new_attribute, set_attribute, sketch_datasets
from precdiff.store.index_rows import IndexRows, Layout, Sketches
from precdiff.store.manifest import Manifest
from precdiff.store.rawio import RawFile, check_room

_STRING = h5py.string_dtype(encoding="utf-8")
# Uncompressed tensors of at least this size are written with os.pwrite (store/rawio.py); smaller ones
# through h5py, where the extra dataset-offset lookup and system call would cost more than they save.
RAW_MIN_BYTES = 64 << 10


class CaptureWriter:
    """Write one capture file. Use as a context manager; call :meth:`finish` when complete.

    Args:
        path: final path of the capture (``RUN.h5``); ``RUN.h5.partial`` is written meanwhile.
        compression: ``None`` or ``"gzip"`` (lossless; slower, smaller files).

    An existing file at ``path`` is replaced only when the new capture is complete (the rename in
    :meth:`finish`); until then, and if the run fails, it stays as it was.
    """

    def __init__(self, path: str | os.PathLike[str], *, compression: str | None = None):
        self.path = Path(path)
        self.partial_path = Path(fmt.partial_path_for(str(self.path)))
        if compression not in (None, "gzip"):
            raise InputError(
                f"unknown compression {compression!r}; use --compress gzip / compression='gzip' or none"
            )
        if self.path.is_dir():
            raise InputError(
                f"--out {self.path} is a directory; give a file name such as {self.path / 'run.h5'}"
            )
        if not self.path.parent.exists():
            raise InputError(
                f"output folder {self.path.parent} does not exist; create it or pick another --out"
            )
        self.compression = compression
        self._count = 0
        self._raw: RawFile | None = None
        try:
            # The default (oldest) file-format version on purpose: "latest" sets superblock consistency
            # flags that make a killed .partial refuse to open until h5clear is run on it.
            self._file = h5py.File(self.partial_path, "w")
        except OSError as exc:
            raise CaptureError(f"cannot create {self.partial_path}: {exc}") from None
        if RawFile.available():
            try:
                self._raw = RawFile(self.partial_path)
            except OSError as exc:
                self._file.close()
                raise CaptureError(f"cannot open {self.partial_path} for writing: {exc}") from None
        # Raw-written datasets: contiguous, space allocated at creation, no fill value ever written.
        self._early = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self._early.set_layout(h5py.h5d.CONTIGUOUS)
        self._early.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        self._early.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        self._room_checked = True  # rows buffered since the last disk-room check (summary rows)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for name, value in (
            (fmt.ATTR_FORMAT, fmt.FORMAT_NAME),
            (fmt.ATTR_FORMAT_VERSION, fmt.FORMAT_VERSION),
            (fmt.ATTR_COMPLETE, False),
            (fmt.ATTR_PRECDIFF_VERSION, __version__),
            (fmt.ATTR_CREATED, created),
        ):
            new_attribute(self._file.id, name, value)
        self._index_dtype = fmt.index_dtype()
        self._layouts: dict[tuple[torch.dtype, tuple[int, ...]], Layout] = {}
        self._skipped: list[dict[str, str]] = []
        self._rows = IndexRows(self._index_dtype)  # not appended yet
        # Set before the first sketch is written: names the sketch function (``/sketches`` attribute).
        self.sketch_method = ""
        self.index_batch = (
            fmt.INDEX_BATCH
        )  # summary rows buffered before an append (OP_INDEX_BATCH at op level)
        self._index = self._file.create_dataset(
            fmt.TENSOR_INDEX, shape=(0,), maxshape=(None,), dtype=self._index_dtype, chunks=(256,)
        )
        self._sketch_sets: tuple[h5py.Dataset, h5py.Dataset] | None = None  # SKETCHES, SKETCH_CHECKSUMS
        self._file.flush()

    @property
    def tensor_count(self) -> int:
        """How many tensors have been written so far."""
        return self._count

    @property
    def buffered_rows(self) -> int:
        """Index rows written but not appended to the file yet (:meth:`flush_index` appends them)."""
        return self._rows.count

    def write_manifest(self, manifest: Manifest) -> None:
        """Store the environment manifest as one JSON document."""
        text = json.dumps(manifest.to_dict(), sort_keys=True, default=str)
        if fmt.MANIFEST in self._file:
            del self._file[fmt.MANIFEST]
        self._file.create_dataset(fmt.MANIFEST, data=text, dtype=_STRING)
        self._file.flush()

    def write_input(self, ids: Sequence[int], text: str | None) -> None:
        """Store the exact token ids the model saw (and the rendered text, when there is one)."""
        self._file.create_dataset(fmt.INPUT_IDS, data=np.asarray(ids, dtype=np.int64))
        if text is not None:
            self._file.create_dataset(fmt.INPUT_TEXT, data=text, dtype=_STRING)
        self._file.flush()

    def write_tensor(
        self,
        name: str,
        *,
        module: str,
        role: str,
        dtype: torch.dtype,
        shape: Sequence[int],
        stats: Mapping[str, float] | Sequence[float],
        data: np.ndarray | None,
        kind: str | None = None,
        token_axis: int | None = None,
        inputs: Sequence[str] | None = None,
        alias_of: str | None = None,
        placement: Mapping[str, object] | None = None,
        call: str | None = None,
        sketch: tuple[np.ndarray, int] | None = None,
    ) -> None:
        """Append one captured tensor: its index row, and its data when ``data`` is given.

        ``stats`` are the seven values of :data:`~precdiff.store.format.STAT_NAMES`; ``data`` is the
        storage form (:func:`~precdiff.store.dtypes.to_storage`), ``None`` for a summary-only tensor.
        ``kind`` defaults to the module kind of ``role``; ``token_axis`` is the axis of the prompt's
        tokens (``None``: none); ``inputs`` the op's input references (op outputs only);
        ``alias_of`` names an earlier tensor this one exactly aliases (then ``data`` is ``None``);
        ``placement`` is the reserved field of docs/format.md; ``call`` the op's encoded call (JSON
        text, op outputs only); ``sketch`` is the summary sketch (float64 ``[width]``) and the
        checksum (an integer taken mod 2⁶⁴) of the tensor.
        A stored tensor is flushed at once; summary rows are flushed in batches.
        """
        layout = self._layouts.get((dtype, shape)) if isinstance(shape, tuple) else None
        if layout is None:
            layout = self._layout(name, dtype, shape)
        code, shape = layout[:2]
        index = self._count
        if alias_of and data is not None:
            raise ValueError(f"{name}: an alias of {alias_of} stores no data")
        if sketch is not None and not self.sketch_method:
            raise ValueError("CaptureWriter.sketch_method must name the sketch function before a sketch")
        if data is not None:
            if tuple(data.shape) != shape or data.dtype != fmt.STORAGE_DTYPES[code]:
                raise ValueError(f"{name}: data {data.dtype}{data.shape} does not match {code}{shape}")
            check_room(self.partial_path, data.nbytes)  # its margin covers the buffered rows too
            self._room_checked = True
            dataset = self._store(fmt.tensor_key(index), data)
            dataset.attrs[fmt.T_NAME] = name
            dataset.attrs[fmt.T_DTYPE] = code
        else:  # summary rows are checked once per index batch (flush_index): stat() costs µs per row
            self._room_checked = False
        values = [stats[k] for k in fmt.STAT_NAMES] if isinstance(stats, Mapping) else stats
        if kind is None:
            kind = fmt.KIND_MODULE_INPUT if role == fmt.ROLE_INPUT else fmt.KIND_MODULE_OUTPUT
        sketches = None
        if sketch is not None:
            sketches = (
                np.asarray(sketch[0], dtype=np.float64)[None],
                np.array([sketch[1] % (1 << 64)], dtype=np.uint64),
            )
        self._rows.add_rows(
            ((name,), (module,), (role,), (kind,), (token_axis,), (inputs,), (alias_of,)),
            [layout],
            np.asarray([values], dtype=np.float64),
            sketches,
            None,
            stored=(data is not None,),
            placements=(json.dumps(dict(placement)) if placement is not None else "",),
            calls=(call or "",),
        )
        self._buffered(1)
        if data is not None:
            self.flush_index()

    def write_rows(
        self,
        rows: Sequence[Sequence[Any]],
        stats: np.ndarray,
        sketches: Sketches | None = None,
        sketched: np.ndarray | None = None,
    ) -> None:
        """Append summary-only index rows (no data), a batch at a time: the fast path of a summary
        capture, the same rows as :meth:`write_tensor` gives them.

        Each row's first nine items are its name, module, role, kind, dtype (a torch dtype), shape
        (a tuple), token axis (or None), input references (or None) and the tensor it aliases (or
        None); ``stats`` is float64 ``[len(rows), 7]``; ``sketches`` (float64 ``[m, width]``, uint64
        checksums ``[m]``) belong to the rows at positions ``sketched`` (None: every row).
        """
        count = len(rows)
        if not count:
            return
        if stats.shape != (count, len(fmt.STAT_NAMES)):
            raise ValueError(f"statistics of shape {stats.shape} for {count} rows")
        if sketches is not None and not self.sketch_method:
            raise ValueError("CaptureWriter.sketch_method must name the sketch function before a sketch")
        names, modules, roles, kinds, dtypes, shapes, axes, inputs, aliases = list(zip(*rows, strict=True))[
            :9
        ]
        get = self._layouts.get
        layouts = [get(key) for key in zip(dtypes, shapes, strict=True)]
        if None in layouts:
            layouts = [
                layout or self._layout(name, dtype, shape)
                for layout, name, dtype, shape in zip(layouts, names, dtypes, shapes, strict=True)
            ]
        empty = ("",) * count
        self._room_checked = False
        self._rows.add_rows(
            (names, modules, roles, kinds, axes, inputs, aliases),
            layouts,  # type: ignore[arg-type]  # no None left
            stats,
            sketches,
            sketched,
            stored=(False,) * count,
            placements=empty,
            calls=empty,
        )
        self._buffered(count)

    def _buffered(self, count: int) -> None:
        """``count`` rows were buffered: append them once :attr:`index_batch` rows wait."""
        self._count += count
        if self._rows.count >= self.index_batch:
            self.flush_index()

    def _layout(self, name: str, dtype: torch.dtype, shape: Sequence[int]) -> Layout:
        """The index fields of a dtype and shape, decided once per pair (rows repeat a few shapes)."""
        code = dtype_code(dtype)
        dims = tuple(int(s) for s in shape)
        if len(dims) > fmt.MAX_NDIM:
            raise InputError(f"{name}: tensors of rank {len(dims)} exceed the format's {fmt.MAX_NDIM}")
        layout = (code, dims, list(dims) + [-1] * (fmt.MAX_NDIM - len(dims)), math.prod(dims), len(dims))
        if isinstance(shape, tuple):  # a list is no dictionary key
            self._layouts[(dtype, shape)] = layout
        return layout

    def _store(self, key: str, data: np.ndarray) -> h5py.Dataset:
        """Create the dataset ``key`` holding ``data`` (docs/format.md, "Tensor data" layouts)."""
        chunks = chunk_shape(data.shape, data.dtype.itemsize) if self.compression else None
        if chunks is not None:
            dataset = self._file.create_dataset(key, data=data, chunks=chunks, compression=self.compression)
        elif self._raw is None or data.nbytes < RAW_MIN_BYTES:
            dataset = self._file.create_dataset(key, data=data)
        else:
            dataset = self._file.create_dataset(key, shape=data.shape, dtype=data.dtype, dcpl=self._early)
            offset = dataset.id.get_offset()
            if offset is None:  # no space allocated (h5py ignores the layout of 0-d datasets)
                dataset[...] = data
            else:
                self._raw.write(data, offset)  # the GIL is released while the bytes are written
                return dataset
        if self._raw is not None:
            self._raw.written(data.nbytes)
        return dataset

    def accepts(self, dtype: torch.dtype, shape: Sequence[int]) -> str | None:
        """``None`` if a tensor of this dtype and shape can be stored, else the reason it cannot."""
        if dtype not in STORABLE_DTYPES:
            return f"dtype {str(dtype).replace('torch.', '')} has no storage code in the format"
        if len(shape) > fmt.MAX_NDIM:
            return f"rank {len(shape)} exceeds the format's {fmt.MAX_NDIM}"
        return None

    def skip(self, name: str, reason: str) -> None:
        """Record a tensor that is not stored (listed in the root attribute ``skipped``)."""
        self._skipped.append({"name": name, "reason": reason})
        self._file.attrs[fmt.ATTR_SKIPPED] = json.dumps(self._skipped)

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Tensors recorded with :meth:`skip`."""
        return list(self._skipped)

    def flush_index(self) -> None:
        """Append the buffered index rows to the file and flush it."""
        if not self._rows.count:
            return
        if not self._room_checked:
            check_room(self.partial_path, 0)
            self._room_checked = True
        rows, texts, sketches = self._rows.build()
        start = append_rows(self._index, rows, self._rows.memory_type)
        del texts  # the addresses in rows pointed into it until HDF5 copied the strings
        if sketches is not None:
            self._append_sketches(start, *sketches)
        self._rows.clear()
        self._file.flush()

    def _append_sketches(self, start: int, values: np.ndarray, checksums: np.ndarray) -> None:
        """Write sketch rows as rows ``start…`` of :data:`~precdiff.store.format.SKETCHES` (NaN rows for
        index rows without one; earlier rows that never had one read as the fill value, NaN)."""
        width = values.shape[1]
        if self._sketch_sets is None:
            self._sketch_sets = sketch_datasets(self._file, width, self.sketch_method)
        sketches, sums = self._sketch_sets
        if sketches.shape[1] != width:
            raise ValueError(f"sketch width {width} differs from the file's {sketches.shape[1]}")
        append_rows(sketches, np.ascontiguousarray(values, dtype=np.float64), at=start)
        append_rows(sums, np.ascontiguousarray(checksums, dtype=np.uint64), at=start)

    def write_prompt_logprobs(self, topk_ids: np.ndarray, topk_logprobs: np.ndarray) -> None:
        """Store the top-k next-token ids and logprobs at every prompt position ([seq, k])."""
        self._file.create_dataset(fmt.PROMPT_TOPK_IDS, data=np.asarray(topk_ids, dtype=np.int64))
        self._file.create_dataset(fmt.PROMPT_TOPK_LOGPROBS, data=np.asarray(topk_logprobs, dtype=np.float32))
        self._file.flush()

    def write_generation(
        self,
        ids: np.ndarray,
        topk_ids: np.ndarray,
        topk_logprobs: np.ndarray,
        margin: np.ndarray,
        top_logit: np.ndarray | None = None,
    ) -> None:
        """Store the greedy generation: chosen ids [steps], top-k [steps, k], top-1/top-2 margin [steps]
        and, when given, the top-1 logit [steps] (near-tie thresholds scale with it)."""
        self._file.create_dataset(fmt.GENERATION_IDS, data=np.asarray(ids, dtype=np.int64))
        self._file.create_dataset(fmt.GENERATION_TOPK_IDS, data=np.asarray(topk_ids, dtype=np.int64))
        self._file.create_dataset(
            fmt.GENERATION_TOPK_LOGPROBS, data=np.asarray(topk_logprobs, dtype=np.float32)
        )
        self._file.create_dataset(fmt.GENERATION_MARGIN, data=np.asarray(margin, dtype=np.float32))
        if top_logit is not None:
            self._file.create_dataset(fmt.GENERATION_TOP_LOGIT, data=np.asarray(top_logit, dtype=np.float32))
        self._file.flush()

    def finish(self) -> Path:
        """Mark the file complete, close it and rename it to its final name."""
        self.flush_index()
        if self._raw is not None:  # before `complete`: an early write-back's error fails the capture
            self._raw.close(wait=True)
        set_attribute(self._file.id, fmt.ATTR_COMPLETE, True)
        self._file.flush()
        self._file.close()
        os.replace(self.partial_path, self.path)
        return self.path

    def abort(self) -> None:
        """Close without marking complete: the ``.partial`` keeps everything written so far.

        Never raises: it runs while another error (often a failed write: disk full, file-size limit)
        is on its way up, and that error is the one to report.
        """
        if self._raw is not None:
            with contextlib.suppress(OSError):
                self._raw.close(wait=False)  # waits for a raw write in progress on the writer thread
        if self._file.id.valid:
            # CaptureError: no room for the buffered rows, which are then dropped rather than written
            # into a full disk (see _WRITE_MARGIN)
            with contextlib.suppress(RuntimeError, OSError, CaptureError):
                self.flush_index()
            with contextlib.suppress(RuntimeError, OSError):
                self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file.id.valid:
            self.abort()
