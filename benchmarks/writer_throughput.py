"""Store-side throughput of full captures, without a model or a GPU: the capture writer against the
h5py writes it replaced and against the disk, measured in one run.

``--count`` tensors of ``--shape`` (uint16, the bf16 storage form; default 2048×14336, an 8B model's
MLP activation, 58.7 MB) are written and fsynced to ``--tmp`` in four modes:

- ``h5py-chunked``: ``create_dataset(data=…)`` in ~1 MiB chunks, what CaptureWriter did before issue 16;
- ``h5py-contiguous``: the same without chunks;
- ``writer``: ``CaptureWriter.write_tensor`` (contiguous dataset, bytes written with ``os.pwrite``,
  early ``fdatasync`` write-back, store/rawio.py), then ``finish``;
- ``disk``: the same number of bytes written sequentially in 16 MiB blocks.

Each mode ends with an ``fsync`` of its file, is timed ``--repeats`` times (median) and its file deleted.

    PYTHONPATH=$PWD python benchmarks/writer_throughput.py --tmp /tmp --out writer_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import h5py
import numpy as np
import torch

from precdiff.store import CaptureWriter
from precdiff.store import format as fmt
from precdiff.store.writer import chunk_shape


def fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_sequentially(path: Path, total: int) -> None:
    """The disk's own speed: ``total`` bytes (at least 16 MiB) written in 16 MiB blocks, fsynced,
    and the file removed."""
    block = bytes(16 << 20)
    with open(path, "wb") as handle:
        for _ in range(max(1, total // len(block))):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--shape", default="2048,14336")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="folder for the files (deleted after each run)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    shape = tuple(int(s) for s in args.shape.split(","))
    data = np.random.default_rng(0).integers(0, 1 << 16, size=shape, dtype=np.uint16)
    total = data.nbytes * args.count
    folder = Path(tempfile.mkdtemp(dir=args.tmp))
    stats = [0.0] * len(fmt.STAT_NAMES)

    def h5py_mode(chunked: bool) -> Callable[[], None]:
        def run() -> None:
            path = folder / "h5py.h5"
            with h5py.File(path, "w") as f:
                chunks = chunk_shape(shape, data.dtype.itemsize) if chunked else None
                for i in range(args.count):
                    f.create_dataset(fmt.tensor_key(i), data=data, chunks=chunks)
                    f.flush()
            fsync(path)
            path.unlink()

        return run

    def writer() -> None:
        path = folder / "writer.h5"
        with CaptureWriter(path) as capture:
            for i in range(args.count):
                capture.write_tensor(
                    f"t{i}",
                    module="m",
                    role="output",
                    dtype=torch.bfloat16,
                    shape=shape,
                    stats=stats,
                    data=data,
                )
            capture.finish()
        fsync(path)
        path.unlink()

    def disk() -> None:
        write_sequentially(folder / "disk.bin", total)

    modes = {
        "h5py-chunked": h5py_mode(True),
        "h5py-contiguous": h5py_mode(False),
        "writer": writer,
        "disk": disk,
    }
    results: dict[str, dict[str, object]] = {}
    for mode, run in modes.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        results[mode] = {"median_s": median, "times_s": times, "gb_per_s": total / median / 1e9}
    disk_s = float(results["disk"]["median_s"])  # type: ignore[arg-type]
    for row in results.values():
        row["share_of_disk_write"] = disk_s / float(row["median_s"])  # type: ignore[arg-type]
    report = {
        "benchmark": "writer_throughput",
        "date": date.today().isoformat(),
        "host": platform.node(),
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
        "shape": list(shape),
        "count": args.count,
        "bytes": total,
        "results": results,
    }
    print(f"writer throughput: {args.count} × uint16{list(shape)} = {total / 1e9:.2f} GB, write + fsync")
    print(f"{'mode':<17}{'median s':>10}{'GB/s':>8}{'of disk':>9}")
    for mode, row in results.items():
        print(
            f"{mode:<17}{float(row['median_s']):>10.3f}{float(row['gb_per_s']):>8.2f}"  # type: ignore[arg-type]
            f"{float(row['share_of_disk_write']):>9.0%}"  # type: ignore[arg-type]
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
