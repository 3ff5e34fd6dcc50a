"""The GEMM tile tables: lookup rules and the invariants the tuner must keep (pure Python, no GPU)."""

from __future__ import annotations

import json

import pytest

from precdiff.kernels import gemm_tiles
from precdiff.kernels.gemm_tiles import POINTER, TMA_MIN_M, UNBOUNDED

KINDS = ["half", "fp32"]
OTHER_GPU = (8, 0)


def _tables() -> list[tuple[str, str, list[gemm_tiles.Bucket]]]:
    found = [("default", kind, buckets) for kind, buckets in gemm_tiles.DEFAULT.items()]
    for kind, shapes in gemm_tiles.TUNED.items():
        found += [(f"{k}x{n}", kind, buckets) for (k, n), buckets in shapes.items()]
    return found


def test_the_h100_tables_cover_both_kinds_and_the_llama_8b_shapes() -> None:
    assert gemm_tiles.TUNED_CAPABILITY == (9, 0)
    for kind in KINDS:
        assert {(4096, 4096), (4096, 14336), (14336, 4096), (4096, 1024)} <= set(gemm_tiles.TUNED[kind])


@pytest.mark.parametrize("name,kind,buckets", _tables(), ids=[f"{t[1]}-{t[0]}" for t in _tables()])
def test_every_table_is_well_formed(name: str, kind: str, buckets: list[gemm_tiles.Bucket]) -> None:
    bounds = [max_m for max_m, _ in buckets]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds) and bounds[-1] == UNBOUNDED
    for max_m, (bm, bn, bk, warps, stages, load) in buckets:
        assert all(v >= 16 and v & (v - 1) == 0 for v in (bm, bn, bk)), (name, max_m)
        assert warps in (4, 8) and 2 <= stages <= 6
        # TMA descriptors cost more host time than a small GEMM runs: the tuner must not pick them there.
        assert load == POINTER or max_m >= TMA_MIN_M, f"{kind} {name}: TMA config for M <= {max_m}"
        assert kind == "half" or load == POINTER, "fp32 has no TMA path"
        if load != POINTER:
            assert max(bm, bn, bk) <= 256  # TMA box dimensions


@pytest.mark.parametrize("kind", KINDS)
def test_small_m_never_selects_tma(kind: str) -> None:
    shapes = [(4096, 4096), (2048, 5632), (8192, 128256), (64, 64)]
    for k, n in shapes:
        for m in (1, 2, 8, 33, 64, TMA_MIN_M - 1):
            assert gemm_tiles.select(m, k, n, kind, (9, 0))[5] == POINTER


def _runs_as(config: gemm_tiles.Config, m: int) -> gemm_tiles.Config:
    return config if m >= TMA_MIN_M else (*config[:5], POINTER)


def test_exact_shape_picks_its_bucket_by_m() -> None:
    buckets = gemm_tiles.TUNED["half"][(4096, 14336)]
    for max_m, config in buckets[:-1]:
        assert gemm_tiles.select(max_m, 4096, 14336, "half", (9, 0)) == _runs_as(config, max_m)
        following = next(c for b, c in buckets if b > max_m)
        assert gemm_tiles.select(max_m + 1, 4096, 14336, "half", (9, 0)) == _runs_as(following, max_m + 1)
    assert gemm_tiles.select(10**6, 4096, 14336, "half", (9, 0)) == buckets[-1][1]


def test_untuned_shape_uses_the_nearest_tuned_shape() -> None:
    # Llama-3.2-3B q/o_proj 3072x3072: nearest in log-space is 4096x4096.
    assert gemm_tiles._nearest(list(gemm_tiles.TUNED["half"]), 3072, 3072) == (4096, 4096)
    for m in (1, 100, 3000):
        assert gemm_tiles.select(m, 3072, 3072, "half", (9, 0)) == gemm_tiles.select(
            m, 4096, 4096, "half", (9, 0)
        )
    # 2048x2048 is one octave from both 4096x1024 and 4096x4096: the tie goes to the same weight size.
    assert gemm_tiles._nearest(list(gemm_tiles.TUNED["half"]), 2048, 2048) == (4096, 1024)
    # A 13824-wide MLP (Qwen2.5-14B) is nearest to the 14336 one, not to 4096.
    assert gemm_tiles._nearest(list(gemm_tiles.TUNED["half"]), 5120, 13824) == (4096, 14336)


@pytest.mark.parametrize("kind", KINDS)
def test_other_gpus_get_the_pointer_only_defaults(kind: str) -> None:
    for m in (1, 16, 17, 64, 65, 256, 257, 100_000):
        config = gemm_tiles.select(m, 4096, 4096, kind, OTHER_GPU)
        assert config[5] == POINTER
        assert config == next(c for max_m, c in gemm_tiles.DEFAULT[kind] if m <= max_m)


def test_all_configs_lists_every_config_the_tables_can_return() -> None:
    for kind in KINDS:
        listed = set(gemm_tiles.all_configs(kind))
        for _, table_kind, buckets in _tables():
            if table_kind == kind:
                assert {c for _, c in buckets} <= listed


def test_describe_is_json_for_the_manifest() -> None:
    doc = json.loads(json.dumps(gemm_tiles.describe()))
    assert doc["tuned_capability"] == [9, 0] and "4096x14336" in doc["tuned"]["half"]
    assert doc["default"]["fp32"][-1][0] == UNBOUNDED
