"""Where the host time of a summary capture goes, step by step, without a profiler's distortion.

Each mode adds one step of a module- or op-level ``--summary`` capture to the one before it; all run
the same forward of ``benchmarks/capture_overhead.py``'s 8B-shaped model, interleaved round by round.
For each mode: the host time until the forward returns (``host``) and the wall time until the device
and the writes are done (``total``), medians, and the ratio of ``total`` to ``plain``.

Module level: ``plain``; ``hooks`` (every module hooked, the hook drops the tensor); ``launch`` (the
hook queues the summary kernel, nothing is written); ``sink`` (the whole sink, its writer dropping
rows); ``summary`` (the capture, rows written to an HDF5 file).
Op level: ``op-trace`` (tracer and module hooks, tensors dropped); ``op-launch`` (every op output's
summary queued, shared launches as in a capture); ``op-summary`` (the capture).

    PYTHONPATH=$PWD python benchmarks/host_ablation.py --out /tmp/host_ablation.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import build_model, cpu_times, host_load, prompt_ids

from precdiff.capture.hooks import attach
from precdiff.capture.names import name_filter
from precdiff.capture.op_trace import CallTree, OpTracer
from precdiff.capture.runner import hooked_forward
from precdiff.capture.sink import TensorSink
from precdiff.capture.stats import SummaryBatch
from precdiff.config import CaptureOptions
from precdiff.devices import device_facts, synchronize
from precdiff.store import CaptureWriter

# One mode's run: returns (host seconds until the forward returned, seconds until everything was done).
Run = Callable[[], tuple[float, float]]


class NullWriter:
    """What the sink needs of a CaptureWriter, dropping every row: the sink's own host time alone."""

    sketch_method = ""
    index_batch = 1

    def accepts(self, dtype: torch.dtype, shape: tuple[int, ...]) -> str | None:
        return None

    def skip(self, name: str, reason: str) -> None:
        pass

    def write_tensor(self, name: str, **row: Any) -> None:
        pass

    def write_rows(self, rows: Any, stats: Any, sketches: Any = None, sketched: Any = None) -> None:
        pass

    def flush_index(self) -> None:
        pass


def resolver(batch: SummaryBatch) -> Callable[[], None]:
    """What finishes a mode that only queued summaries: take them all (waits for the device)."""

    def resolve() -> None:
        batch.resolve()

    return resolve


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--modes", default="plain,hooks,launch,sink,summary,op-trace,op-launch,op-summary")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = build_model(args.layers, torch.bfloat16, device)
    ids = prompt_ids(args.tokens, device)
    keep = name_filter(None, None)
    folder = Path(tempfile.mkdtemp())

    def forward() -> None:
        model(input_ids=ids, use_cache=False)

    def timed(body: Callable[[], Callable[[], None]]) -> Run:
        """``body`` runs the forward and returns what finishes the capture after it."""

        def run() -> tuple[float, float]:
            synchronize(device)
            start = time.perf_counter()
            with torch.no_grad():
                finish = body()
            host = time.perf_counter() - start
            finish()
            synchronize(device)
            return host, time.perf_counter() - start

        return run

    def plain() -> Callable[[], None]:
        forward()
        return lambda: None

    def hooks() -> Callable[[], None]:
        with attach(model, keep, lambda *_: None):
            forward()
        return lambda: None

    def launch() -> Callable[[], None]:
        batch = SummaryBatch(slots=16)
        with attach(model, keep, lambda _n, _m, _r, tensor: batch.add(tensor)):
            forward()
        return resolver(batch)

    def sink() -> Callable[[], None]:
        tensors = TensorSink(NullWriter(), summary=True, device=device, num_tokens=args.tokens)  # type: ignore[arg-type]
        with attach(model, keep, tensors):
            forward()
        return tensors.flush

    def summary(level: str) -> Callable[[], Callable[[], None]]:
        def body() -> Callable[[], None]:
            path = folder / "ablation.h5"
            writer = CaptureWriter(path).__enter__()
            tensors = TensorSink(writer, summary=True, device=device, num_tokens=args.tokens)
            with hooked_forward(model, keep, tensors, CaptureOptions(summary=True, level=level)):
                forward()

            def finish() -> None:
                tensors.flush()
                writer.finish()
                writer.__exit__(None, None, None)
                path.unlink()

            return finish

        return body

    def op_trace() -> Callable[[], None]:
        tree = CallTree()
        tracer = OpTracer(tree, lambda *_: None, references=True, model=model)
        with tree.hooked(model), tracer:
            forward()
        return lambda: None

    def op_launch() -> Callable[[], None]:
        tree = CallTree()
        batch = SummaryBatch(defer=True)
        tracer = OpTracer(
            tree,
            lambda _n, _s, _o, tensor, *_: batch.add(tensor),
            references=True,
            model=model,
            before_write=batch.launch_waiting,
        )
        with tree.hooked(model), tracer:
            forward()
        batch.launch_waiting()
        return resolver(batch)

    bodies = {
        "plain": plain,
        "hooks": hooks,
        "launch": launch,
        "sink": sink,
        "summary": summary("module"),
        "op-trace": op_trace,
        "op-launch": op_launch,
        "op-summary": summary("op"),
    }
    runs = {mode: timed(bodies[mode]) for mode in args.modes.split(",")}
    started = cpu_times()
    for run in runs.values():
        run()  # warm-up: compilation, allocator growth
    measured: dict[str, list[tuple[float, float]]] = {mode: [] for mode in runs}
    for _ in range(args.repeats):
        for mode, run in runs.items():
            measured[mode].append(run())
    load = host_load(started)
    plain_total = statistics.median(t for _, t in measured["plain"]) if "plain" in measured else None
    results: dict[str, dict[str, object]] = {}
    print(f"{'mode':<12}{'host ms':>10}{'total ms':>10}{'× plain':>9}")
    for mode, times in measured.items():
        host = statistics.median(h for h, _ in times)
        total = statistics.median(t for _, t in times)
        ratio = total / plain_total if plain_total else None
        results[mode] = {
            "host_ms": host * 1e3,
            "total_ms": total * 1e3,
            "ratio_to_plain": ratio,
            "times_s": times,
        }
        ratio_text = f"{ratio:>9.2f}" if ratio is not None else ""
        print(f"{mode:<12}{host * 1e3:>10.1f}{total * 1e3:>10.1f}{ratio_text}")
    if args.out is not None:
        record = {
            "date": date.today().isoformat(),
            "device": device_facts(device),
            "model": {"shape": "llama-8b", "num_hidden_layers": args.layers, "tokens": args.tokens},
            "repeats": args.repeats,
            "affinity": sorted(os.sched_getaffinity(0)),
            "host_load": load,
            "results": results,
        }
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
