"""The summary sketches of a capture file (docs/format.md, "Sketches"), read once per file.

A summary capture holds a few KiB of sketch per tensor; reading the whole table at once costs one HDF5
read instead of one per tensor, which is what ``compare`` of thousands of op outputs needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from precdiff.store import format as fmt


def _decode(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class SketchTable:
    """Every row's sketch (float64 ``[rows, width]``) and checksum (uint64 ``[rows]``)."""

    method: str  # the sketch function; sketches of different methods cannot be compared
    sketches: np.ndarray
    checksums: np.ndarray

    @classmethod
    def read(cls, file: h5py.File) -> SketchTable | None:
        """The table of an open capture file; ``None`` when it has no sketches (older or full captures)."""
        sketches, checksums = file.get(fmt.SKETCHES), file.get(fmt.SKETCH_CHECKSUMS)
        if not isinstance(sketches, h5py.Dataset) or not isinstance(checksums, h5py.Dataset):
            return None
        method = _decode(sketches.attrs.get(fmt.ATTR_SKETCH_METHOD, ""))
        return cls(method, np.asarray(sketches[()], dtype=np.float64), np.asarray(checksums[()]))

    def row(self, index: int) -> tuple[np.ndarray, int] | None:
        """Sketch and checksum of index row ``index``; ``None`` for a row without (NaN, or past the end)."""
        if index >= min(len(self.sketches), len(self.checksums)):
            return None
        sketch = self.sketches[index]
        if np.isnan(sketch).any():
            return None
        return sketch, int(self.checksums[index])
