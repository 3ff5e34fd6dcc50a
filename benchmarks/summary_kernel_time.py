"""Device µs of one summary launch (capture/summary_triton.py's ``launch``, its default launch shape)
on the 8B shape's bf16 tensors, with and without the sketch, for all-finite tensors (the kernel's
fast path) and with one NaN (one program on the exact path), next to a torch sum of the same tensor.
CUDA-graph replays, so no launch cost. It uses only ``launch``, so two trees (two processes) can be
timed side by side:

    PYTHONPATH=$PWD python benchmarks/summary_kernel_time.py --label new --out new.json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import torch

from precdiff.capture import summary_triton as st

sys.path.insert(0, str(Path(__file__).parent))
from sweep_summary_kernel import SHAPES, device_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    rows: list[dict[str, object]] = []
    for shape in SHAPES:
        finite = torch.randn(shape, device=dev).to(torch.bfloat16)
        with_nan = finite.clone()
        with_nan.view(-1)[finite.numel() // 3] = float("nan")
        row: dict[str, object] = {"shape": list(shape), "torch_sum_us": device_us(lambda x=finite: x.sum())}
        for sketches in (True, False):
            grid = st.LAUNCH[sketches][0]
            parts = torch.empty((grid, st.ROW), dtype=torch.float64, device=dev)
            checks = torch.empty(grid, dtype=torch.int64, device=dev)
            for kind, x in (("finite", finite), ("one_nan", with_nan)):
                us = device_us(lambda x=x, p=parts, c=checks, s=sketches: st.launch(x, p, c, sketches=s))
                row[f"{'sketch' if sketches else 'stats'}_{kind}_us"] = us
        rows.append(row)
        print(args.label, json.dumps(row), flush=True)
    if args.out is not None:
        report = {
            "date": date.today().isoformat(),
            "device": torch.cuda.get_device_name(),
            "label": args.label,
            "launch": {str(k): list(v) for k, v in st.LAUNCH.items()},
            "rows": rows,
        }
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
