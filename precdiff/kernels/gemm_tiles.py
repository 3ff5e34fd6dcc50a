"""Which tile configuration runs a batch-invariant GEMM of shape (M, K) x (K, N).

A configuration only changes speed, never bits: every kernel walks K from 0 in order with fp32
accumulation in 16-deep MMA steps, so a row's result depends on K and the MMA instruction alone.
That is a claim about the hardware and compiler, so it is *measured*, not assumed:
``benchmarks/gemm_batch_invariant.py`` runs every candidate over M = 1..64 plus sizes up to 2048 and
compares each row bitwise with a reference configuration, and only configurations that pass may
appear here (``tests/gpu/test_kernels_gpu.py`` repeats the check for the shipped tables).

A configuration is ``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages, load)`` with ``load``
``POINTER`` (masked pointer loads, any GPU Triton supports), ``TMA`` (host tensor descriptors, one
program per output tile) or ``TMA_PERSISTENT`` (one program per SM looping over tiles). TMA needs
compute capability 9.0+ and 2-D, 16-byte aligned half-precision operands; anything else runs the
pointer kernel with the same tile.

Lookup, first match wins: the table ``precdiff kernels tune`` wrote for this GPU model into the user
cache, or one shipped for it in ``precdiff/kernels/tables/`` (:mod:`precdiff.kernels.tile_tables`,
keyed by device name and capability); the H100 table below for other GPUs of its capability; the
conservative :data:`DEFAULT` (pointer loads, tiles that fit in an A100's shared memory) elsewhere.
Within a table: the exact (K, N), or else the tuned (K, N) nearest in log-space (tile choice follows
the grid size and K length, which the nearest shape shares best).
"""

from __future__ import annotations

import functools
import math

from precdiff.kernels import tile_tables

Config = tuple[int, int, int, int, int, int]
Bucket = tuple[int, Config]  # (largest M it serves, config); first bucket with M <= max wins
POINTER, TMA, TMA_PERSISTENT = 0, 1, 2
UNBOUNDED = 1 << 62
TMA_MIN_M = 128
"""Fewer rows than this always take the pointer kernel: building and encoding two TMA descriptors
costs ~50 µs of host time per launch (measured on the H100 machine), longer than such a GEMM runs,
and decode (M = batch size) is bound by host time."""

# Pointer loads only; tuned on the H100 in round 1 (benchmarks/results/gemm_tune_round1.json).
DEFAULT: dict[str, list[Bucket]] = {
    "half": [
        (16, (16, 64, 64, 4, 4, POINTER)),
        (64, (32, 64, 64, 4, 4, POINTER)),
        (256, (64, 128, 64, 4, 4, POINTER)),
        (UNBOUNDED, (128, 128, 64, 8, 3, POINTER)),
    ],
    "fp32": [
        (16, (16, 64, 32, 4, 3, POINTER)),
        (64, (32, 64, 32, 4, 3, POINTER)),
        (256, (128, 64, 32, 8, 3, POINTER)),
        (UNBOUNDED, (128, 128, 32, 8, 2, POINTER)),
    ],
}

# BEGIN tuned tables (the shipped H100 table, tuned 2026-11-22; new tunings go to JSON, see tile_tables.py)
TUNED_CAPABILITY = (9, 0)
TUNED_ON = "NVIDIA H100 80GB HBM3, torch 2.11.0+cu130, triton 3.6.0, 2026-11-22"
TUNED: dict[str, dict[tuple[int, int], list[Bucket]]] = {
    "half": {
        (4096, 1024): [
            (64, (16, 16, 256, 4, 4, 0)),
            (128, (16, 32, 256, 4, 4, 1)),
            (512, (64, 64, 128, 4, 4, 1)),
            (1024, (64, 128, 128, 4, 3, 2)),
            (2048, (128, 128, 128, 8, 3, 2)),
            (UNBOUNDED, (128, 256, 64, 8, 3, 2)),
        ],
        (4096, 4096): [
            (8, (16, 16, 256, 4, 4, 0)),
            (32, (16, 32, 256, 4, 3, 0)),
            (64, (16, 64, 256, 4, 3, 0)),
            (128, (64, 64, 128, 4, 4, 1)),
            (256, (64, 128, 128, 4, 3, 2)),
            (512, (128, 128, 128, 8, 3, 2)),
            (UNBOUNDED, (128, 256, 64, 8, 3, 2)),
        ],
        (4096, 14336): [
            (1, (16, 64, 256, 4, 3, 0)),
            (8, (16, 64, 128, 4, 4, 0)),
            (32, (16, 64, 256, 4, 3, 0)),
            (64, (64, 64, 64, 4, 4, 0)),
            (128, (128, 128, 128, 8, 3, 1)),
            (256, (128, 256, 64, 8, 4, 1)),
            (512, (128, 256, 64, 8, 3, 2)),
            (1024, (128, 128, 128, 8, 3, 2)),
            (2048, (128, 256, 64, 8, 3, 2)),
            (UNBOUNDED, (256, 128, 64, 8, 3, 1)),
        ],
        (4096, 128256): [
            (8, (16, 16, 256, 4, 4, 0)),
            (32, (32, 64, 128, 4, 4, 0)),
            (64, (64, 64, 64, 4, 4, 0)),
            (128, (128, 128, 128, 8, 3, 2)),
            (UNBOUNDED, (128, 256, 64, 8, 3, 2)),
        ],
        (14336, 4096): [
            (8, (16, 16, 256, 4, 4, 0)),
            (32, (16, 32, 256, 4, 3, 0)),
            (64, (16, 64, 256, 4, 3, 0)),
            (128, (64, 64, 128, 4, 4, 1)),
            (256, (64, 128, 128, 4, 3, 2)),
            (512, (128, 128, 128, 8, 3, 2)),
            (2048, (256, 128, 64, 8, 3, 1)),
            (UNBOUNDED, (128, 256, 64, 8, 3, 2)),
        ],
    },
    "fp32": {
        (4096, 1024): [
            (32, (16, 16, 128, 4, 3, 0)),
            (64, (16, 32, 128, 4, 3, 0)),
            (128, (32, 32, 128, 4, 3, 0)),
            (256, (32, 64, 32, 4, 3, 0)),
            (512, (64, 64, 16, 4, 4, 0)),
            (1024, (64, 128, 32, 4, 3, 0)),
            (UNBOUNDED, (128, 128, 32, 8, 2, 0)),
        ],
        (4096, 4096): [
            (1, (16, 32, 32, 4, 3, 0)),
            (8, (16, 32, 128, 4, 3, 0)),
            (32, (16, 64, 32, 4, 3, 0)),
            (64, (32, 64, 32, 4, 3, 0)),
            (128, (64, 64, 16, 4, 4, 0)),
            (256, (64, 128, 32, 4, 3, 0)),
            (UNBOUNDED, (128, 128, 32, 8, 2, 0)),
        ],
        (4096, 14336): [
            (8, (16, 64, 32, 4, 3, 0)),
            (64, (64, 128, 32, 4, 3, 0)),
            (UNBOUNDED, (128, 128, 32, 8, 2, 0)),
        ],
        (14336, 4096): [
            (8, (16, 32, 128, 4, 3, 0)),
            (32, (16, 64, 32, 4, 3, 0)),
            (64, (32, 64, 32, 4, 3, 0)),
            (128, (64, 64, 16, 4, 4, 0)),
            (256, (64, 128, 32, 4, 3, 0)),
            (UNBOUNDED, (128, 128, 32, 8, 2, 0)),
        ],
    },
}
# END tuned tables


