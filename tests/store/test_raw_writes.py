"""Tensor bytes written with os.pwrite beside HDF5 (store/rawio.py): the same tensors as h5py's own
writes, bit for bit, in every layout; early write-back; disk-room checks only where bytes are written."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from stored import write_stored

from precdiff.store import CaptureWriter, open_capture, rawio
from precdiff.store import format as fmt
from precdiff.store import writer as writer_module
from precdiff.store.dtypes import STORABLE_DTYPES, to_storage

pytestmark = pytest.mark.skipif(not rawio.RawFile.available(), reason="needs os.pwrite")

STATS = [0.0] * len(fmt.STAT_NAMES)
# 0-d, empty, odd sizes, one row, and one past the 1 MiB chunk size (chunked when gzip is asked).
SHAPES = [(), (0,), (0, 3), (1,), (7,), (3, 5, 7), (2, 3, 4, 5, 6), (1, 129, 1031)]


def tensor_of(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(shape, generator=generator) * 100
    if raw.numel() >= 4:  # the awkward values: signed zero, a subnormal, inf, NaN
        raw.view(-1)[:4] = torch.tensor([-0.0, 1e-40, float("inf"), float("nan")])
    return raw.to(dtype) if dtype.is_floating_point else (raw.nan_to_num().abs() % 100).to(dtype)


def write_all(path: Path, tensors: dict[str, torch.Tensor], compression: str | None) -> None:
    with CaptureWriter(path, compression=compression) as writer:
        for name, tensor in tensors.items():
            write_stored(writer, name, tensor, STATS)
        writer.finish()


def h5py_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer as before this module: every byte through h5py."""
    monkeypatch.setattr(rawio.RawFile, "available", staticmethod(lambda: False))


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("raw_min", [0, writer_module.RAW_MIN_BYTES])
def test_raw_writes_store_the_same_tensors_as_h5py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str | None, raw_min: int
) -> None:
    """Every storable dtype and shape, with every non-empty tensor written raw (raw_min 0) or only the
    large ones: the stored arrays equal h5py's writes and the tensors' storage form byte for byte."""
    tensors = {
        f"{str(dtype)[6:]}{list(shape)}": tensor_of(dtype, shape, seed)
        for seed, (dtype, shape) in enumerate(
            (d, s) for d in sorted(STORABLE_DTYPES, key=str) for s in SHAPES
        )
    }
    monkeypatch.setattr(writer_module, "RAW_MIN_BYTES", raw_min)
    write_all(tmp_path / "raw.h5", tensors, compression)
    with monkeypatch.context() as patch:
        h5py_only(patch)
        write_all(tmp_path / "h5py.h5", tensors, compression)
    with open_capture(tmp_path / "raw.h5") as raw, open_capture(tmp_path / "h5py.h5") as reference:
        assert raw.tensor_names() == reference.tensor_names() == list(tensors)
        for name, tensor in tensors.items():
            expected = to_storage(tensor)
            for cap in (raw, reference):
                stored = cap._dataset(cap.info(name))[()]
                assert stored.dtype == expected.dtype and stored.shape == expected.shape, name
                assert stored.tobytes() == expected.tobytes(), name
            blocks = b"".join(b.tobytes() for b in raw.iter_blocks(name, 1000))
            assert blocks == b"".join(b.tobytes() for b in reference.iter_blocks(name, 1000))


