"""Where a summary capture's host time goes: cProfile of one module- and one op-level summary capture,
and the host cost of the sink's per-tensor steps timed alone.

The model is ``benchmarks/capture_overhead.py``'s (Llama-8B shape, random weights). Used to decide what
to optimise in the sink; the figures that claim a speed are ``capture_overhead.py`` and
``op_capture_overhead.py``.

    PYTHONPATH=$PWD python benchmarks/profile_capture.py --device cuda --out /tmp/profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import build_model, prompt_ids

from precdiff.capture.names import name_filter
from precdiff.capture.runner import hooked_forward
from precdiff.capture.sink import TensorSink
from precdiff.capture.stats import SummaryBatch
from precdiff.config import CaptureOptions
from precdiff.devices import synchronize
from precdiff.store import CaptureWriter


def host_us(step: Callable[[], object], device: torch.device, calls: int = 200, rounds: int = 1) -> float:
    """Host µs per call of ``step`` (no synchronisation inside the loop): the median over ``rounds``
    loops of ``calls`` calls, the device drained before each."""
    step()
    times = []
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            step()
        times.append((time.perf_counter() - start) / calls * 1e6)
    synchronize(device)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    model = build_model(args.layers, torch.bfloat16, device)
    ids = prompt_ids(args.tokens, device)
    keep = name_filter(None, None)
    folder = Path(tempfile.mkdtemp())

    def capture(level: str) -> None:
        path = folder / "p.h5"
        with CaptureWriter(path) as writer:
            sink = TensorSink(writer, summary=True, device=device, num_tokens=args.tokens)
            with (
                torch.no_grad(),
                hooked_forward(model, keep, sink, CaptureOptions(summary=True, level=level)),
            ):
                model(input_ids=ids, use_cache=False)
            sink.flush()
            writer.finish()
        path.unlink()

    for level in ("module", "op"):
        capture(level)  # warm-up
        synchronize(device)
        profiler = cProfile.Profile()
        profiler.enable()
        capture(level)
        synchronize(device)
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)
        (args.out / f"profile_{level}.txt").write_text(text.getvalue())
        print(f"profile of the {level}-level capture: {args.out / f'profile_{level}.txt'}")

    big = torch.randn(args.tokens, 4096, device=device).to(torch.bfloat16)
    small = torch.randn(8, 64, device=device)
    batch = SummaryBatch()
    stats_only = SummaryBatch(sketches=False)

    def queue_then_resolve(tensor: torch.Tensor, count: int, target: SummaryBatch = batch) -> None:
        for _ in range(count):
            target.add(tensor)
        target.resolve()

    lines = [
        f"SummaryBatch.add(2048x4096 bf16) host µs: {host_us(lambda: batch.add(big), device):.1f}",
        f"SummaryBatch.add(8x64 fp32) host µs: {host_us(lambda: batch.add(small), device):.1f}",
        f"add + resolve per tensor, batches of 64, µs: {host_us(lambda: queue_then_resolve(big, 64), device, 10) / 64:.1f}",
        f"same, statistics only, µs: {host_us(lambda: queue_then_resolve(big, 64, stats_only), device, 10) / 64:.1f}",
        f"torch.empty(1024) host µs: {host_us(lambda: torch.empty(1024, device=device), device):.1f}",
    ]
    batch.resolve()
    print("\n".join(lines))
    (args.out / "host_steps.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
