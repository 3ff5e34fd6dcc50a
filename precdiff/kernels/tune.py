"""``precdiff kernels tune``: tune the batch-invariant GEMM tile tables for the GPU at hand.

Two stages per dtype, as the shipped H100 tables were made:

1. **Bit check.** Every candidate configuration computes a probe GEMM over ``M = 1..64`` and larger
   sizes on every tuned (K, N) plus a ragged-K shape, and each row is compared bitwise with the row the
   reference configuration (the conservative default's largest tile) computes. A candidate that
   differs anywhere is dropped: tile choice may only change speed, never bits.
2. **Timing.** Every surviving candidate is timed against cuBLAS (``torch.mm``, IEEE fp32 for fp32)
   per (M, K, N) of the grid with ``triton.testing.do_bench`` (median); the fastest wins its M.

Adjacent M values with the same winner merge into one bucket. The table is written to the user cache
keyed by the GPU's name and capability (:mod:`precdiff.kernels.tile_tables`), where the
batch-invariant mode picks it up. Needs CUDA and Triton; nothing here runs on import.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from precdiff.errors import InputError, KernelError
from precdiff.kernels import gemm_tiles, tile_tables
from precdiff.kernels.gemm_tiles import POINTER, TMA, TMA_MIN_M, TMA_PERSISTENT, UNBOUNDED, Config

P, T, TP = POINTER, TMA, TMA_PERSISTENT
# fmt: off
CANDIDATES: dict[str, list[Config]] = {  # (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, load)
    "half": [
        (16, 16, 256, 4, 4, P), (16, 32, 64, 4, 6, P), (16, 64, 64, 4, 4, P), (16, 32, 128, 4, 4, P),
        (16, 32, 256, 4, 3, P), (16, 64, 128, 4, 4, P), (16, 64, 256, 4, 3, P), (32, 64, 128, 4, 4, P),
        (64, 64, 64, 4, 4, P), (64, 128, 64, 4, 4, P), (128, 128, 64, 8, 3, P), (128, 256, 64, 8, 3, P),
        (128, 256, 64, 8, 4, P), (16, 16, 256, 4, 4, T), (16, 32, 128, 4, 4, T), (16, 64, 128, 4, 4, T),
        (16, 32, 256, 4, 4, T), (16, 64, 256, 4, 3, T), (64, 64, 128, 4, 4, T), (64, 128, 64, 4, 4, T),
        (64, 128, 128, 4, 3, T), (128, 128, 64, 8, 4, T), (128, 256, 64, 8, 3, T), (128, 256, 64, 8, 4, T),
        (128, 128, 128, 8, 3, T), (256, 128, 64, 8, 3, T), (64, 128, 128, 4, 3, TP), (128, 128, 64, 8, 4, TP),
        (128, 256, 64, 8, 3, TP), (128, 128, 128, 8, 3, TP),
        # Round 2 (H200, 2026-12-01): M = 64..512 with few N tiles (N = 1024, 4096) lost 1.3-1.8x to cuBLAS,
        # which splits K; without split-K only deeper pipelines and more, smaller tiles can help there.
        (16, 32, 256, 4, 4, P), (16, 64, 256, 4, 4, P), (32, 32, 256, 4, 4, P), (32, 64, 256, 4, 3, P),
        (32, 64, 128, 4, 5, P), (64, 32, 256, 4, 3, P), (64, 64, 128, 4, 5, P), (64, 64, 128, 8, 4, P),
        (64, 64, 256, 4, 3, P), (16, 128, 128, 4, 4, P), (32, 128, 128, 4, 4, P), (64, 128, 128, 8, 3, P),
        (64, 64, 128, 4, 5, T), (64, 64, 256, 4, 3, T), (128, 64, 128, 8, 4, T), (128, 128, 64, 4, 4, T),
    ],
    "fp32": [
        (16, 16, 32, 4, 3, P), (16, 32, 32, 4, 3, P), (16, 64, 32, 4, 3, P), (32, 32, 32, 4, 3, P),
        (32, 64, 32, 4, 3, P), (64, 64, 32, 4, 3, P), (64, 64, 16, 4, 4, P), (64, 128, 32, 8, 3, P),
        (64, 128, 32, 4, 3, P), (128, 64, 32, 8, 3, P), (128, 128, 16, 8, 3, P), (128, 128, 32, 8, 2, P),
        (16, 16, 64, 4, 3, P), (16, 16, 128, 4, 3, P), (16, 32, 128, 4, 3, P), (16, 64, 128, 4, 3, P),
        (16, 32, 256, 4, 2, P), (32, 32, 128, 4, 3, P),
    ],
}
# fmt: on
# Llama-3-8B's Linear shapes (K, N): q/o, gate/up, down, k/v, lm_head.
LLAMA_8B_SHAPES: tuple[tuple[int, int], ...] = (
    (4096, 4096),
    (4096, 14336),
    (14336, 4096),
    (4096, 1024),
    (4096, 128256),
)
TUNE_MS: tuple[int, ...] = (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CHECK_MS: tuple[int, ...] = tuple(sorted(set(range(1, 65)) | {100, 128, 255, 256, 513, 1024, 2048}))
RAGGED_SHAPE = (2000, 1504)  # K not a multiple of any BLOCK_K: the masked tail must agree too
DTYPE_KINDS = {"bf16": "half", "fp16": "half", "fp32": "fp32"}
LARGE_N = 100_000  # fp32 shapes wider than this (lm_head) are left to the nearest shape: minutes each


@dataclass(frozen=True)
class TuneOptions:
    dtypes: tuple[str, ...] = ("bf16",)
    shapes: tuple[tuple[int, int], ...] = LLAMA_8B_SHAPES
    ms: tuple[int, ...] = TUNE_MS
    out: str | None = None  # default: the user cache file for this GPU

    def validate(self) -> None:
        unknown = [d for d in self.dtypes if d not in DTYPE_KINDS]
        if unknown or not self.dtypes:
            raise InputError(
                f"--dtypes takes bf16, fp16, fp32 separated by commas, got {','.join(self.dtypes)!r}"
            )
        if not self.shapes or any(k < 1 or n < 1 for k, n in self.shapes):
            raise InputError("--shapes needs at least one K×N with positive sizes, e.g. 4096x4096,4096x14336")
        if not self.ms or min(self.ms) < 1:
            raise InputError("--ms takes positive row counts, e.g. 1,8,64,256,1024,4096")


@dataclass(frozen=True)
class TuneResult:
    path: Path
    device_name: str
    capability: tuple[int, int]
    seconds: float
    identical: dict[str, int]  # kind -> bit-identical candidates kept
    rejected: dict[str, list[str]]  # kind -> candidates that differed or failed
    best_ratio: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> "MxKxN" -> ratio

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "device_name": self.device_name,
            "capability": list(self.capability),
            "seconds": self.seconds,
            "identical": self.identical,
            "rejected": self.rejected,
            "best_ratio_vs_cublas": self.best_ratio,
        }


def shapes_from_config(config: Any) -> tuple[tuple[int, int], ...]:
    """The (K, N) of a decoder model's Linear layers, from its HF config (q/o, k/v, MLP, lm_head)."""
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    kv = int(getattr(config, "num_key_value_heads", None) or heads) * head_dim
    inter = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    shapes = {
        (hidden, heads * head_dim),
        (heads * head_dim, hidden),
        (hidden, kv),
        (hidden, inter),
        (inter, hidden),
    }
    shapes.add((hidden, int(config.vocab_size)))
    return tuple(sorted(shapes))