def test_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/format.md: uncompressed tensors contiguous; with gzip, tensors over 1 MiB chunked and
    compressed, smaller ones contiguous."""
    big = torch.randn(2, 300, 1000)  # 2.4 MB
    small = torch.randn(3, 5)
    monkeypatch.setattr(writer_module, "RAW_MIN_BYTES", 0)
    for compression in (None, "gzip"):
        path = tmp_path / f"{compression}.h5"
        write_all(path, {"big": big, "small": small}, compression)
        with h5py.File(path) as f:
            big_set, small_set = f[fmt.tensor_key(0)], f[fmt.tensor_key(1)]
            assert small_set.chunks is None and small_set.compression is None
            if compression is None:
                assert big_set.chunks is None and big_set.compression is None
            else:
                assert big_set.chunks == (1, 262, 1000) and big_set.compression == "gzip"


def test_early_write_back_runs_one_sync_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    started: list[int] = []

    def slow_sync(fd: int) -> None:
        started.append(fd)
        release.wait(60)

    monkeypatch.setattr(rawio, "_sync", slow_sync)
    (tmp_path / "f").write_bytes(b"")
    raw = rawio.RawFile(tmp_path / "f", writeback_bytes=100)
    raw.write(np.zeros(60, np.uint8), 0)
    assert raw.syncs == 0
    raw.write(np.ones(60, np.uint8), 60)  # 120 bytes: the first write-back starts
    assert raw.syncs == 1
    raw.write(np.ones(200, np.uint8), 120)  # the first is still running: no second one
    assert raw.syncs == 1
    release.set()
    assert raw._syncing is not None
    raw._syncing.join()
    raw.write(np.ones(1, np.uint8), 320)  # 201 bytes since the first started
    assert raw.syncs == 2
    raw.close(wait=True)
    assert len(started) == 2
    assert (tmp_path / "f").read_bytes() == bytes(60) + bytes([1]) * 261


def test_a_full_capture_writes_back_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(rawio, "_sync", synced.append)
    path = tmp_path / "wb.h5"
    with CaptureWriter(path) as writer:
        assert writer._raw is not None
        writer._raw.writeback_bytes = 100_000
        for i in range(5):
            tensor = torch.zeros(100_000, dtype=torch.bfloat16) + i  # 200,000 bytes, written raw
            writer.write_tensor(
                f"t{i}", module="m", role="output", dtype=tensor.dtype, shape=tensor.shape, stats=STATS,
                data=to_storage(tensor),
            )  # fmt: skip
        writer.finish()
    assert synced
    with open_capture(path) as cap:
        assert cap.tensor("t4").tolist() == [4.0] * 100_000


def test_a_failed_write_back_fails_the_capture_and_keeps_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(rawio, "_sync", fail)
    monkeypatch.setattr(writer_module, "RAW_MIN_BYTES", 0)
    path = tmp_path / "eio.h5"
    path.write_text("old")
    with CaptureWriter(path) as writer:
        assert writer._raw is not None
        writer._raw.writeback_bytes = 1
        tensor = torch.ones(10)
        writer.write_tensor(
            "t", module="m", role="output", dtype=tensor.dtype, shape=tensor.shape, stats=STATS,
            data=to_storage(tensor),
        )  # fmt: skip
        with pytest.raises(OSError, match="Input/output error"):
            writer.finish()
    assert path.read_text() == "old"
    with open_capture(writer.partial_path) as cap:
        assert cap.complete is False and cap.tensor("t").tolist() == [1.0] * 10


def test_a_write_after_close_raises_instead_of_writing(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    raw = rawio.RawFile(tmp_path / "f")
    raw.write(np.arange(4, dtype=np.uint8), 2)
    raw.close(wait=True)
    with pytest.raises(ValueError, match="closed"):
        raw.write(np.arange(4, dtype=np.uint8), 0)
    assert (tmp_path / "f").read_bytes() == b"\0\0\0\1\2\3"


def test_summary_rows_check_the_disk_once_per_index_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[int] = []
    monkeypatch.setattr(writer_module, "check_room", lambda path, nbytes: checks.append(nbytes))
    with CaptureWriter(tmp_path / "s.h5") as writer:
        writer.index_batch = 64
        for i in range(200):
            writer.write_tensor(
                f"t{i}", module="m", role="output", dtype=torch.float32, shape=(3,), stats=STATS, data=None
            )
        tensor = torch.ones(3)
        writer.write_tensor(
            "full",
            module="m",
            role="output",
            dtype=tensor.dtype,
            shape=(3,),
            stats=STATS,
            data=to_storage(tensor),
        )
        writer.finish()
    # three full batches of summary rows, then the stored tensor (checked for its 12 bytes), whose
    # flush also writes the 8 summary rows before it, unchecked since that check covers them
    assert checks == [0, 0, 0, 12]