def kind_of(is_fp32: bool) -> str:
    """Table name for an operand dtype: ``"fp32"`` or ``"half"`` (bf16 and fp16)."""
    return "fp32" if is_fp32 else "half"


def _pick(buckets: list[Bucket], m: int) -> Config:
    for max_m, config in buckets:
        if m <= max_m:
            return config
    return buckets[-1][1]


def _nearest(shapes: list[tuple[int, int]], k: int, n: int) -> tuple[int, int]:
    """The tuned (K, N) closest in log-space; ties go to the one closest in weight size K*N."""
    lk, ln = math.log2(max(k, 1)), math.log2(max(n, 1))

    def distance(shape: tuple[int, int]) -> tuple[float, float]:
        dk, dn = math.log2(shape[0]) - lk, math.log2(shape[1]) - ln
        return abs(dk) + abs(dn), abs(dk + dn)

    return min(shapes, key=distance)


def tables_for(
    kind: str, capability: tuple[int, int], device_name: str = ""
) -> dict[tuple[int, int], list[Bucket]] | None:
    """The tuned ``kind`` tables that apply to this GPU (see the module docstring), or ``None``."""
    own = tile_tables.for_device(device_name, capability) if device_name else None
    if own is not None and own.tables.get(kind):
        return own.tables[kind]
    return TUNED.get(kind) if capability == TUNED_CAPABILITY else None


@functools.lru_cache(maxsize=8192)
def select(m: int, k: int, n: int, kind: str, capability: tuple[int, int], device_name: str = "") -> Config:
    """The configuration for an (M, K) x (K, N) GEMM of table ``kind`` on a GPU of ``capability``.

    Below :data:`TMA_MIN_M` rows a TMA config (a bucket reaching up from there) runs as the pointer
    kernel with the same tile.
    """
    tuned = tables_for(kind, capability, device_name)
    if not tuned:
        return _pick(DEFAULT[kind], m)
    shape = (k, n) if (k, n) in tuned else _nearest(list(tuned), k, n)
    return runs_as(_pick(tuned[shape], m), m)


def runs_as(config: Config, m: int) -> Config:
    """The config as it runs for ``m`` rows: below :data:`TMA_MIN_M`, a TMA config takes the pointer kernel."""
    return config if m >= TMA_MIN_M or config[5] == POINTER else (*config[:5], POINTER)


def all_configs(kind: str) -> list[Config]:
    """Every configuration the tables can return for ``kind`` (the GPU test checks them all)."""
    seen = [c for _, c in DEFAULT[kind]]
    for buckets in TUNED.get(kind, {}).values():
        seen += [c for _, c in buckets]
    return sorted(set(seen))


def describe(capability: tuple[int, int] | None = None, device_name: str = "") -> dict[str, object]:
    """The tables as plain JSON-able data (recorded in a capture manifest), with the tuned table file
    that applies to the given GPU, if any."""
    own = tile_tables.for_device(device_name, capability) if device_name and capability else None
    return {
        "device_table": None if own is None else {"source": own.source, "tuned_on": own.tuned_on},
        "default": {k: [[m, *c] for m, c in v] for k, v in DEFAULT.items()},
        "tuned_capability": list(TUNED_CAPABILITY),
        "tuned_on": TUNED_ON,
        "tuned": {
            kind: {f"{k}x{n}": [[m, *c] for m, c in b] for (k, n), b in shapes.items()}
            for kind, shapes in TUNED.items()
        },
    }
