"""Index rows and sketch rows are stored exactly as the format defines them, whatever shortcut the
writer takes to build them (layouts memoised per dtype and shape, the inputs' JSON, whole-array sketch
appends)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from precdiff.errors import InputError
from precdiff.store import CaptureWriter
from precdiff.store import format as fmt
from precdiff.store.h5io import json_strings

STATS = [-1.5, 2.0, 0.25, 1.0, 3.5, 0.0, 0.0]


@pytest.mark.parametrize(
    "items",
    [
        (),
        ("constant",),
        ("parameter model.embed_tokens.weight", "m/aten.mm.default#0"),
        ('é "q" \\ \n\t\u2028',),
    ],
)
def test_json_strings_is_json_dumps(items: tuple[str, ...]) -> None:
    assert json_strings(items) == json.dumps(list(items))


def _expected(
    name: str, shape: tuple[int, ...], inputs: tuple[str, ...] | None, alias_of: str
) -> tuple[object, ...]:
    """The row as the format defines it, computed the plain way."""
    return (
        name,
        "mod",
        "output",
        "BF16",
        len(shape),
        list(shape) + [-1] * (fmt.MAX_NDIM - len(shape)),
        math.prod(shape),
        False,
        STATS,
        fmt.KIND_OP_OUTPUT,
        1 if len(shape) > 1 else fmt.NO_TOKEN_AXIS,
        json.dumps(list(inputs)) if inputs is not None else "",
        alias_of,
        "",
        "",
    )


def test_rows_of_repeated_layouts_are_stored_as_defined(tmp_path: Path) -> None:
    path = tmp_path / "rows.h5"
    writer = CaptureWriter(path)
    rows = [
        ("a", (1, 4, 8), ("constant", 'q"é'), ""),
        ("b", (1, 4, 8), None, "a"),  # the same layout again, from the writer's memo
        ("c", [1, 4, 8], ("a",), ""),  # a list: no memo key, the same fields
        ("d", torch.Size([3]), (), ""),
    ]
    for name, shape, inputs, alias_of in rows:
        writer.write_tensor(
            name,
            module="mod",
            role="output",
            dtype=torch.bfloat16,
            shape=shape,
            stats=STATS,
            data=None,
            kind=fmt.KIND_OP_OUTPUT,
            token_axis=1 if len(shape) > 1 else None,
            inputs=inputs,
            alias_of=alias_of or None,
        )
    writer.finish()
    with h5py.File(path) as handle:
        stored = handle[fmt.TENSOR_INDEX][...]
    assert len(stored) == len(rows)
    for row, (name, shape, inputs, alias_of) in zip(stored, rows):
        expected = _expected(name, tuple(shape), inputs, alias_of)
        got = tuple(v.decode() if isinstance(v, bytes) else v for v in row.tolist())
        assert [np.asarray(v).tolist() for v in got] == [np.asarray(v).tolist() for v in expected]


@pytest.mark.parametrize("shape", [(1,) * 9, [1] * 9])
def test_too_many_dimensions_are_refused_every_time(tmp_path: Path, shape: tuple[int, ...]) -> None:
    writer = CaptureWriter(tmp_path / "rank.h5")
    for _ in range(2):  # a refused layout is not remembered as a good one
        with pytest.raises(InputError, match="tensors of rank 9 exceed the format's 8"):
            writer.write_tensor(
                "t", module="t", role="output", dtype=torch.float32, shape=shape, stats=STATS, data=None
            )
    writer.abort()


def test_a_batch_where_every_row_has_a_sketch(tmp_path: Path) -> None:
    """The whole-array path of the sketch append: values as given, checksums taken mod 2**64."""
    path = tmp_path / "sk.h5"
    writer = CaptureWriter(path)
    writer.sketch_method = "test width=4"
    sketches = [(np.arange(4.0), -1), (np.full(4, 0.5), (1 << 64) + 5), (np.arange(4.0) * -2, 7)]
    for index, sketch in enumerate(sketches):
        writer.write_tensor(
            f"t{index}",
            module="m",
            role="output",
            dtype=torch.float32,
            shape=(2, 2),
            stats=STATS,
            data=None,
            sketch=sketch,
        )
    writer.finish()
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(handle[fmt.SKETCHES][...], np.stack([s[0] for s in sketches]))
        assert handle[fmt.SKETCH_CHECKSUMS][...].tolist() == [(1 << 64) - 1, 5, 7]


def _index_and_sketches(path: Path) -> tuple[list[list[object]], np.ndarray, np.ndarray]:
    with h5py.File(path) as handle:
        rows = [
            [np.asarray(v.decode() if isinstance(v, bytes) else v).tolist() for v in row.tolist()]
            for row in handle[fmt.TENSOR_INDEX][...]
        ]
        return rows, handle[fmt.SKETCHES][...], handle[fmt.SKETCH_CHECKSUMS][...]


def test_rows_written_a_batch_at_a_time_are_the_rows_written_one_by_one(tmp_path: Path) -> None:
    """write_rows (a summary batch: columns, statistics and sketches as arrays, aliases without a
    sketch) stores exactly what write_tensor stores row by row, also next to rows with data."""
    generator = np.random.default_rng(0)
    rows = [  # name, module, role, kind, dtype, shape, token axis, inputs, alias of
        (
            "m/aten.mm.default#0",
            "m",
            "output",
            fmt.KIND_OP_OUTPUT,
            torch.bfloat16,
            (1, 4, 8),
            1,
            ("constant",),
            None,
        ),
        ("m/aten.add.Tensor#0", "m", "output", fmt.KIND_OP_OUTPUT, torch.float32, (4,), None, (), None),
        ("m", "m", "output", fmt.KIND_MODULE_OUTPUT, torch.float32, (4,), None, None, "m/aten.add.Tensor#0"),
        ('é/ü \u2028 "q"', "é", "input", fmt.KIND_MODULE_INPUT, torch.int64, (1, 4), 1, None, None),
    ]
    stats = generator.normal(size=(len(rows), len(STATS)))
    sketched = np.array([0, 1, 3])  # the alias has none
    sketches = (generator.normal(size=(3, 4)), np.array([1, (1 << 64) - 1, 7], dtype=np.uint64))
    data = np.arange(6, dtype=np.float32).reshape(2, 3)

    def write(path: Path, batched: bool) -> None:
        writer = CaptureWriter(path)
        writer.sketch_method = "test width=4"
        common = dict(module="d", role="output", dtype=torch.float32, shape=(2, 3), stats=STATS)
        writer.write_tensor("stored", data=data, **common)  # type: ignore[arg-type]
        if batched:
            writer.write_rows(rows[:2], stats[:2], (sketches[0][:2], sketches[1][:2]))
            writer.write_rows(rows[2:], stats[2:], (sketches[0][2:], sketches[1][2:]), np.array([1]))
        else:
            for index, (name, module, role, kind, dtype, shape, axis, inputs, alias) in enumerate(rows):
                sketch = None
                if index in sketched:
                    position = int(np.flatnonzero(sketched == index)[0])
                    sketch = (sketches[0][position], int(sketches[1][position]))
                writer.write_tensor(
                    name, module=module, role=role, dtype=dtype, shape=shape, stats=stats[index].tolist(),
                    data=None, kind=kind, token_axis=axis, inputs=inputs, alias_of=alias, sketch=sketch,
                )  # fmt: skip
        writer.write_tensor("stored again", data=data, **common)  # type: ignore[arg-type]
        writer.finish()

    write(tmp_path / "batched.h5", batched=True)
    write(tmp_path / "single.h5", batched=False)
    batched, single = (
        _index_and_sketches(tmp_path / "batched.h5"),
        _index_and_sketches(tmp_path / "single.h5"),
    )
    assert batched[0] == single[0]
    assert [row[0] for row in batched[0]] == ["stored", *[row[0] for row in rows], "stored again"]
    np.testing.assert_array_equal(batched[1], single[1])  # NaN rows where there is no sketch
    np.testing.assert_array_equal(batched[2], single[2])
    assert np.isnan(batched[1][[0, 3, 5]]).all() and not np.isnan(batched[1][[1, 2, 4]]).any()


@pytest.mark.parametrize("batched", [False, True])
def test_a_nul_character_in_a_name_is_refused(tmp_path: Path, batched: bool) -> None:
    """HDF5 strings end at NUL: such a name fails its append, the file keeps the rows before it."""
    path = tmp_path / "nul.h5"
    writer = CaptureWriter(path)
    common = dict(module="m", role="output", dtype=torch.float32, shape=(2,), stats=STATS, data=None)
    writer.write_tensor("fine", **common)  # type: ignore[arg-type]
    writer.flush_index()
    row = ("bad\0name", "m", "output", fmt.KIND_MODULE_OUTPUT, torch.float32, (2,), None, None, None)
    with pytest.raises(ValueError, match=re.escape("name 'bad\\x00name' holds a NUL character")):
        if batched:
            writer.write_rows([row], np.zeros((1, len(STATS))))
        else:
            writer.write_tensor("bad\0name", **common)  # type: ignore[arg-type]
    writer.write_tensor("after", **common)  # type: ignore[arg-type]
    writer.abort()
    with h5py.File(fmt.partial_path_for(str(path))) as handle:
        assert [n.decode() for n in handle[fmt.TENSOR_INDEX][fmt.T_NAME]] == ["fine", "after"]
