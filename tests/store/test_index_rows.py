"""Index rows and sketch rows are stored exactly as the format defines them, whatever shortcut the
writer takes to build them (layouts memoised per dtype and shape, the inputs' JSON, whole-array sketch
appends)."""

from __future__ import annotations

import json
import math
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
