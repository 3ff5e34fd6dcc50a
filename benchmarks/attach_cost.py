"""Host ms to attach and remove the capture's module hooks on the 8B-shaped model (422 modules, built
on the meta device, so no weights): one registration per module (the fourth session's way) against
capture/hooks.py's ``attach`` (one process-wide hook), side by side, medians of interleaved rounds.

    PYTHONPATH=$PWD python benchmarks/attach_cost.py --out benchmarks/results/attach_cost_cpu_s5.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import LLAMA_8B

from precdiff.capture.hooks import attach
from precdiff.capture.names import name_filter


@contextmanager
def per_module(model: nn.Module) -> Iterator[int]:
    """One forward hook registered on every named module, as ``attach`` did before."""
    handles = []

    def make(name: str) -> Callable[..., None]:
        return lambda module, args, kwargs, output: None

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make(name), with_kwargs=True))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    config = transformers.LlamaConfig(**{**LLAMA_8B, "num_hidden_layers": 32})
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    keep = name_filter(None, None)
    ways: dict[str, Callable[[], AbstractContextManager[int]]] = {
        "per_module": lambda: per_module(model),
        "attach": lambda: attach(model, keep, lambda *_: None),
    }
    times: dict[str, dict[str, list[float]]] = {way: {"attach_ms": [], "remove_ms": []} for way in ways}
    counts: set[int] = set()
    for _ in range(args.rounds):
        for way, hooks in ways.items():
            start = time.perf_counter()
            with hooks() as hooked:
                attached = time.perf_counter()
            counts.add(hooked)
            times[way]["attach_ms"].append((attached - start) * 1e3)
            times[way]["remove_ms"].append((time.perf_counter() - attached) * 1e3)
    results: dict[str, Any] = {
        way: {step: statistics.median(values) for step, values in steps.items()}
        for way, steps in times.items()
    }
    for way, row in results.items():
        print(f"{way:<12} attach {row['attach_ms']:.2f} ms  remove {row['remove_ms']:.2f} ms")
    if args.out is not None:
        record = {
            "date": date.today().isoformat(),
            "host": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "modules": sorted(counts),
            "rounds": args.rounds,
            "results": results,
        }
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
