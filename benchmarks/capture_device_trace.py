"""Where a module-level summary capture's *device* time goes (CUDA): a torch.profiler trace of one
plain forward and one capture of ``benchmarks/capture_overhead.py``'s 8B-shaped model, split into the
summary kernels, the batch reductions, the model's own kernels, copies, and the device's idle time
(gaps between kernels), with when the first kernel started and how long the capture ran after the
last one ended. The profiler slows the host, so host-side figures here are upper bounds; kernel times
and where the gaps fall are what this is for.

    PYTHONPATH=$PWD python benchmarks/capture_device_trace.py --level module
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import build_model, prompt_ids

from precdiff.capture.names import name_filter
from precdiff.capture.runner import hooked_forward
from precdiff.capture.sink import TensorSink
from precdiff.config import CaptureOptions
from precdiff.store import CaptureWriter

GAP_US = 2.0  # idle stretches shorter than this are a kernel boundary, not the device waiting


def category(name: str) -> str:
    # capture/summary_kernels.py's kernels (named _summary_kernel and _reduce_kernel before run y);
    # torch's own reductions are at::native::reduce_kernel<...>
    if "summary_reduce_kernel" in name or "_reduce_kernel" in name:
        return "batch reduction"
    if "summary_kernel" in name:
        return "summary kernel"
    if "Memcpy" in name or "memcpy" in name:
        return "copies"
    return "model and other"


def analyse(prof: profile, label: str) -> None:
    events = prof.events()
    spans = [e for e in events if e.device_type == DeviceType.CPU and e.name == label]
    begin, end = spans[0].time_range.start, spans[0].time_range.end
    # Launched inside the span, which ends with a synchronisation: every one of them ran inside it.
    # (A kernel can be listed twice, under the op that launched it and on its own.)
    kernels = sorted(
        {
            (e.time_range.start, e.time_range.end, e.name)
            for e in events
            if e.device_type == DeviceType.CUDA and begin <= e.time_range.start <= end
        }
    )
    busy: dict[str, float] = {}
    for start, stop, name in kernels:
        busy[category(name)] = busy.get(category(name), 0.0) + (stop - start)
    gaps = []
    reach = kernels[0][1]
    for start, stop, _ in kernels[1:]:
        if start - reach > GAP_US:
            gaps.append((start - reach, reach - kernels[0][0]))
        reach = max(reach, stop)
    first, last = kernels[0][0], reach
    print(f"== {label}: {len(kernels)} device events")
    print(
        f"  wall {((max(end, last)) - begin) / 1e3:.2f} ms; first kernel after {(first - begin) / 1e3:.2f} ms;"
        f" host after the last kernel {max(0.0, end - last) / 1e3:.2f} ms"
    )
    for name, us in sorted(busy.items(), key=lambda item: -item[1]):
        print(f"  {name:<18}{us / 1e3:9.2f} ms")
    print(f"  idle gaps > {GAP_US} µs: {len(gaps)}, {sum(g for g, _ in gaps) / 1e3:.2f} ms in all; largest:")
    for gap, at in sorted(gaps, reverse=True)[:8]:
        print(f"    {gap / 1e3:7.3f} ms at {at / 1e3:7.2f} ms after the first kernel")
    for phase in ("open", "attach+forward", "flush", "finish"):
        spans = [e for e in events if e.device_type == DeviceType.CPU and e.name == f"{label}:{phase}"]
        if spans:
            span = spans[0].time_range
            print(
                f"  host {phase:<15}{(span.start - begin) / 1e3:8.2f} .. {(span.end - begin) / 1e3:8.2f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--level", default="module")
    parser.add_argument("--layers", type=int, default=32)
    args = parser.parse_args()
    device = torch.device("cuda")
    model = build_model(args.layers, torch.bfloat16, device)
    ids = prompt_ids(2048, device)
    keep = name_filter(None, None)
    path = Path(tempfile.mkdtemp()) / "trace.h5"

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    def captured() -> None:
        with record_function("capture:open"):
            writer = CaptureWriter(path).__enter__()
            sink = TensorSink(writer, summary=True, device=device, num_tokens=2048)
        options = CaptureOptions(summary=True, level=args.level)
        with (
            record_function("capture:attach+forward"),
            torch.no_grad(),
            hooked_forward(model, keep, sink, options),
        ):
            model(input_ids=ids, use_cache=False)
        with record_function("capture:flush"):
            sink.flush()
        with record_function("capture:finish"):
            writer.finish()
            writer.__exit__(None, None, None)
        path.unlink()

    runs: dict[str, Callable[[], None]] = {"plain": plain, "capture": captured}
    for run in runs.values():
        run()  # warm-up: compilation, allocator growth
        run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for label, run in runs.items():
            with record_function(label):
                run()
                torch.cuda.synchronize()
    for label in runs:
        analyse(prof, label)


if __name__ == "__main__":
    main()
