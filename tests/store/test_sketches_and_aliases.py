"""The sketch tables and alias rows of the format: written in index batches, read back per row."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from precdiff.errors import CaptureFormatError
from precdiff.store import CaptureWriter, open_capture
from precdiff.store import format as fmt
from precdiff.store.dtypes import to_storage

STATS = [float(i) for i in range(len(fmt.STAT_NAMES))]
METHOD = "test-sketch width=4"


def _row(writer: CaptureWriter, name: str, **kwargs: object) -> None:
    writer.write_tensor(
        name, module=name, role="output", dtype=torch.float32, shape=(2, 3), stats=STATS, data=None, **kwargs
    )  # type: ignore[arg-type]


def test_sketch_rows_follow_the_index_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    writer = CaptureWriter(path)
    writer.index_batch = 2  # several batches: the tables grow with the index
    writer.sketch_method = METHOD
    _row(writer, "before")  # written before any sketch: reads as none
    _row(writer, "a", sketch=(np.arange(4.0), 7))
    _row(writer, "none")
    _row(writer, "b", sketch=(-np.arange(4.0), (1 << 64) - 1))
    _row(writer, "last")  # after the last sketch: past the end of the table
    writer.finish()
    with h5py.File(path) as handle:
        assert handle[fmt.SKETCHES].shape == (4, 4)
        assert handle[fmt.SKETCHES].attrs[fmt.ATTR_SKETCH_METHOD] == METHOD
    with open_capture(path) as cap:
        assert cap.sketches is not None and cap.sketches.method == METHOD
        assert [cap.sketch(n) is None for n in ("before", "none", "last")] == [True] * 3
        sketch_a, sketch_b = cap.sketch("a"), cap.sketch("b")
        assert sketch_a is not None and sketch_b is not None
        np.testing.assert_array_equal(sketch_a[0], np.arange(4.0))
        assert (sketch_a[1], sketch_b[1]) == (7, (1 << 64) - 1)  # uint64: every 64-bit checksum


def test_a_sketch_needs_its_method(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="sketch_method"):
        _row(writer, "a", sketch=(np.zeros(4), 0))
    writer.abort()


def test_alias_rows_read_as_their_target(tmp_path: Path) -> None:
    path = tmp_path / "alias.h5"
    data = torch.arange(6.0).reshape(2, 3)
    with CaptureWriter(path) as writer:
        writer.write_tensor(
            "t", module="t", role="output", dtype=data.dtype, shape=(2, 3), stats=STATS, data=to_storage(data)
        )
        _row(writer, "t_again", alias_of="t")
        with pytest.raises(ValueError, match="stores no data"):
            writer.write_tensor(
                "bad", module="b", role="output", dtype=data.dtype, shape=(2, 3), stats=STATS,
                data=to_storage(data), alias_of="t",
            )  # fmt: skip
        writer.finish()
    with h5py.File(path) as handle:
        assert sorted(handle[fmt.TENSORS_GROUP]) == ["000000"]  # the alias stores nothing
    with open_capture(path) as cap:
        info = cap.info("t_again")
        assert (info.alias_of, info.stored, info.module) == ("t", True, "t_again")
        np.testing.assert_array_equal(cap.tensor("t_again"), data.numpy())


def test_alias_of_a_missing_tensor_is_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "damaged.h5"
    with CaptureWriter(path) as writer:
        _row(writer, "orphan", alias_of="gone")
        writer.finish()
    with pytest.raises(CaptureFormatError) as caught:
        open_capture(path)
    assert str(caught.value) == (
        f"{path}: tensor 'orphan' (F32[2, 3]) is recorded as an alias of 'gone', an earlier tensor that is "
        "absent (the file is damaged); capture it again"
    )
