"""Where a CUDA capture's time goes, measured piece by piece (decides what to optimise; the figures
that claim a speed are ``capture_overhead.py`` and ``op_capture_overhead.py``).

1. ``kernel``: the summary kernel alone on the 8B shape's tensors: device µs per call (CUDA events),
   GB/s, with and without the sketch, against a memory-bound torch reduction of the same tensor.
2. ``profile``: torch.profiler over a plain forward and a module-level summary capture: device time
   per kernel, the summary kernels' share, and how much of the wall time the device was busy.
3. ``io``: the full-capture pipeline's pieces on a 58 MB tensor (the MLP's width): pageable and
   pinned device-to-host copies, an HDF5 dataset write, ``os.pwrite``; and 4 GB written then fsynced
   against the same written with a concurrent ``fdatasync`` thread (early write-back).

    PYTHONPATH=$PWD python benchmarks/diagnose_capture_gpu.py --out /tmp/diag
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import build_model, prompt_ids

from precdiff.capture.hooks import attach
from precdiff.capture.names import name_filter
from precdiff.capture.sink import TensorSink
from precdiff.store import CaptureWriter

SHAPES = [(2048, 4096), (2048, 14336), (2048, 1024), (2048, 128256)]


def device_us(step: Callable[[], object], calls: int = 30) -> float:
    step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        step()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / calls


def kernel_section(lines: list[str]) -> None:
    from precdiff.capture.fused_summaries import FusedSummaries

    device = torch.device("cuda")
    for shape in SHAPES:
        x = torch.randn(shape, device=device).to(torch.bfloat16)
        gb = x.numel() * x.element_size() / 1e9
        for sketches in (True, False):
            arena = FusedSummaries(device, sketches=sketches)
            us = device_us(lambda a=arena, t=x: a.add(t))
            arena.take(wait=True)
            lines.append(f"kernel {shape} bf16 sketches={sketches}: {us:8.1f} µs  {gb / us * 1e6:7.1f} GB/s")
        us = device_us(lambda t=x: t.sum(dtype=torch.float32))
        lines.append(f"torch sum {shape} bf16:              {us:8.1f} µs  {gb / us * 1e6:7.1f} GB/s")


def profile_section(lines: list[str], out: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    device = torch.device("cuda")
    model = build_model(32, torch.bfloat16, device)
    ids = prompt_ids(2048, device)
    keep = name_filter(None, None)
    folder = Path(tempfile.mkdtemp())
    counts: dict[str, int] = {}

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    def summary(sketches: bool) -> Callable[[], None]:
        def run() -> None:
            path = folder / "p.h5"
            with CaptureWriter(path) as writer:
                sink = TensorSink(writer, summary=True, device=device, num_tokens=2048, sketches=sketches)
                with torch.no_grad(), attach(model, keep, sink):
                    model(input_ids=ids, use_cache=False)
                sink.flush()
                counts["tensors"] = writer.tensor_count
                writer.finish()
            path.unlink()

        return run

    for label, run in (("plain", plain), ("summary", summary(True)), ("summary-stats", summary(False))):
        run()
        run()
        torch.cuda.synchronize()
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            torch.cuda.synchronize()
            walls.append(time.perf_counter() - start)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            run()
            torch.cuda.synchronize()
            wall = time.perf_counter() - start
        events = [e for e in prof.key_averages() if e.device_time_total > 0]
        events.sort(key=lambda e: -e.self_device_time_total)
        busy = sum(e.self_device_time_total for e in events) / 1e3
        lines.append(
            f"{label}: wall median {statistics.median(walls) * 1e3:.1f} ms (profiled {wall * 1e3:.1f} ms), "
            f"device kernels {busy:.1f} ms, tensors {counts.get('tensors', 0)}"
        )
        for e in events[:14]:
            lines.append(f"    {e.self_device_time_total / 1e3:8.2f} ms  {e.count:6d}×  {e.key[:90]}")


def io_section(lines: list[str], tmp: Path) -> None:
    device = torch.device("cuda")
    x = torch.randn(2048, 14336, device=device).to(torch.bfloat16)
    nbytes = x.numel() * 2
    pinned = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)

    def timed_gbs(step: Callable[[], object], repeats: int = 10) -> float:
        step()
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return nbytes / statistics.median(times) / 1e9

    lines.append(f"D2H pageable .cpu(): {timed_gbs(lambda: x.cpu()):.2f} GB/s")
    lines.append(f"D2H pinned copy_:    {timed_gbs(lambda: pinned.copy_(x, non_blocking=True)):.2f} GB/s")
    data = pinned.view(torch.int16).numpy().view(np.uint16)
    path = tmp / "io.h5"
    with h5py.File(path, "w") as handle:
        count = [0]

        def h5write(chunked: bool) -> Callable[[], None]:
            def run() -> None:
                count[0] += 1
                handle.create_dataset(f"t{count[0]}", data=data, chunks=(146, 14336) if chunked else None)

            return run

        lines.append(f"h5py create_dataset chunked 4 MB: {timed_gbs(h5write(True)):.2f} GB/s")
        lines.append(f"h5py create_dataset contiguous:   {timed_gbs(h5write(False)):.2f} GB/s")
    path.unlink()
    raw = tmp / "raw.bin"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    offset = [0]

    def pwrite() -> None:
        os.pwrite(fd, memoryview(data).cast("B"), offset[0])
        offset[0] += nbytes

    lines.append(f"os.pwrite 58 MB:                  {timed_gbs(pwrite):.2f} GB/s")
    os.close(fd)
    raw.unlink()
    total = 4 << 30
    block = bytes(16 << 20)
    for early in (False, True):
        path = tmp / "seq.bin"
        stop = threading.Event()
        start = time.perf_counter()
        with open(path, "wb") as handle:

            def writeback(stop: threading.Event = stop, fd: int = handle.fileno()) -> None:
                while not stop.is_set():
                    os.fdatasync(fd)
                    time.sleep(0.05)

            thread = threading.Thread(target=writeback) if early else None
            if thread is not None:
                thread.start()
            for _ in range(total // len(block)):
                handle.write(block)
            handle.flush()
            written = time.perf_counter() - start
            stop.set()
            if thread is not None:
                thread.join()
            os.fsync(handle.fileno())
        elapsed = time.perf_counter() - start
        path.unlink()
        lines.append(
            f"4 GiB write + fsync, early write-back {early}: write {written:.2f} s, total {elapsed:.2f} s, "
            f"{total / elapsed / 1e9:.2f} GB/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sections", default="kernel,io,profile")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = [f"device: {torch.cuda.get_device_name()}"]
    printed = 0
    for section in args.sections.split(","):
        try:
            if section == "kernel":
                kernel_section(lines)
            elif section == "profile":
                profile_section(lines, args.out)
            elif section == "io":
                io_section(lines, args.tmp)
        except Exception as exc:  # one section's failure must not lose the others' figures
            lines.append(f"{section} failed: {type(exc).__name__}: {exc}")
        print("\n".join(lines[printed:]), flush=True)
        printed = len(lines)
        (args.out / "diagnosis.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