def _bench(fn: Callable[[], Any]) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")) * 1e-3


def bit_check(dtype: Any, configs: Sequence[Config], shapes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """config -> shape -> the M values whose rows differ from the reference config's (``configs[-1]``)."""
    import torch

    from precdiff.kernels import triton_gemm

    result: dict[str, Any] = {}
    gen = torch.Generator(device="cuda").manual_seed(0)
    for k, n in [*shapes, RAGGED_SHAPE]:
        if n > LARGE_N:
            continue  # the lm_head shares its K and tile walk with the other shapes; its size only costs time
        x = torch.randn(max(CHECK_MS), k, device="cuda", generator=gen).to(dtype)
        w = (torch.randn(n, k, device="cuda", generator=gen) / math.sqrt(k)).to(dtype)
        ref = triton_gemm.matmul(x, w.t(), config=configs[-1])
        for cfg in configs:
            try:
                bad: list[Any] = [
                    m
                    for m in CHECK_MS
                    if not torch.equal(triton_gemm.matmul(x[:m], w.t(), config=cfg), ref[:m])
                ]
            except Exception as exc:  # a config this GPU cannot compile or launch: rejected, reason kept
                bad = [f"error: {type(exc).__name__}: {str(exc)[:200]}"]
            result.setdefault(json.dumps(list(cfg)), {})[f"{k}x{n}"] = bad
    return result


def _plausible(config: Config, m: int) -> bool:
    """Skip configs that cannot win and cost seconds to time (tall tiles for a few rows, 16/32-row
    tiles for 1,024+ rows), and TMA below ``TMA_MIN_M`` rows, where the kernel never uses it."""
    tma_ok = config[5] == POINTER or m >= TMA_MIN_M
    return tma_ok and config[0] <= 4 * max(m, 16) and not (m >= 1024 and config[0] < 64)


def time_candidates(
    dtype: Any,
    identical: Sequence[Config],
    shapes: Sequence[tuple[int, int]],
    ms: Sequence[int],
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Per (M, K, N): speed of every bit-identical config relative to cuBLAS (>1 = faster than cuBLAS)."""
    import torch

    from precdiff.kernels import triton_gemm

    rows = []
    fp32 = dtype == torch.float32
    for k, n in shapes:
        if fp32 and n > LARGE_N:
            continue
        w = (torch.randn(n, k, device="cuda") / math.sqrt(k)).to(dtype)
        for m in ms:
            x = torch.randn(m, k, device="cuda").to(dtype)
            t_ref = _bench(functools.partial(torch.mm, x, w.t()))
            speed: dict[str, float] = {}
            for cfg in (c for c in identical if _plausible(c, m)):
                try:
                    run = functools.partial(triton_gemm.matmul, x, w.t(), config=cfg)
                    speed[json.dumps(list(cfg))] = t_ref / _bench(run)
                except Exception as exc:  # timing failures drop the candidate for this M only
                    progress(f"{list(cfg)} failed at M={m}: {type(exc).__name__}")
            if not speed:
                continue
            best = max(speed, key=lambda c: speed[c])
            rows.append({"M": m, "K": k, "N": n, "speed_vs_cublas": speed, "best": best})
            progress(f"M={m} K={k} N={n}: best {best} at {1 / speed[best]:.3f}x cuBLAS time")
    return rows


def build_tables(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, int], list[gemm_tiles.Bucket]]:
    """(K, N) -> M buckets: the fastest config at each tuned M serves M up to it (the last: any M)."""
    table: dict[tuple[int, int], list[gemm_tiles.Bucket]] = {}
    largest = {
        (r["K"], r["N"]): max(x["M"] for x in rows if (x["K"], x["N"]) == (r["K"], r["N"])) for r in rows
    }
    for r in sorted(rows, key=lambda r: (r["K"], r["N"], r["M"])):
        shape = (r["K"], r["N"])
        buckets = table.setdefault(shape, [])
        cfg: Config = tuple(json.loads(r["best"]))
        max_m = UNBOUNDED if r["M"] == largest[shape] else int(r["M"])
        if buckets and buckets[-1][1] == cfg:
            buckets[-1] = (max_m, cfg)
        else:
            buckets.append((max_m, cfg))
    return table


def tune(options: TuneOptions, progress: Callable[[str], None] = lambda _line: None) -> TuneResult:
    """Bit-check and time every candidate on this GPU, write the table, return where and what.

    Raises:
        InputError: invalid options.
        KernelError: no CUDA GPU or no Triton, or the table cannot be written.
    """
    options.validate()
    import torch

    if not torch.cuda.is_available():
        raise KernelError("`precdiff kernels tune` needs a CUDA GPU; torch sees none on this machine")
    try:
        import triton  # noqa: F401  (presence check: the kernels are Triton)
    except ImportError:
        raise KernelError(
            "`precdiff kernels tune` needs Triton next to torch's CUDA build; pip install triton"
        ) from None
    started = time.perf_counter()
    device = torch.cuda.current_device()
    name = torch.cuda.get_device_name(device)
    capability = tuple(torch.cuda.get_device_capability(device))
    saved_precision = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # cuBLAS fp32 must be IEEE like the Triton kernel
    tables: tile_tables.Tables = {}
    evidence: dict[str, Any] = {}
    identical_counts: dict[str, int] = {}
    rejected: dict[str, list[str]] = {}
    best: dict[str, dict[str, float]] = {}
    try:
        for dtype_name in options.dtypes:
            kind = DTYPE_KINDS[dtype_name]
            if kind in tables:
                continue  # bf16 and fp16 share the "half" table
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
            reference = gemm_tiles.DEFAULT[kind][-1][1]
            configs = [c for c in CANDIDATES[kind] if c != reference] + [reference]
            progress(f"[{dtype_name}] bit check of {len(configs)} candidates")
            check = bit_check(dtype, configs, options.shapes)
            keep = [c for c in configs if all(v == [] for v in check[json.dumps(list(c))].values())]
            identical_counts[kind] = len(keep)
            rejected[kind] = [json.dumps(list(c)) for c in configs if c not in keep]
            progress(
                f"[{dtype_name}] {len(keep)} bit-identical to {list(reference)}; rejected {rejected[kind]}"
            )
            rows = time_candidates(dtype, keep, options.shapes, options.ms, progress)
            tables[kind] = build_tables(rows)
            best[kind] = {f"{r['M']}x{r['K']}x{r['N']}": 1.0 / r["speed_vs_cublas"][r["best"]] for r in rows}
            evidence[kind] = {"bit_check": check, "timings": rows}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved_precision
    tuned_on = f"{name}, torch {torch.__version__}, triton {__import__('triton').__version__}, {time.strftime('%Y-%m-%d')}"
    table = tile_tables.TileTable(name, capability, tuned_on, tables, source="")  # type: ignore[arg-type]
    path = tile_tables.write(table, {"evidence": evidence}, Path(options.out) if options.out else None)
    gemm_tiles.select.cache_clear()
    return TuneResult(path, name, capability, time.perf_counter() - started, identical_counts, rejected, best)  # type: ignore[arg-type]
