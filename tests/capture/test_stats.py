"""Summary statistics: finite-only conventions, NaN/Inf counts, empty and integer tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from precdiff.capture.stats import STAT_ORDER, tensor_stats


def stats(t: torch.Tensor) -> dict[str, float]:
    return dict(zip(STAT_ORDER, tensor_stats(t)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_finite_tensor_matches_numpy(dtype: torch.dtype) -> None:
    t = (torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 3 + 5).to(dtype)
    ref = t.double().numpy()
    s = stats(t)
    assert (s["min"], s["max"]) == (ref.min(), ref.max())
    np.testing.assert_allclose(
        [s["mean"], s["std"], s["l2"]], [ref.mean(), ref.std(), np.linalg.norm(ref)], rtol=1e-12
    )
    assert s["nan_count"] == s["inf_count"] == 0


def test_non_finite_values_are_counted_and_excluded() -> None:
    t = torch.tensor([1.0, float("nan"), 3.0, float("inf"), float("-inf"), float("nan")])
    s = stats(t)
    assert (s["min"], s["max"], s["mean"], s["l2"]) == (1.0, 3.0, 2.0, math.sqrt(10.0))
    assert s["std"] == 1.0 and s["nan_count"] == 2 and s["inf_count"] == 2


def test_all_non_finite_and_empty() -> None:
    s = stats(torch.tensor([float("nan"), float("inf")]))
    assert all(math.isnan(s[k]) for k in ("min", "max", "mean", "std", "l2"))
    assert (s["nan_count"], s["inf_count"]) == (1, 1)
    e = stats(torch.zeros(0))
    assert all(math.isnan(e[k]) for k in ("min", "max", "mean", "std", "l2")) and e["nan_count"] == 0


def test_integer_and_bool_tensors() -> None:
    s = stats(torch.tensor([[1, 2], [3, 4]], dtype=torch.int64))
    assert (s["min"], s["max"], s["mean"]) == (1.0, 4.0, 2.5)
    b = stats(torch.tensor([True, False, True]))
    assert (b["min"], b["max"], b["l2"]) == (0.0, 1.0, math.sqrt(2.0))


def test_finish_partials_matches_direct_statistics() -> None:
    """The host side of the CUDA kernel: per-program partials (shifted sums), reduced across programs
    as the device does (min, max, sums), finished in float64."""
    from precdiff.capture.stats_partials import finish_partials

    values = np.random.default_rng(0).normal(1000.0, 0.01, size=3000)  # |mean| >> std: cancellation-prone
    values[5], values[17] = np.nan, np.inf
    shift = values[0]
    rows = []
    for chunk in np.array_split(values, 7):
        finite = chunk[np.isfinite(chunk)]
        rows.append(
            [
                finite.min(),
                finite.max(),
                finite.size,
                (finite - shift).sum(),
                ((finite - shift) ** 2).sum(),
                np.isnan(chunk).sum(),
                np.isinf(chunk).sum(),
                shift,
            ]
        )
    parts = np.asarray(rows)
    reduced = np.concatenate([[parts[:, 0].min(), parts[:, 1].max()], parts[:, 2:7].sum(axis=0), [shift]])
    empty = [np.inf, -np.inf, 0, 0, 0, 2, 1, 0]  # a tensor of NaN and Inf only
    result = finish_partials(np.stack([reduced, empty]))
    finite = values[np.isfinite(values)]
    np.testing.assert_allclose(
        result[0, :5],
        [finite.min(), finite.max(), finite.mean(), finite.std(), np.linalg.norm(finite)],
        rtol=1e-9,
    )
    assert list(result[0, 5:]) == [1.0, 1.0]
    assert np.isnan(result[1, :5]).all() and list(result[1, 5:]) == [2.0, 1.0]


def test_std_does_not_cancel_when_the_mean_dominates() -> None:
    values = torch.from_numpy(np.random.default_rng(1).normal(1e4, 1e-3, size=20000).astype(np.float32))
    ref = values.double().numpy()
    s = stats(values)
    np.testing.assert_allclose(
        [s["mean"], s["std"], s["l2"]], [ref.mean(), ref.std(), np.linalg.norm(ref)], rtol=1e-9
    )


def test_summary_batch_returns_host_summaries_early_and_in_order() -> None:
    """On the CPU every queued summary is on the host at once: resolve_ready returns them all, in
    add order, equal to one resolve at the end; the sketch and checksum are those of capture/sketch.py."""
    from precdiff.capture.sketch import sketch_and_checksum
    from precdiff.capture.stats import SummaryBatch

    generator = torch.Generator().manual_seed(3)
    tensors = [torch.randn(50 + 7 * i, generator=generator).to(torch.bfloat16) for i in range(20)]
    tensors.insert(4, torch.arange(10))
    early = SummaryBatch()
    got = []
    for t in tensors[:10]:
        early.add(t)
    got += early.resolve_ready()
    assert len(got) == 10 and early.resolve_ready() == []
    for t in tensors[10:]:
        early.add(t)
    got += early.resolve()
    at_end = SummaryBatch()
    for t in tensors:
        at_end.add(t)
    expected = at_end.resolve()
    assert len(got) == len(expected) == len(tensors)
    for t, mine, theirs in zip(tensors, got, expected, strict=True):
        assert mine.stats == theirs.stats == tensor_stats(t)
        sketch, checksum = sketch_and_checksum(t)
        assert mine.checksum == theirs.checksum == int(checksum) % (1 << 64)
        np.testing.assert_array_equal(mine.sketch, sketch.numpy())
