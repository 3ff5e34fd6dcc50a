"""Batch-invariant Triton GEMM vs cuBLAS on one GPU, the bit-identity proof for tile choice, and tuning.

Usage::

    python benchmarks/gemm_batch_invariant.py --out gemm.json                 # table + tile check
    python benchmarks/gemm_batch_invariant.py --tune --write-table --out tune.json
        # check every candidate bitwise, time the identical ones per (M, K, N), rewrite the tuned
        # tables in precdiff/kernels/gemm_tiles.py, then measure the benchmark with the new tables

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
# The rest of a Llama-3-8B forward (k/v projections, lm_head) for tuning; K = 2000 for the ragged-K path.
TUNE_SHAPES = SHAPES + [(4096, 1024), (4096, 128256)]
TUNE_MS = [1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096]
CHECK_SHAPES = SHAPES + [(4096, 1024), (2000, 1504)]
CHECK_MS = sorted(set(range(1, 65)) | {100, 128, 255, 256, 513, 1024, 2048})
P, T, TP = 0, 1, 2  # load path: pointer, TMA, persistent TMA (precdiff.kernels.gemm_tiles)
CANDIDATES: dict[str, list[tuple[int, ...]]] = {  # (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, load)
    "half": [
        (16, 16, 256, 4, 4, P),
        (16, 32, 64, 4, 6, P),
        (16, 64, 64, 4, 4, P),
        (16, 32, 128, 4, 4, P),
        (16, 32, 256, 4, 3, P),
        (16, 64, 128, 4, 4, P),
        (16, 64, 256, 4, 3, P),
        (32, 64, 128, 4, 4, P),
        (64, 64, 64, 4, 4, P),
        (64, 128, 64, 4, 4, P),
        (128, 128, 64, 8, 3, P),
        (128, 256, 64, 8, 3, P),
        (128, 256, 64, 8, 4, P),
        (16, 16, 256, 4, 4, T),
        (16, 32, 128, 4, 4, T),
        (16, 64, 128, 4, 4, T),
        (16, 32, 256, 4, 4, T),
        (16, 64, 256, 4, 3, T),
        (64, 64, 128, 4, 4, T),
        (64, 128, 64, 4, 4, T),
        (64, 128, 128, 4, 3, T),
        (128, 128, 64, 8, 4, T),
        (128, 256, 64, 8, 3, T),
        (128, 256, 64, 8, 4, T),
        (128, 128, 128, 8, 3, T),
        (256, 128, 64, 8, 3, T),
        (64, 128, 128, 4, 3, TP),
        (128, 128, 64, 8, 4, TP),
        (128, 256, 64, 8, 3, TP),
        (128, 128, 128, 8, 3, TP),
    ],
    "fp32": [
        (16, 16, 32, 4, 3, P),
        (16, 32, 32, 4, 3, P),
        (16, 64, 32, 4, 3, P),
        (32, 32, 32, 4, 3, P),
        (32, 64, 32, 4, 3, P),
        (64, 64, 32, 4, 3, P),
        (64, 64, 16, 4, 4, P),
        (64, 128, 32, 8, 3, P),
        (64, 128, 32, 4, 3, P),
        (128, 64, 32, 8, 3, P),
        (128, 128, 16, 8, 3, P),
        (128, 128, 32, 8, 2, P),
        (16, 16, 64, 4, 3, P),
        (16, 16, 128, 4, 3, P),
        (16, 32, 128, 4, 3, P),
        (16, 64, 128, 4, 3, P),
        (16, 32, 256, 4, 2, P),
        (32, 32, 128, 4, 3, P),
    ],
}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _bench(fn: Any) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")) * 1e-3


def tile_check(dtype: torch.dtype, configs: list[tuple[int, ...]]) -> dict[str, Any]:
    """config -> shape -> the M values whose rows differ from the reference config's (``configs[-1]``)."""
    from precdiff.kernels import triton_gemm

    res: dict[str, Any] = {}
    torch.manual_seed(0)
    for k, n in CHECK_SHAPES:
        x = torch.randn(max(CHECK_MS), k, device="cuda", dtype=dtype)
        w = torch.randn(n, k, device="cuda", dtype=dtype) / math.sqrt(k)
        ref = triton_gemm.matmul(x, w.t(), config=configs[-1])
        for cfg in configs:
            try:
                bad: Any = [
                    m
                    for m in CHECK_MS
                    if not torch.equal(triton_gemm.matmul(x[:m], w.t(), config=cfg), ref[:m])
                ]
            except Exception as exc:
                bad = [f"error: {type(exc).__name__}: {str(exc)[:200]}"]
            res.setdefault(str(list(cfg)), {})[f"K{k}_N{n}"] = bad
    return res


def _plausible(config: tuple[int, ...], m: int) -> bool:
    """Skip configs that cannot win and cost seconds to time (tall tiles for a few rows, 16/32-row
    tiles for 1,024+ rows), and TMA below ``TMA_MIN_M`` rows, where the kernel never uses it."""
    from precdiff.kernels.gemm_tiles import POINTER, TMA_MIN_M

    tma_ok = config[5] == POINTER or m >= TMA_MIN_M
    return tma_ok and config[0] <= 4 * max(m, 16) and not (m >= 1024 and config[0] < 64)


