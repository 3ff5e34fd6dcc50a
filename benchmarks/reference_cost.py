"""Cost of the float64 reference run: ``capture --dtype float64`` against ``--dtype float32`` on the CPU.

Two seeded models: ``tiny:llama`` (hidden 64, 4 layers) and a larger Llama-shaped one built with
``save_tiny`` (hidden 512, MLP 1536, 8 layers, 8/4 heads, vocab of the tiny tokenizer). Each is captured
through the public ``capture()`` (full tensors, no generation) on a prompt of ``--tokens`` tokens, in
float32 and in float64, ``--repeats`` times after one warm-up; the table gives the median wall time and
the capture's file size, and the float64/float32 ratios. Capture timings include the model build and
the HDF5 write, i.e. what the user waits for; ``forward_seconds`` is the bare forward alone (median of
``5 * --repeats``), the compute share. Output JSON goes to ``--out``.

    python benchmarks/reference_cost.py --out benchmarks/results/reference_cost_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from precdiff.capture import capture, save_tiny
from precdiff.capture.float64 import keep_float64
from precdiff.capture.models import load_model
from precdiff.config import CaptureInput, CaptureOptions

LARGER = dict(
    hidden_size=512,
    intermediate_size=1536,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
)


def measure(model: str, dtype: str, ids: tuple[int, ...], repeats: int, folder: Path) -> dict[str, float]:
    out = folder / f"{dtype}.h5"
    options = CaptureOptions(device="cpu", dtype=dtype, max_new_tokens=0)
    capture(model, out, CaptureInput(input_ids=ids), options)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        capture(model, out, CaptureInput(input_ids=ids), options)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "bytes": out.stat().st_size}


def forward_seconds(model: str, dtype: torch.dtype, ids: tuple[int, ...], repeats: int) -> float:
    """Median time of the bare forward (no hooks, no file): the compute share of the cost."""
    loaded = load_model(model, dtype=dtype, device=torch.device("cpu"))
    batch = torch.tensor([ids])
    times = []
    with torch.no_grad(), keep_float64(dtype == torch.float64):
        loaded.model(input_ids=batch)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            loaded.model(input_ids=batch)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ids = tuple(range(32, 32 + args.tokens))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        larger = str(save_tiny("llama", folder / "llama_larger", overrides=LARGER))
        for label, model in (("tiny:llama", "tiny:llama"), ("llama hidden 512 x 8 layers", larger)):
            fp32 = measure(model, "float32", ids, args.repeats, folder)
            fp64 = measure(model, "float64", ids, args.repeats, folder)
            fp32["forward_seconds"] = forward_seconds(model, torch.float32, ids, 5 * args.repeats)
            fp64["forward_seconds"] = forward_seconds(model, torch.float64, ids, 5 * args.repeats)
            rows.append(
                {
                    "model": label,
                    "float32": fp32,
                    "float64": fp64,
                    "time_ratio": fp64["seconds"] / fp32["seconds"],
                    "size_ratio": fp64["bytes"] / fp32["bytes"],
                    "forward_ratio": fp64["forward_seconds"] / fp32["forward_seconds"],
                }
            )
            print(
                f"{label}: float32 {fp32['seconds']:.2f} s {fp32['bytes'] / 1e6:.1f} MB, float64 "
                f"{fp64['seconds']:.2f} s {fp64['bytes'] / 1e6:.1f} MB "
                f"(time ×{rows[-1]['time_ratio']:.2f}, size ×{rows[-1]['size_ratio']:.2f}); bare forward "
                f"{fp32['forward_seconds'] * 1e3:.1f} ms vs {fp64['forward_seconds'] * 1e3:.1f} ms "
                f"(×{rows[-1]['forward_ratio']:.2f})"
            )
    document = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "rows": rows,
    }
    print(json.dumps(document, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
