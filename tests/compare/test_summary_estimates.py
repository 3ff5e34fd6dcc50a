"""Summary captures end to end: the sketches ``--summary`` writes, and compare's estimates from them
against the exact metrics of the same runs captured in full (fp32 rounding-level and bf16 pairs)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from summaries import ANY, summary_only

from precdiff.capture import capture
from precdiff.compare.compare import compare
from precdiff.compare.sketch_estimate import relative_std
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.store import format as fmt
from precdiff.store import open_capture

IDS = CaptureInput(input_ids=tuple(range(5, 37)))
SPREAD = relative_std(256)


def _capture(path: Path, dtype: str, attn: str, **options: object) -> Path:
    opts = CaptureOptions(device="cpu", dtype=dtype, attn_implementation=attn, max_new_tokens=0, **options)  # type: ignore[arg-type]
    return capture("tiny:llama", path, IDS, opts).path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 eager (reference), fp32 sdpa (rounding-level difference), bf16 eager; each in full with its
    sketches (focus on everything), plus a plain ``--summary`` capture of the reference run."""
    folder = tmp_path_factory.mktemp("summary_runs")
    return {
        "ref": _capture(folder / "ref.h5", "float32", "eager", focus=(ANY,)),
        "fp32": _capture(folder / "fp32.h5", "float32", "sdpa", focus=(ANY,)),
        "bf16": _capture(folder / "bf16.h5", "bfloat16", "eager", focus=(ANY,)),
        "summary": _capture(folder / "summary.h5", "float32", "eager", summary=True),
    }


def test_summary_capture_stores_sketches_aligned_with_the_index(runs: dict[str, Path]) -> None:
    with h5py.File(runs["summary"]) as plain, h5py.File(runs["ref"]) as focused:
        assert fmt.TENSORS_GROUP not in plain
        rows = plain[fmt.TENSOR_INDEX][()]
        sketches, checksums = plain[fmt.SKETCHES][()], plain[fmt.SKETCH_CHECKSUMS][()]
        assert sketches.shape == (len(rows), 256) and checksums.shape == (len(rows),)
        assert checksums.dtype == np.uint64 and not rows[fmt.T_STORED].any()
        assert (
            plain[fmt.SKETCHES].attrs[fmt.ATTR_SKETCH_METHOD]
            == focused[fmt.SKETCHES].attrs[fmt.ATTR_SKETCH_METHOD]
        )
        aliased = rows[fmt.T_ALIAS_OF] != b""
        assert aliased.sum() == 9  # 4 layers × (self_attn[0], mlp) + model[last_hidden_state]
        assert np.isnan(sketches[aliased]).all() and not np.isnan(sketches[~aliased]).any()
        # The same run with its data stored has the same sketches: stripping it gives a --summary file.
        np.testing.assert_array_equal(sketches, focused[fmt.SKETCHES][()])
        np.testing.assert_array_equal(checksums, focused[fmt.SKETCH_CHECKSUMS][()])
    with open_capture(runs["summary"]) as cap:
        alias = cap.info("model.layers.0.mlp")
        assert alias.alias_of == "model.layers.0.mlp.down_proj"
        assert cap.sketch("model.layers.0.mlp") is not None  # an alias reads its target's sketch
        assert cap.info("model.layers.0.mlp").stats == cap.info("model.layers.0.mlp.down_proj").stats


@pytest.mark.parametrize("other", ["fp32", "bf16"])
def test_estimates_match_the_exact_comparison_within_the_documented_spread(
    runs: dict[str, Path], tmp_path: Path, other: str
) -> None:
    full = compare(runs["ref"], runs[other])
    summary = compare(
        summary_only(runs["ref"], tmp_path / "a.h5"), summary_only(runs[other], tmp_path / "b.h5")
    )
    ratios = []
    for exact, estimated in zip(full.tensors, summary.tensors, strict=True):
        assert estimated.status == "estimated" and exact.status == "compared"
        assert estimated.exact == exact.exact, exact.name  # checksums: bitwise equality, both ways
        if exact.exact:
            assert (estimated.rel_l2, estimated.cosine, estimated.estimate_rel_std) == (0.0, 1.0, 0.0)
            continue
        assert exact.rel_l2 is not None and estimated.rel_l2 is not None and estimated.cosine is not None
        assert estimated.estimate_rel_std == SPREAD
        ratios.append(estimated.rel_l2 / exact.rel_l2)
        one_minus = 1.0 - (exact.cosine or 0.0)
        assert abs((1.0 - estimated.cosine) - one_minus) <= 12 * SPREAD * one_minus + 1e-12, exact.name
    assert len(ratios) > 20
    assert all(abs(r - 1.0) < 5 * SPREAD for r in ratios), ratios
    assert abs(float(np.mean(ratios)) - 1.0) < 3 * SPREAD / np.sqrt(len(ratios)) + 0.01
    # The rounding level each pair lives at: ~1e-7 in fp32 (eager vs sdpa), ~1e-2 in bf16.
    worst = max(t.rel_l2 or 0.0 for t in full.tensors)
    assert (worst < 1e-5) if other == "fp32" else (1e-3 < worst < 1e-1)
    assert (summary.verdict.status, summary.verdict.layer) == (full.verdict.status, full.verdict.layer)


def test_summary_against_a_full_capture_falls_back_to_the_norm_bound(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """A full capture without sketches (``summary=False``) on one side: only norms, as before."""
    full = _capture(tmp_path / "full.h5", "bfloat16", "eager")
    result = compare(runs["summary"], full)
    assert {t.status for t in result.tensors} == {"stats_only"}
    assert all(t.estimate_rel_std is None and t.cosine is None for t in result.tensors)
