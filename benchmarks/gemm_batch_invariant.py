"""Batch-invariant Triton GEMM vs cuBLAS on one GPU, the bit-identity proof for tile choice, and tuning.

Usage::

    python benchmarks/gemm_batch_invariant.py --out gemm.json        # tile check + benchmark
    python benchmarks/gemm_batch_invariant.py --tune --out gemm.json
        # first `precdiff kernels tune` (precdiff/kernels/tune.py) for this GPU into the user cache,
        # then the tile check and the benchmark with the tuned table

Layout is the one a Linear layer uses: ``y = x @ W.T`` with ``W`` stored [N, K]. cuBLAS runs with
IEEE fp32 for fp32 (no TF32) so both sides compute the same thing. TFLOP/s = 2*M*N*K / time
(median of ``triton.testing.do_bench``). The tile check runs every configuration (the shipped tables'
or, with ``--tune``, every candidate) over M = 1..64 and larger sizes and compares each row bitwise
with the same row from a reference configuration: per-shape tile choice is only sound if all agree,
and only configurations that agree on every checked shape are timed or written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import torch

MS = [1, 8, 64, 256, 1024, 4096]
SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096)]
CHECK_SHAPES = SHAPES + [(4096, 1024), (2000, 1504)]
CHECK_MS = sorted(set(range(1, 65)) | {100, 128, 255, 256, 513, 1024, 2048})
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _bench(fn: Any) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")) * 1e-3


def measure(name: str) -> list[dict[str, Any]]:
    """The benchmark grid through ``torch.mm`` inside the mode (the shipped tables), vs cuBLAS."""
    from precdiff.kernels import batch_invariant_mode, gemm_tiles

    dtype = DTYPES[name]
    rows = []
    print(f"{'dtype':5} {'M':>5} {'K':>6} {'N':>6} {'cuBLAS TF/s':>12} {'BI TF/s':>9} {'ratio':>6}  config")
    for k, n in SHAPES:
        w = torch.randn(n, k, device="cuda", dtype=dtype) / math.sqrt(k)
        for m in MS:
            x = torch.randn(m, k, device="cuda", dtype=dtype)
            flops = 2.0 * m * n * k
            t_ref = _bench(lambda x=x, w=w: torch.mm(x, w.t()))
            with batch_invariant_mode("cuda"):
                t_bi = _bench(lambda x=x, w=w: torch.mm(x, w.t()))
            cfg = gemm_tiles.select(
                m,
                k,
                n,
                gemm_tiles.kind_of(dtype == torch.float32),
                torch.cuda.get_device_capability(),
                torch.cuda.get_device_name(),
            )
            row = {
                "dtype": name,
                "M": m,
                "K": k,
                "N": n,
                "cublas_tflops": flops / t_ref / 1e12,
                "bi_tflops": flops / t_bi / 1e12,
                "ratio": t_bi / t_ref,
                "config": list(cfg),
            }
            rows.append(row)
            print(
                f"{name:5} {m:5d} {k:6d} {n:6d} {row['cublas_tflops']:12.2f} {row['bi_tflops']:9.2f} "
                f"{row['ratio']:6.2f}  {list(cfg)}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON output path")
    ap.add_argument("--tune", action="store_true", help="run `precdiff kernels tune` for this GPU first")
    ap.add_argument("--dtypes", default="bf16,fp32")
    args = ap.parse_args(argv)
    from precdiff.kernels import gemm_tiles
    from precdiff.kernels.tune import bit_check

    torch.backends.cuda.matmul.fp32_precision = "ieee"
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "rows": [],
        "tile_check": {},
        "tune": {},
    }
    names = args.dtypes.split(",")
    if args.tune:
        from precdiff.kernels.tune import TuneOptions, tune

        result = tune(TuneOptions(dtypes=tuple(names)), progress=lambda line: print(line, flush=True))
        report["tune"] = result.to_dict()
        print(f"tuned table: {result.path} ({result.seconds:.0f} s)", flush=True)
    device_name = torch.cuda.get_device_name()
    capability = torch.cuda.get_device_capability()
    report["tables"] = gemm_tiles.describe(capability, device_name)
    for name in names:
        kind = gemm_tiles.kind_of(name == "fp32")
        reference = gemm_tiles.DEFAULT[kind][-1][1]
        used = sorted(
            {
                c
                for shape in (gemm_tiles.tables_for(kind, capability, device_name) or {}).values()
                for _, c in shape
            }
        )
        configs = [c for c in used if c != reference] + [reference]
        check = bit_check(DTYPES[name], configs, CHECK_SHAPES[:-1])  # bit_check adds the ragged shape
        report["tile_check"][name] = check
        differing = [c for c in configs if any(b != [] for b in check[str(list(c))].values())]
        print(
            f"[{name}] {len(configs) - len(differing)} table configs bit-identical to the reference "
            f"{list(reference)} on every checked shape; differing or failing: {[list(c) for c in differing]}",
            flush=True,
        )
        report[f"{name}_all_identical"] = not differing
        _save(args.out, report)
    for name in names:
        rows = measure(name)
        report["rows"] += rows
        ratios = [r["ratio"] for r in rows]
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        report[f"{name}_geomean_ratio"], report[f"{name}_worst_ratio"] = geo, max(ratios)
        print(
            f"[{name}] geomean slowdown {geo:.3f}x, worst {max(ratios):.3f}x "
            f"(targets: <= 1.15x geomean, <= 1.5x worst)",
            flush=True,
        )
        _save(args.out, report)
    return 0


def _save(path: str, report: dict[str, Any]) -> None:
    """Written after every stage, so a run cut off by a time limit keeps what it measured."""
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