def tune(name: str, identical: list[tuple[int, ...]]) -> list[dict[str, Any]]:
    """Per (M, K, N) of the tuning grid: speed of every bit-identical config relative to cuBLAS."""
    from precdiff.kernels import triton_gemm

    dtype = DTYPES[name]
    rows = []
    # fp32 lm_head is left to the nearest shape: its sweep alone takes minutes at 2-50 TFLOP/s.
    for k, n in TUNE_SHAPES if name != "fp32" else [s for s in TUNE_SHAPES if s[1] < 100_000]:
        w = torch.randn(n, k, device="cuda", dtype=dtype) / math.sqrt(k)
        for m in TUNE_MS:
            x = torch.randn(m, k, device="cuda", dtype=dtype)
            t_ref = _bench(lambda x=x, w=w: torch.mm(x, w.t()))
            speed: dict[str, float] = {}
            for cfg in (c for c in identical if _plausible(c, m)):
                try:
                    speed[str(list(cfg))] = t_ref / _bench(
                        lambda x=x, w=w, cfg=cfg: triton_gemm.matmul(x, w.t(), config=cfg)
                    )
                except Exception as exc:
                    print(f"      {list(cfg)} failed at M={m}: {type(exc).__name__}", flush=True)
            best = max(speed, key=lambda c: speed[c])
            rows.append({"M": m, "K": k, "N": n, "speed_vs_cublas": speed, "best": best})
            print(f"[{name} tune] M={m:5d} K={k:6d} N={n:6d} best {best} {1 / speed[best]:.3f}x", flush=True)
    return rows


def tuned_table(rows: list[dict[str, Any]]) -> dict[tuple[int, int], list[tuple[int, tuple[int, ...]]]]:
    """(K, N) -> M buckets: the fastest config at each tuned M serves M up to it (the last: any M)."""
    table: dict[tuple[int, int], list[tuple[int, tuple[int, ...]]]] = {}
    for r in sorted(rows, key=lambda r: (r["K"], r["N"], r["M"])):
        buckets = table.setdefault((r["K"], r["N"]), [])
        cfg = tuple(json.loads(r["best"]))
        max_m = r["M"] if r["M"] < max(TUNE_MS) else 1 << 62
        if buckets and buckets[-1][1] == cfg:
            buckets[-1] = (max_m, cfg)
        else:
            buckets.append((max_m, cfg))
    return table


def write_tables(
    tables: dict[str, dict[tuple[int, int], list[tuple[int, tuple[int, ...]]]]],
    path: str = "precdiff/kernels/gemm_tiles.py",
) -> None:
    """Rewrite the generated block of gemm_tiles.py and install the tables in this process."""
    from precdiff.kernels import gemm_tiles

    major, minor = torch.cuda.get_device_capability()
    if (major, minor) == gemm_tiles.TUNED_CAPABILITY:  # keep the kinds not tuned in this run
        tables = {**gemm_tiles.TUNED, **tables}  # type: ignore[dict-item]
    tuned_on = (
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"triton {__import__('triton').__version__}, {time.strftime('%Y-%m-%d')}"
    )
    lines = [
        "# BEGIN tuned tables (written by benchmarks/gemm_batch_invariant.py --tune --write-table; do not edit)",
        f"TUNED_CAPABILITY = ({major}, {minor})",
        f'TUNED_ON = "{tuned_on}"',
        "TUNED: dict[str, dict[tuple[int, int], list[Bucket]]] = {",
    ]
    for kind, shapes in tables.items():
        lines.append(f'    "{kind}": {{')
        for (k, n), buckets in shapes.items():
            lines.append(f"        ({k}, {n}): [")
            for max_m, cfg in buckets:
                bound = "UNBOUNDED" if max_m >= 1 << 62 else str(max_m)
                lines.append(f"            ({bound}, {cfg}),")
            lines.append("        ],")
        lines.append("    },")
    lines += ["}", "# END tuned tables"]
    with open(path) as fh:
        src = fh.read()
    head, rest = src.split("# BEGIN tuned tables", 1)
    tail = rest.split("# END tuned tables\n", 1)[1]
    with open(path, "w") as fh:
        fh.write(head + "\n".join(lines) + "\n" + tail)
    gemm_tiles.TUNED_CAPABILITY, gemm_tiles.TUNED_ON = (major, minor), tuned_on
    gemm_tiles.TUNED.clear()
    gemm_tiles.TUNED.update(tables)  # type: ignore[arg-type]
    gemm_tiles.select.cache_clear()
    print(f"wrote tuned tables for {sorted(tables)} to {path}", flush=True)


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
                m, k, n, gemm_tiles.kind_of(dtype == torch.float32), torch.cuda.get_device_capability()
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
    ap.add_argument("--tune", action="store_true", help="check and time every candidate per (M, K, N)")
    ap.add_argument("--write-table", action="store_true", help="with --tune: rewrite the tuned tables")
    ap.add_argument("--dtypes", default="bf16,fp32")
    args = ap.parse_args(argv)
    from precdiff.kernels import gemm_tiles

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
    tables = {}
    for name in names:
        kind = gemm_tiles.kind_of(name == "fp32")
        reference = gemm_tiles.DEFAULT[kind][-1][1]
        pool = CANDIDATES[kind] if args.tune else gemm_tiles.all_configs(kind)
        configs = [c for c in pool if c != reference] + [reference]
        check = tile_check(DTYPES[name], configs)
        report["tile_check"][name] = check
        identical = [c for c in configs if all(b == [] for b in check[str(list(c))].values())]
        differing = [c for c in configs if c not in identical]
        print(
            f"[{name}] {len(identical)} configs bit-identical to the reference {list(reference)} on every "
            f"checked shape; differing or failing: {[list(c) for c in differing]}",
            flush=True,
        )
        report[f"{name}_all_identical"] = not differing
        if args.tune:
            report["tune"][name] = tune(name, identical)
            tables[kind] = tuned_table(report["tune"][name])
        _save(args.out, report)
    if args.write_table and tables:
        write_tables(tables)
        report["tables"] = gemm_tiles.describe()
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
