"""Read-only, lazy view of a capture file (complete or ``.partial``).

Nothing is loaded until asked for: :meth:`Capture.iter_blocks` streams one tensor in bounded blocks
so that comparing captures of any size keeps memory flat.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from precdiff.errors import CaptureFormatError, IncompatibleCaptureError, InputError
from precdiff.store import format as fmt
from precdiff.store.dtypes import from_storage, to_float64
from precdiff.store.manifest import Manifest
from precdiff.store.mapped import file_runs, mapped_block
from precdiff.store.sketches import SketchTable

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Elements per block when streaming a tensor: 4 Mi float64 values = 32 MiB per side.
DEFAULT_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class TensorInfo:
    """What a capture records about one tensor, without its data."""

    name: str
    module: str
    role: str
    dtype: str  # format dtype code, e.g. "BF16"
    shape: tuple[int, ...]
    stored: bool  # False for --summary captures: only the statistics exist
    stats: dict[str, float]
    key: str  # HDF5 dataset path
    # Version-2 fields (docs/format.md); version-1 files read kind from role and the rest as None.
    kind: str = fmt.KIND_MODULE_OUTPUT
    token_axis: int | None = None  # axis of the prompt's tokens, recorded at capture
    inputs: tuple[str, ...] | None = None  # op input references; None unless an op output
    # The earlier tensor this one exactly aliases (docs/format.md): ``stored``, ``stats`` and ``key``
    # are then the target's, so the data, statistics and sketch read are the target's.
    alias_of: str | None = None
    placement: dict[str, Any] | None = None  # reserved (issue 17): dim, rank, world_size, full_shape

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass(frozen=True)
class TopK:
    """Top-k token ids and logprobs per position ([n, k] each)."""

    ids: np.ndarray
    logprobs: np.ndarray


@dataclass(frozen=True)
class Generation:
    """The greedy continuation a capture produced."""

    ids: np.ndarray  # [steps]
    topk: TopK  # [steps, k]
    margin: np.ndarray  # [steps] top-1 minus top-2 logprob
    top_logit: np.ndarray | None = None  # [steps] top-1 logit; None in files written before it existed


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _v1_fields(role: str) -> dict[str, Any]:
    return {"kind": fmt.KIND_MODULE_INPUT if role == fmt.ROLE_INPUT else fmt.KIND_MODULE_OUTPUT}


def _v2_fields(row: Any) -> dict[str, Any]:
    axis = int(row[fmt.T_TOKEN_AXIS])
    inputs, placement = _decode(row[fmt.T_INPUTS]), _decode(row[fmt.T_PLACEMENT])
    return {
        "kind": _decode(row[fmt.T_KIND]),
        "token_axis": None if axis == fmt.NO_TOKEN_AXIS else axis,
        "inputs": tuple(json.loads(inputs)) if inputs else None,
        "alias_of": _decode(row[fmt.T_ALIAS_OF]) or None,
        "placement": json.loads(placement) if placement else None,
    }


class Capture:
    """An open capture file. Prefer :func:`open_capture`; close it or use ``with``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if not self.path.exists():
            partial = Path(fmt.partial_path_for(str(self.path)))
            hint = f"; an incomplete capture exists at {partial}" if partial.exists() else ""
            raise InputError(f"capture file {self.path} does not exist{hint}")
        if self.path.is_dir():
            raise InputError(
                f"{self.path} is a directory, not a capture file; pass the .h5 written by precdiff capture"
            )
        # A re-capture to the same name that was interrupted leaves the old file beside a newer .partial.
        partial = Path(fmt.partial_path_for(str(self.path)))
        self.newer_partial: Path | None = (
            partial if partial.exists() and partial.stat().st_mtime > self.path.stat().st_mtime else None
        )
        with open(self.path, "rb") as handle:
            signature = handle.read(8)
        if signature != HDF5_SIGNATURE:
            raise CaptureFormatError(
                f"{self.path} is not an HDF5 file; pass a file written by `precdiff capture`"
            )
        try:
            self._file = h5py.File(self.path, "r")
            self._fd: int = self._file.id.get_vfd_handle()
        except OSError as exc:
            raise CaptureFormatError(
                f"{self.path} is damaged and cannot be opened ({exc}); capture it again"
            ) from None
        try:
            self._check_header()
            self._infos = self._read_infos()
            self._runs: dict[str, list[tuple[int, int, int]] | None] = {}
            manifest = self.manifest
            expected = (manifest.input.num_tokens or 0) if manifest is not None else 0
            if self.complete and expected and fmt.INPUT_IDS not in self._file:
                raise CaptureFormatError(
                    f"{self.path} is marked complete but has no input token ids ({fmt.INPUT_IDS}; its "
                    f"manifest says {expected}), so nothing shows which input it ran (the file was edited "
                    "or damaged); capture it again"
                )
        except BaseException:
            self._file.close()
            raise

    def _check_header(self) -> None:
        attrs = self._file.attrs
        if _decode(attrs.get(fmt.ATTR_FORMAT, b"")) != fmt.FORMAT_NAME:
            raise CaptureFormatError(
                f"{self.path} is an HDF5 file but not a precdiff capture (no format={fmt.FORMAT_NAME!r})"
            )
        version = int(attrs.get(fmt.ATTR_FORMAT_VERSION, -1))
        if version not in fmt.READABLE_VERSIONS:
            readable = ", ".join(str(v) for v in fmt.READABLE_VERSIONS)
            raise IncompatibleCaptureError(
                f"{self.path} has capture format version {version}, this precdiff reads versions "
                f"{readable}; use the precdiff release that wrote it, or capture again"
            )
        self.format_version = version
        self.complete = bool(attrs.get(fmt.ATTR_COMPLETE, False))
        self.precdiff_version = _decode(attrs.get(fmt.ATTR_PRECDIFF_VERSION, ""))
        self.created_utc = _decode(attrs.get(fmt.ATTR_CREATED, ""))
        skipped = attrs.get(fmt.ATTR_SKIPPED)
        self.skipped: list[dict[str, str]] = json.loads(_decode(skipped)) if skipped is not None else []

    def _read_infos(self) -> dict[str, TensorInfo]:
        infos: dict[str, TensorInfo] = {}
        table = self._file.get(fmt.TENSOR_INDEX)
        if table is None:
            return infos
        try:
            rows = table[()]
        except OSError:
            raise CaptureFormatError(
                f"{self.path}: the tensor index cannot be read; capture it again"
            ) from None
        v2 = all(f in (rows.dtype.names or ()) for f in fmt.V2_FIELDS)
        for index, row in enumerate(rows):
            name = _decode(row[fmt.T_NAME])
            if not name:  # rows past the last batch a killed writer completed
                if self.complete:
                    raise CaptureFormatError(
                        f"{self.path}: tensor index row {index} is empty; capture it again"
                    )
                break
            stored = bool(row[fmt.T_STORED])
            key = fmt.tensor_key(index)
            if stored and key not in self._file:
                if self.complete:
                    raise CaptureFormatError(
                        f"{self.path}: tensor {name!r} has no data at {key}; capture it again"
                    )
                break
            ndim = int(row[fmt.T_NDIM])
            code = _decode(row[fmt.T_DTYPE])
            if not 0 <= ndim <= fmt.MAX_NDIM or code not in fmt.STORAGE_DTYPES:
                raise CaptureFormatError(
                    f"{self.path}: tensor index row {index} ({name!r}) has rank {ndim} and dtype code "
                    f"{code!r}, which the format does not allow (the file is damaged); capture it again"
                )
            role = _decode(row[fmt.T_ROLE])
            info = TensorInfo(
                name=name,
                module=_decode(row[fmt.T_MODULE]),
                role=role,
                dtype=code,
                shape=tuple(int(v) for v in row[fmt.T_SHAPE][:ndim]),
                stored=stored,
                stats={stat: float(v) for stat, v in zip(fmt.STAT_NAMES, row[fmt.T_STATS])},
                key=key,
                **(_v2_fields(row) if v2 else _v1_fields(role)),
            )
            infos[name] = self._resolve_alias(info, infos) if info.alias_of else info
        return infos

    def _resolve_alias(self, info: TensorInfo, earlier: dict[str, TensorInfo]) -> TensorInfo:
        """An alias row read as its target's data, statistics and sketch under its own name."""
        target = earlier.get(info.alias_of or "")
        if target is None or (target.dtype, target.shape) != (info.dtype, info.shape):
            found = "absent" if target is None else f"{target.dtype}{list(target.shape)}"
            raise CaptureFormatError(
                f"{self.path}: tensor {info.name!r} ({info.dtype}{list(info.shape)}) is recorded as an alias "
                f"of {info.alias_of!r}, an earlier tensor that is {found} (the file is damaged); capture it again"
            )
        return dataclasses.replace(info, stored=target.stored, stats=target.stats, key=target.key)

    # --- metadata -------------------------------------------------------------------------
    @functools.cached_property
    def manifest(self) -> Manifest | None:
        """The environment manifest (``None`` if the capture was killed before writing it)."""
        if fmt.MANIFEST not in self._file:
            return None
        try:
            loaded = json.loads(_decode(self._file[fmt.MANIFEST][()]))
        except ValueError:
            raise CaptureFormatError(
                f"{self.path}: its manifest is not valid JSON (the file is damaged); capture it again"
            ) from None
        return Manifest.from_dict(loaded) if isinstance(loaded, dict) else None

    @property
    def input_ids(self) -> list[int]:
        """The exact token ids the model saw."""
        if fmt.INPUT_IDS not in self._file:
            return []
        return [int(i) for i in self._file[fmt.INPUT_IDS][()]]

    @property
    def input_text(self) -> str | None:
        """The rendered prompt text, when the capture had one."""
        if fmt.INPUT_TEXT not in self._file:
            return None
        return _decode(self._file[fmt.INPUT_TEXT][()])

    # --- tensors --------------------------------------------------------------------------
    def tensor_names(self) -> list[str]:
        """Names of the captured tensors in forward order."""
        return list(self._infos)

    def tensor_infos(self) -> list[TensorInfo]:
        """Every tensor's metadata in forward order."""
        return list(self._infos.values())

    def info(self, name: str) -> TensorInfo:
        """Metadata of one tensor."""
        try:
            return self._infos[name]
        except KeyError:
            raise InputError(
                f"{self.path} has no tensor named {name!r}; `precdiff inspect` lists them"
            ) from None

    def op_call(self, name: str) -> str | None:
        """The recorded call of op output ``name`` (JSON text, docs/format.md "Op calls"), or ``None``:
        not an op, or written before calls were recorded (the optional ``call`` index field)."""
        index = self.tensor_names().index(self.info(name).name)
        return self._calls[index] or None

    @functools.cached_property
    def _calls(self) -> list[str]:
        # Read on first use only: the one field replay needs is not decoded for every row at open.
        table = self._file.get(fmt.TENSOR_INDEX)
        if table is None or fmt.T_CALL not in (table.dtype.names or ()):
            return [""] * len(self._infos)
        return [_decode(v) for v in table.fields(fmt.T_CALL)[: len(self._infos)]]

    def token_axis(self, name: str, num_tokens: int) -> int | None:
        """The axis of tensor ``name`` holding the prompt's ``num_tokens`` tokens, or ``None``.

        Format 2 records it at capture; for version-1 files it is the first axis of that length
        (a guess that fails when another axis happens to have the same size).
        """
        info = self.info(name)
        if self.format_version >= 2:
            return info.token_axis
        return info.shape.index(num_tokens) if num_tokens > 1 and num_tokens in info.shape else None

    def tensor(self, name: str) -> np.ndarray:
        """One tensor, decoded exactly (bf16 -> float32, fp16 -> float16). Loads it whole."""
        info = self.info(name)
        return from_storage(self._dataset(info)[()], info.dtype)

    def iter_blocks(self, name: str, block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> Iterator[np.ndarray]:
        """Stream a tensor as flat float64 blocks of at most about ``block_elements`` values.

        Two tensors of the same shape are cut at the same places, so blocks pair up.
        """
        code = self.info(name).dtype
        for raw in self.iter_raw_blocks(name, block_elements, reuse=True):
            yield to_float64(raw, code)

    def iter_raw_blocks(
        self, name: str, block_elements: int = DEFAULT_BLOCK_ELEMENTS, *, reuse: bool = False
    ) -> Iterator[np.ndarray]:
        """:meth:`iter_blocks` before decoding: the same blocks as flat arrays of the stored dtype
        (BF16 and F16 as their ``uint16`` bit patterns; :func:`precdiff.store.dtypes.to_float64` decodes).

        ``reuse=True`` reads every block into one buffer, which the next block overwrites (for a caller
        that is done with a block before asking for the next); otherwise each block is a new array.
        Where the file holds a block's bytes in one piece, unfiltered, the block is a read-only view of
        those bytes mapped in memory instead (no copy at all).
        """
        info = self.info(name)
        dataset = self._dataset(info)
        if dataset.ndim == 0:
            yield np.asarray(dataset[()]).reshape(-1)
            return
        runs = self._file_runs(info.key, dataset)
        # Blocks are whole rows along axis 0, as many as fit; a row larger than a block (e.g. [1, seq,
        # vocab] logits) is split along axis 1 (one level down, enough for the [1, seq, …] activations
        # and logits captures hold). Either way a block is one flat range of the C-ordered tensor.
        rows = dataset.shape[0]
        row_elements = max(1, int(np.prod(dataset.shape[1:])))
        cuts: list[tuple[Any, int, int]] = []  # (selection, first flat element, length along the cut axis)
        if row_elements <= block_elements:
            step = max(1, block_elements // row_elements)
            shape = (min(step, rows), *dataset.shape[1:])
            for start in range(0, rows, step):
                count = min(step, rows - start)
                cuts.append((np.s_[start : start + count], start * row_elements, count))
        else:
            inner = dataset.shape[1]
            inner_elements = max(1, row_elements // max(1, inner))
            step = max(1, block_elements // inner_elements)
            shape = (min(step, inner), *dataset.shape[2:])
            for row in range(rows):
                for start in range(0, inner, step):
                    count = min(step, inner - start)
                    first = row * row_elements + start * inner_elements
                    cuts.append((np.s_[row, start : start + count], first, count))
        raw = np.empty(shape, dtype=dataset.dtype)
        for index, (selection, first, count) in enumerate(cuts):
            raw = raw if reuse or index == 0 else np.empty(shape, dtype=dataset.dtype)
            block = raw[:count].reshape(-1)
            mapped = (
                mapped_block(self._fd, runs, first, block.dtype, block.size) if runs is not None else None
            )
            if mapped is not None:
                yield mapped
                continue
            dataset.read_direct(raw, selection, np.s_[:count])
            yield block

    def _file_runs(self, key: str, dataset: h5py.Dataset) -> list[tuple[int, int, int]] | None:
        """Where the tensor's values lie in the file: ``(first flat element, elements, byte offset)`` runs
        in C order, or None when they cannot be read straight from the file (filters, non-native byte
        order, chunks that are not runs of the C-ordered tensor, storage not yet allocated).

        A block inside one run is read as a view of the file mapped in memory: its bytes come straight
        from the page cache, with no copy and none of HDF5's chunk machinery (~3x slower per byte).
        """
        if key not in self._runs:
            self._runs[key] = file_runs(dataset)
        return self._runs[key]

    @functools.cached_property
    def sketches(self) -> SketchTable | None:
        """The summary sketches (docs/format.md), read at first use; ``None`` when the file has none."""
        return SketchTable.read(self._file)

    def sketch(self, name: str) -> tuple[np.ndarray, int] | None:
        """The tensor's summary sketch (float64 ``[width]``) and exact checksum; ``None`` if it has none.
        An alias reads its target's."""
        table = self.sketches
        return table.row(int(self.info(name).key.rsplit("/", 1)[1])) if table is not None else None

    def _dataset(self, info: TensorInfo) -> h5py.Dataset:
        """The tensor's dataset, after checking that it is what the index says."""
        if not info.stored:
            raise InputError(
                f"tensor {info.name!r} in {self.path} holds statistics only (captured with --summary); "
                "capture again without --summary to compare its values"
            )
        dataset = self._file[info.key]
        expected = fmt.STORAGE_DTYPES[info.dtype]
        if not isinstance(dataset, h5py.Dataset) or dataset.shape != info.shape or dataset.dtype != expected:
            found = f"{dataset.dtype}{dataset.shape}" if isinstance(dataset, h5py.Dataset) else "a group"
            raise CaptureFormatError(
                f"{self.path}: tensor {info.name!r} holds {found} but its index says "
                f"{expected}{info.shape} (the file is damaged); capture it again"
            )
        return dataset

    # --- logprobs and generation ------------------------------------------------------------
    @property
    def prompt_logprobs(self) -> TopK | None:
        """Top-k logprobs at every prompt position, or ``None`` if not captured."""
        if fmt.PROMPT_TOPK_IDS not in self._file or fmt.PROMPT_TOPK_LOGPROBS not in self._file:
            return None
        topk = TopK(self._file[fmt.PROMPT_TOPK_IDS][()], self._file[fmt.PROMPT_TOPK_LOGPROBS][()])
        rows = len(self.input_ids)
        if topk.ids.ndim != 2 or topk.ids.shape != topk.logprobs.shape or topk.ids.shape[0] != rows:
            raise CaptureFormatError(
                f"{self.path}: prompt logprobs of shape {topk.ids.shape} / {topk.logprobs.shape} do not "
                f"match its {rows} input tokens (the file is damaged); capture it again"
            )
        return topk

    @property
    def generation(self) -> Generation | None:
        """The greedy generation, or ``None`` if not captured."""
        names = (
            fmt.GENERATION_IDS,
            fmt.GENERATION_TOPK_IDS,
            fmt.GENERATION_TOPK_LOGPROBS,
            fmt.GENERATION_MARGIN,
        )
        if not all(n in self._file for n in names):
            return None
        ids, topk_ids, topk_lp, margin = (self._file[n][()] for n in names)
        steps = ids.shape[0] if ids.ndim == 1 else -1
        if (
            steps < 0
            or topk_ids.shape != topk_lp.shape
            or topk_ids.shape[:1] != (steps,)
            or margin.shape != (steps,)
        ):
            raise CaptureFormatError(
                f"{self.path}: the generation's ids {ids.shape}, top-k {topk_ids.shape} / {topk_lp.shape} "
                f"and margins {margin.shape} disagree (the file is damaged); capture it again"
            )
        top_logit = (
            self._file[fmt.GENERATION_TOP_LOGIT][()] if fmt.GENERATION_TOP_LOGIT in self._file else None
        )
        return Generation(ids=ids, topk=TopK(topk_ids, topk_lp), margin=margin, top_logit=top_logit)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_capture(path: str | os.PathLike[str]) -> Capture:
    """Open a capture file (complete, or a ``.partial`` left by an interrupted capture).

    Raises:
        InputError: the path does not exist.
        CaptureFormatError: not a precdiff capture, or damaged.
        IncompatibleCaptureError: written by another format version.

    Example:
        >>> with open_capture("run.h5") as cap:  # doctest: +SKIP
        ...     print(cap.tensor_names()[:3])
    """
    return Capture(path)
