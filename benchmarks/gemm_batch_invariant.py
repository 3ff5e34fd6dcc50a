"""Batch-invariant Triton GEMM vs cuBLAS on one GPU, plus the bit-identity proof for per-M tiles.

Usage::

    python benchmarks/gemm_batch_invariant.py --out gemm.json            # table + tile check
    python benchmarks/gemm_batch_invariant.py --tune --out tune.json     # also time candidate tiles

Layout is the one a Linear layer uses: ``y = x @ W.T`` with ``W`` stored [N, K]. cuBLAS runs with
IEEE fp32 for fp32 (no TF32) so both sides compute the same thing. TFLOP/s = 2*M*N*K / time
(median of ``triton.testing.do_bench``). The tile check runs every configuration in the table
(and the candidates with ``--tune``) over M = 1..64 and larger sizes, and compares each row bitwise
with the same row from the reference configuration: per-M tile choice is only sound if all agree.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

MS = [1, 8, 64, 256, 1024, 4096]
SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096)]
CHECK_MS = sorted(set(range(1, 65)) | {100, 128, 255, 256, 513, 1024, 2048})
CANDIDATES = {  # (BLOCK_M, BLOCK_N, num_warps, num_stages)
    "half": [(16, 64, 4, 4), (16, 128, 4, 4), (32, 64, 4, 4), (32, 128, 4, 4), (64, 64, 4, 4), (64, 128, 4, 4),
             (64, 128, 4, 3), (128, 128, 8, 3), (128, 128, 4, 3), (128, 256, 8, 3), (64, 256, 8, 3),
             (16, 32, 4, 6), (16, 64, 4, 6), (128, 128, 8, 4), (128, 256, 8, 4)],
    "fp32": [(16, 64, 4, 3), (32, 64, 4, 3), (32, 32, 4, 3), (64, 64, 4, 3), (64, 128, 8, 3), (128, 64, 8, 3),
             (128, 128, 8, 2)],
}


def _bench(fn: Any) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")) * 1e-3


def tile_check(dtype: torch.dtype, configs: list[tuple[int, int, int, int]]) -> dict[str, Any]:
    from precdiff.kernels import triton_ops

    res: dict[str, Any] = {}
    torch.manual_seed(0)
    for k, n in SHAPES:
        x = torch.randn(max(CHECK_MS), k, device="cuda", dtype=dtype)
        w = torch.randn(n, k, device="cuda", dtype=dtype) / math.sqrt(k)
        ref_cfg = configs[-1]
        ref = triton_ops.matmul(x, w.t(), config=ref_cfg)
        for cfg in configs:
            bad = [m for m in CHECK_MS if not torch.equal(triton_ops.matmul(x[:m], w.t(), config=cfg), ref[:m])]
            res.setdefault(str(list(cfg)), {})[f"K{k}_N{n}"] = bad
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON output path")
    ap.add_argument("--tune", action="store_true", help="also time candidate tile configs per M")
    ap.add_argument("--dtypes", default="bf16,fp32")
    args = ap.parse_args(argv)
    from precdiff.kernels import batch_invariant_mode, triton_ops

    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                              "mm_configs": triton_ops.MM_CONFIGS, "rows": [], "tile_check": {}, "tune": {}}
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    for name in args.dtypes.split(","):
        dtype = dtypes[name]
        kind = "fp32" if dtype == torch.float32 else "half"
        table_cfgs = [c[1:] for c in triton_ops.MM_CONFIGS[kind]]
        check_cfgs = table_cfgs + ([c for c in CANDIDATES[kind] if c not in table_cfgs] if args.tune else [])
        check = tile_check(dtype, check_cfgs)
        report["tile_check"][name] = check
        identical = {c for c, v in check.items() if all(b == [] for b in v.values())}
        print(f"[{name}] tile configs bit-identical to reference {list(check_cfgs[-1])}: "
              f"{sorted(identical)}; differing: {sorted(set(check) - identical)}", flush=True)
        ratios = []
        print(f"{'dtype':5} {'M':>5} {'K':>6} {'N':>6} {'cuBLAS TF/s':>12} {'BI TF/s':>9} {'ratio':>6}")
        for k, n in SHAPES:
            w = torch.randn(n, k, device="cuda", dtype=dtype) / math.sqrt(k)
            for m in MS:
                x = torch.randn(m, k, device="cuda", dtype=dtype)
                flops = 2.0 * m * n * k
                t_ref = _bench(lambda x=x, w=w: torch.mm(x, w.t()))
                with batch_invariant_mode("cuda"):
                    t_bi = _bench(lambda x=x, w=w: torch.mm(x, w.t()))
                ratio = t_bi / t_ref
                ratios.append(ratio)
                row = {"dtype": name, "M": m, "K": k, "N": n, "cublas_tflops": flops / t_ref / 1e12,
                       "bi_tflops": flops / t_bi / 1e12, "ratio": ratio, "config": list(triton_ops.mm_config(m, dtype))}
                report["rows"].append(row)
                print(f"{name:5} {m:5d} {k:6d} {n:6d} {row['cublas_tflops']:12.2f} {row['bi_tflops']:9.2f} "
                      f"{ratio:6.2f}", flush=True)
                if args.tune:
                    timings = {}
                    for cfg in CANDIDATES[kind]:
                        if str(list(cfg)) in identical:
                            timings[str(list(cfg))] = t_ref / _bench(
                                lambda x=x, w=w, cfg=cfg: triton_ops.matmul(x, w.t(), config=cfg))
                    best = max(timings, key=lambda c: timings[c]) if timings else None
                    report["tune"].setdefault(name, []).append({"M": m, "K": k, "N": n, "speed_vs_cublas": timings,
                                                                "best": best})
                    print(f"      tune best {best}: {timings.get(best, float('nan')) if best else 'n/a'}", flush=True)
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        report[f"{name}_geomean_ratio"] = geo
        report[f"{name}_worst_ratio"] = max(ratios)
        print(f"[{name}] geomean slowdown {geo:.3f}x, worst {max(ratios):.3f}x "
              f"(targets: <= 1.15x geomean, <= 1.5x worst)", flush=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
