"""Where a summary capture's wall time goes, phase by phase, on the 8B shape (CUDA): host time until
the forward returns, when the device finishes, the sink's flush, the writer's finish (medians of 5),
with and without a synchronisation before the flush; a cProfile of one flush; and which tensors of an
op-level capture take the torch path instead of the summary kernel.

    PYTHONPATH=$PWD python benchmarks/capture_timeline.py
"""

import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import build_model, prompt_ids

from precdiff.capture import stats as stats_mod
from precdiff.capture.names import name_filter
from precdiff.capture.runner import hooked_forward
from precdiff.capture.sink import TensorSink
from precdiff.config import CaptureOptions
from precdiff.store import CaptureWriter

device = torch.device("cuda")
model = build_model(32, torch.bfloat16, device)
ids = prompt_ids(2048, device)
keep = name_filter(None, None)
folder = Path(tempfile.mkdtemp())


def plain():
    t0 = time.perf_counter()
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    return {"forward_host": t1 - t0, "device_done": t2 - t0, "total": t2 - t0}


def cap(level, sketches, sync=True, profile=False):
    """One summary capture, timed by phase; ``sync``: wait for the device before the flush (else the
    flush includes that wait); ``profile``: print a cProfile of the flush."""

    def run():
        path = folder / "t.h5"
        t0 = time.perf_counter()
        with CaptureWriter(path) as writer:
            t1 = time.perf_counter()
            sink = TensorSink(writer, summary=True, device=device, num_tokens=2048, sketches=sketches)
            with (
                torch.no_grad(),
                hooked_forward(model, keep, sink, CaptureOptions(summary=True, level=level)),
            ):
                model(input_ids=ids, use_cache=False)
            t2 = time.perf_counter()
            if sync:
                torch.cuda.synchronize()
            t3 = time.perf_counter()
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            sink.flush()
            t4 = time.perf_counter()
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
            writer.finish()
            t5 = time.perf_counter()
        path.unlink()
        if not sync:
            return {"forward_host": t2 - t0, "flush_nosync": t4 - t2, "total": t5 - t0}
        return {
            "open": t1 - t0,
            "forward_host": t2 - t0,
            "device_done": t3 - t0,
            "flush": t4 - t3,
            "finish": t5 - t4,
            "total": t5 - t0,
        }

    return run


cap("module", True, sync=False, profile=True)()
for label, run in [
    ("plain", plain),
    ("module-nosync", cap("module", True, sync=False)),
    ("module", cap("module", True)),
    ("op", cap("op", True)),
]:
    run()
    run()
    rows = [run() for _ in range(5)]
    med = {k: statistics.median(r[k] for r in rows) * 1e3 for k in rows[0]}
    print(label, " ".join(f"{k}={v:.1f}ms" for k, v in med.items()), flush=True)

seen = Counter()
orig = stats_mod.SummaryBatch.add


def spy(self, tensor):
    if not stats_mod._fused_available(tensor):
        seen[(str(tensor.dtype), tensor.device.type, tuple(tensor.shape))] += 1
    return orig(self, tensor)


stats_mod.SummaryBatch.add = spy
cap("op", True)()
print("torch-path tensors at op level:", sum(seen.values()))
for k, v in seen.most_common(20):
    print("   ", v, k)
