"""The store: bit-exact round trips of every dtype, chunking, streaming blocks, partial files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stored import write_stored

from precdiff.errors import CaptureFormatError, IncompatibleCaptureError, InputError
from precdiff.store import CaptureWriter, open_capture
from precdiff.store import format as fmt
from precdiff.store.h5io import chunk_shape
from precdiff.store.manifest import Manifest

STATS = [0.0] * len(fmt.STAT_NAMES)


def write(path: Path, tensors: dict[str, torch.Tensor], *, finish: bool = True) -> None:
    writer = CaptureWriter(path)
    writer.write_manifest(Manifest.from_dict({"model": {"weights_sha256": "x"}}))
    writer.write_input([1, 2, 3], "abc")
    for name, tensor in tensors.items():
        write_stored(writer, name, tensor, STATS)
    if finish:
        writer.finish()
    else:
        writer.abort()


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float64,
        torch.bfloat16,
        torch.float16,
        torch.int64,
        torch.int32,
        torch.bool,
        torch.uint8,
    ],
)
def test_every_dtype_round_trips_bit_exact(tmp_path: Path, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(1)
    raw = torch.randn(3, 5, 7, generator=generator) * 100
    # Include the awkward values: signed zero, subnormal-ish, inf, nan.
    raw.view(-1)[:4] = torch.tensor([-0.0, 1e-40, float("inf"), float("nan")])
    tensor = raw.to(dtype) if dtype.is_floating_point else (raw.abs() % 100).to(dtype)
    write(tmp_path / "a.h5", {"t": tensor})
    with open_capture(tmp_path / "a.h5") as cap:
        decoded = cap.tensor("t")
        info = cap.info("t")
    assert info.shape == (3, 5, 7)
    if dtype in (torch.bfloat16, torch.float16):
        # Compare the 16-bit patterns themselves: NaN payloads and -0.0 included.
        expected_bits = tensor.view(torch.int16).numpy().view(np.uint16)
        back = (
            torch.from_numpy(np.ascontiguousarray(decoded))
            .to(dtype)
            .view(torch.int16)
            .numpy()
            .view(np.uint16)
        )
        np.testing.assert_array_equal(back, expected_bits)
        assert decoded.dtype == (np.float32 if dtype == torch.bfloat16 else np.float16)
    else:
        np.testing.assert_array_equal(decoded.view(np.uint8), tensor.numpy().view(np.uint8))


def test_chunk_shape_keeps_trailing_axes_whole() -> None:
    assert chunk_shape((4, 8), 4) is None
    assert chunk_shape((1, 2048, 4096), 2) == (1, 128, 4096)
    chunk = chunk_shape((1, 8, 1 << 20), 4)
    assert chunk == (1, 1, 1 << 18)


def test_iter_blocks_pairs_up_and_covers_everything(tmp_path: Path) -> None:
    tensor = torch.randn(2, 300, 1000)
    write(tmp_path / "a.h5", {"t": tensor})
    with open_capture(tmp_path / "a.h5") as cap:
        for block_elements in (1000, 50_000, 10_000_000, 7):
            blocks = list(cap.iter_blocks("t", block_elements=block_elements))
            assert all(b.dtype == np.float64 for b in blocks)
            np.testing.assert_array_equal(np.concatenate(blocks), tensor.double().numpy().reshape(-1))


def test_partial_file_is_readable_and_marked_incomplete(tmp_path: Path) -> None:
    target = tmp_path / "run.h5"
    write(target, {"a": torch.ones(2), "b": torch.zeros(3)}, finish=False)
    assert not target.exists()
    partial = Path(str(target) + ".partial")
    with open_capture(partial) as cap:
        assert cap.complete is False
        assert cap.tensor_names() == ["a", "b"]
        assert cap.input_ids == [1, 2, 3] and cap.input_text == "abc"
    with pytest.raises(InputError) as info:
        open_capture(target)
    assert (
        str(info.value) == f"capture file {target} does not exist; an incomplete capture exists at {partial}"
    )


def test_finished_file_is_complete_and_renamed(tmp_path: Path) -> None:
    write(tmp_path / "run.h5", {"a": torch.ones(2)})
    assert not Path(str(tmp_path / "run.h5") + ".partial").exists()
    with open_capture(tmp_path / "run.h5") as cap:
        assert cap.complete is True
        assert cap.manifest == Manifest.from_dict({"model": {"weights_sha256": "x"}})


def test_not_hdf5_and_not_a_capture_and_wrong_version(tmp_path: Path) -> None:
    import h5py

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CaptureFormatError) as info:
        open_capture(text)
    assert str(info.value) == f"{text} is not an HDF5 file; pass a file written by `precdiff capture`"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = 1
    with pytest.raises(CaptureFormatError) as info:
        open_capture(other)
    assert (
        str(info.value)
        == f"{other} is an HDF5 file but not a precdiff capture (no format='precdiff-capture')"
    )
    future = tmp_path / "future.h5"
    write(future, {"a": torch.ones(1)})
    with h5py.File(future, "r+") as handle:
        handle.attrs[fmt.ATTR_FORMAT_VERSION] = 99
    with pytest.raises(IncompatibleCaptureError) as info:
        open_capture(future)
    assert "format version 99, this precdiff reads versions 1, 2; use the precdiff release" in str(info.value)


def test_truncated_file_gives_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.h5"
    write(path, {"a": torch.randn(256, 1024)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaptureFormatError) as info:
        open_capture(path)
    assert str(info.value).startswith(f"{path} is damaged and cannot be opened")


def test_summary_only_tensor_refuses_values(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    writer = CaptureWriter(path)
    writer.write_tensor(
        "m",
        module="m",
        role="output",
        dtype=torch.bfloat16,
        shape=(2, 3),
        stats=[0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0],
        data=None,
    )
    writer.finish()
    with open_capture(path) as cap:
        info = cap.info("m")
        assert (info.stored, info.shape, info.dtype, info.stats["l2"]) == (False, (2, 3), "BF16", 5.0)
        with pytest.raises(InputError, match="captured with --summary"):
            cap.tensor("m")


def test_newer_partial_beside_a_complete_capture_is_reported(tmp_path: Path) -> None:
    import os
    import time

    target = tmp_path / "run.h5"
    write(target, {"a": torch.ones(2)})
    write(target, {"a": torch.zeros(2)}, finish=False)  # an interrupted re-capture to the same name
    partial = Path(str(target) + ".partial")
    older = time.time() - 60
    os.utime(target, (older, older))
    with open_capture(target) as cap:
        assert cap.newer_partial == partial
    from precdiff.compare.compare import compare

    notes = compare(target, target).warnings
    assert any("newer incomplete capture" in note for note in notes)
