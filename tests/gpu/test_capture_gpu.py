"""GPU checks of the capture stage (run with the device tool; skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("numel", [1, 255, 1000, 1280, 32768, 32769, 5_000_003, 20_000_001])
@pytest.mark.parametrize("sketches", [True, False])
@pytest.mark.parametrize("special", ["nonfinite", "finite", "first_nan", "huge"])
def test_fused_summary_matches_the_torch_definitions(
    dtype: torch.dtype, numel: int, sketches: bool, special: str
) -> None:
    """Statistics against the torch reference (min, max, counts exact), the checksum bit for bit and
    the sketch to float64 rounding against capture/sketch.py's torch path on the CPU; statistics-only
    summaries (another load pattern) give the same statistics. 1,280 elements have no partial row;
    20,000,001 outgrow the first row tables. The kernel's two paths: all finite (every program on
    the fast path), a few NaN / ±Inf (their programs on the exact one), a NaN first element (it
    fills the rows outside the tensor on the fast path), a value whose float32 square overflows."""
    from precdiff.capture.sketch import sketch_and_checksum
    from precdiff.capture.stats import SummaryBatch, tensor_stats_torch

    if special == "huge" and dtype == torch.float16:
        pytest.skip("float16 holds no value whose float32 square overflows")
    x = (torch.randn(numel, device="cuda") * 4 + 1).to(dtype)
    if special == "nonfinite" and numel > 10:
        x[3] = float("nan")
        x[7] = float("inf")
        x[9] = float("-inf")
    elif special == "first_nan":
        x[0] = float("nan")
    elif special == "huge":
        x[numel // 2] = 1e30
    batch = SummaryBatch(sketches=sketches)
    batch.add(x)
    (summary,) = batch.resolve()
    ours = np.asarray(summary.stats)
    reference = tensor_stats_torch(x).cpu().numpy()
    np.testing.assert_array_equal(ours[[0, 1, 5, 6]], reference[[0, 1, 5, 6]])
    np.testing.assert_allclose(ours[[2, 3, 4]], reference[[2, 3, 4]], rtol=2e-5, atol=1e-6)
    if numel == 1 and special != "first_nan":
        assert ours[3] == 0.0  # the shifted sums make a single element's std exactly 0
    if not sketches:
        assert summary.sketch is None and summary.checksum is None
        return
    cpu_sketch, cpu_checksum = sketch_and_checksum(x.cpu())
    assert summary.checksum == int(cpu_checksum) % (1 << 64)
    assert summary.sketch is not None
    np.testing.assert_allclose(summary.sketch, cpu_sketch.numpy(), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("sketches", [True, False])
def test_fused_summary_of_an_unaligned_view_matches_the_torch_definitions(sketches: bool) -> None:
    """A contiguous view starting one element in (its data pointer not 16-byte aligned: the kernel
    compiled without vector loads) summarises as its own copy does."""
    from precdiff.capture.stats import SummaryBatch

    base = torch.randn(3 * 256 + 7, device="cuda").to(torch.bfloat16)
    view, copy = base[1:], base[1:].clone()
    assert view.data_ptr() % 16 != 0
    batch = SummaryBatch(sketches=sketches)
    batch.add(view)
    batch.add(copy)
    ours, theirs = batch.resolve()
    # min, max and the counts exactly; the float32 lane sums may be split between threads otherwise
    np.testing.assert_array_equal(
        np.asarray(ours.stats)[[0, 1, 5, 6]], np.asarray(theirs.stats)[[0, 1, 5, 6]]
    )
    np.testing.assert_allclose(ours.stats[2:5], theirs.stats[2:5], rtol=2e-5, atol=1e-6)
    assert ours.checksum == theirs.checksum
    if sketches:
        assert ours.sketch is not None and theirs.sketch is not None
        np.testing.assert_allclose(ours.sketch, theirs.sketch, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]
)
@pytest.mark.parametrize("shape", [(), (1,), (2049,), (3, 1000, 7)])
def test_fused_summary_of_integer_tensors_matches_the_torch_definitions(
    dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    """Integer and bool tensors (positions, masks, token ids at op level) take the kernel too, with
    float64 accumulators: statistics, checksum (by value) and sketch as the torch definitions."""
    from precdiff.capture.sketch import sketch_and_checksum
    from precdiff.capture.stats import SummaryBatch, tensor_stats_torch

    high = {torch.int64: 1 << 40, torch.int32: 1 << 30, torch.int16: 1 << 14, torch.int8: 100}.get(dtype, 2)
    generator = torch.Generator(device="cuda").manual_seed(5)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, device="cuda", generator=generator).to(dtype)
    else:
        x = torch.randint(
            -high if dtype != torch.bool else 0, high, shape, device="cuda", generator=generator
        )
        x = x.to(dtype)
    batch = SummaryBatch()
    batch.add(x)
    (summary,) = batch.resolve()
    ours, reference = np.asarray(summary.stats), tensor_stats_torch(x).cpu().numpy()
    np.testing.assert_array_equal(ours[[0, 1, 5, 6]], reference[[0, 1, 5, 6]])
    np.testing.assert_allclose(ours[[2, 3, 4]], reference[[2, 3, 4]], rtol=1e-12, atol=1e-9)
    cpu_sketch, cpu_checksum = sketch_and_checksum(x.cpu())
    assert summary.checksum == int(cpu_checksum) % (1 << 64)
    assert summary.sketch is not None
    np.testing.assert_allclose(summary.sketch, cpu_sketch.numpy(), rtol=1e-12, atol=1e-9)


def test_fused_summaries_of_many_tensors_keep_their_order() -> None:
    """More tensors than an arena has slots, mixed dtypes, sizes, a misaligned and a non-contiguous
    view and an integer tensor (torch path): each equals its summary computed alone."""
    from precdiff.capture.stats import SummaryBatch
    from precdiff.capture.summary_triton import SLOTS

    generator = torch.Generator(device="cuda").manual_seed(0)
    tensors: list[torch.Tensor] = []
    for i in range(SLOTS * 2 + 7):
        dtype = (torch.float32, torch.bfloat16, torch.float16)[i % 3]
        tensors.append((torch.randn(17 + 131 * i, device="cuda", generator=generator) * (i + 1)).to(dtype))
    base = torch.randn(4097, device="cuda", generator=generator).to(torch.bfloat16)
    tensors += [base[1:], base[:4096].view(64, 64).t(), torch.arange(1000, device="cuda")]
    batch = SummaryBatch()
    for t in tensors:
        batch.add(t)
    together = batch.resolve()
    for t, summary in zip(tensors, together, strict=True):
        alone = SummaryBatch(slots=1)
        alone.add(t)
        (single,) = alone.resolve()
        assert summary.checksum == single.checksum
        np.testing.assert_array_equal(summary.stats, single.stats)
        np.testing.assert_array_equal(summary.sketch, single.sketch)


def test_the_arena_reduction_equals_its_torch_definition() -> None:
    """The reduction kernel, writing into pinned host memory, against the same reduction in torch ops:
    sketch and statistics sums to float64 rounding, minima and maxima (±inf partial rows included)
    and the shift exactly, the wrapped int64 checksum sums bit for bit."""
    from precdiff.capture.sketch import WIDTH
    from precdiff.capture.summary_triton import LAUNCH, ROW, launch_reduce

    generator = torch.Generator(device="cuda").manual_seed(0)
    slots, grid = 5, LAUNCH[True][0]
    parts = torch.randn((slots, grid, ROW), dtype=torch.float64, device="cuda", generator=generator) * 1e3
    parts[:, :, WIDTH] = parts[:, :, WIDTH].clamp(max=0.0)
    parts[:, 3:9, WIDTH] = float("inf")  # programs that saw no element
    parts[:, 5:7, WIDTH + 1] = float("-inf")
    checks = torch.randint(-(2**62), 2**62, (slots, grid), device="cuda", generator=generator) * 3
    out = torch.full((slots + 2, ROW + 1), -7.0, dtype=torch.float64, pin_memory=True)
    launch_reduce(parts, checks, out, slots - 1)
    torch.cuda.synchronize()
    got = out.numpy()
    stats = parts[:, :, WIDTH:]
    want = (
        torch.cat(
            [
                parts[:, :, :WIDTH].sum(dim=1),
                stats[:, :, 0].amin(dim=1, keepdim=True),
                stats[:, :, 1].amax(dim=1, keepdim=True),
                stats[:, :, 2:7].sum(dim=1),
                stats[:, 0, 7:8],
                checks.sum(dim=1).view(torch.float64)[:, None],  # int64 sums wrap, as the kernel's
            ],
            dim=1,
        )
        .cpu()
        .numpy()
    )
    np.testing.assert_allclose(got[: slots - 1, :-1], want[: slots - 1, :-1], rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got[: slots - 1, WIDTH : WIDTH + 2], want[: slots - 1, WIDTH : WIDTH + 2])
    np.testing.assert_array_equal(got[: slots - 1, -1:].view(np.int64), want[: slots - 1, -1:].view(np.int64))
    assert (got[slots - 1 :] == -7.0).all()  # only the slots asked for are written


def test_deferred_summaries_sharing_launches_equal_those_launched_alone() -> None:
    """defer=True (op level): small tensors of one dtype share a launch (several per dtype, dtypes
    interleaved, across arena reductions), as do mid-size ones until the bytes waiting reach
    SHARED_WAITING; large and misaligned ones launch alone; every summary equals the tensor's own,
    and a tensor changed in place after launch_waiting keeps the summary of what it was."""
    from precdiff.capture.stats import SummaryBatch
    from precdiff.capture.summary_triton import SHARED, SHARED_BYTES, SHARED_WAITING, SLOTS

    generator = torch.Generator(device="cuda").manual_seed(2)
    tensors: list[torch.Tensor] = []
    for i in range(SLOTS + 3 * SHARED + 5):
        dtype = (torch.bfloat16, torch.float32, torch.bfloat16, torch.int64)[i % 4]
        values = torch.randn(1 + 97 * i, device="cuda", generator=generator) * (i + 1)
        tensors.append(values.to(dtype))
    big = torch.randn(SHARED_BYTES // 2 + 1000, device="cuda", generator=generator).to(torch.bfloat16)
    base = torch.randn(4097, device="cuda", generator=generator).to(torch.bfloat16)
    mid = [
        torch.randn(SHARED_WAITING // 6, device="cuda", generator=generator).to(torch.bfloat16)
        for _ in range(4)
    ]
    tensors[10:10] = [big, base[1:], *mid]  # the third mid-size one fills SHARED_WAITING: launched
    alone = []
    for t in tensors:
        single = SummaryBatch(slots=1)
        single.add(t)
        alone += single.resolve()
    batch = SummaryBatch(defer=True)
    for t in tensors:
        batch.add(t)
        assert all(held < SHARED_WAITING for held in batch._fused[t.device]._waiting_bytes.values())
    batch.launch_waiting()
    changed = tensors[-1].clone()
    expected_last = SummaryBatch(slots=1)
    expected_last.add(changed)
    tensors[-1].mul_(3)  # after launch_waiting: the summary is of the value added
    together = batch.resolve()
    assert len(together) == len(tensors)
    for mine, theirs in zip(together, alone, strict=True):
        assert mine.checksum == theirs.checksum
        np.testing.assert_array_equal(
            np.asarray(mine.stats)[[0, 1, 5, 6]], np.asarray(theirs.stats)[[0, 1, 5, 6]]
        )
        np.testing.assert_allclose(mine.stats[2:5], theirs.stats[2:5], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(mine.sketch, theirs.sketch, rtol=1e-12, atol=1e-9)
    assert together[-1].checksum == expected_last.resolve()[0].checksum


def test_shared_launches_over_several_laps_of_the_table_ring() -> None:
    """More shared launches than the launch tables' ring holds, queued without waiting (the device
    behind): each table is refilled only after its copy, so every summary is the tensor's own."""
    from precdiff.capture.fused_summaries import _LaunchTables
    from precdiff.capture.stats import SummaryBatch
    from precdiff.capture.summary_triton import SHARED

    generator = torch.Generator(device="cuda").manual_seed(5)
    count = SHARED * (2 * _LaunchTables.RING + 3) + 7  # two laps and a part, a last partial table
    tensors = [
        torch.randn(200 + i % 97, device="cuda", generator=generator).to(torch.bfloat16) for i in range(count)
    ]
    torch.cuda._sleep(50_000_000)  # the device busy meanwhile: the host fills tables far ahead of it
    batch = SummaryBatch(defer=True)
    for t in tensors:
        batch.add(t)
    batch.launch_waiting()
    together = batch.take_all()
    assert together.size == count
    for index in range(0, count, 37):
        single = SummaryBatch(slots=1)
        single.add(tensors[index])
        (alone,) = single.resolve()
        assert together.checksums is not None and int(together.checksums[index]) == alone.checksum
        np.testing.assert_array_equal(
            together.stats[index][[0, 1, 5, 6]], np.asarray(alone.stats)[[0, 1, 5, 6]]
        )


def test_summaries_resolved_while_queueing_equal_those_resolved_at_the_end() -> None:
    """resolve_ready returns only the oldest summaries already on the host, in order (a CUDA integer
    tensor, torch path, holds back everything after it until its copy lands), and together with the
    final resolve gives exactly what one resolve at the end gives."""
    from precdiff.capture.stats import SummaryBatch
    from precdiff.capture.summary_triton import SLOTS

    generator = torch.Generator(device="cuda").manual_seed(1)
    tensors = [
        torch.randn(1000 + 37 * i, device="cuda", generator=generator).to(torch.bfloat16)
        for i in range(3 * SLOTS)
    ]
    tensors.insert(SLOTS + 5, torch.arange(77, device="cuda"))
    at_end = SummaryBatch()
    for t in tensors:
        at_end.add(t)
    expected = at_end.resolve()
    batch = SummaryBatch()
    got = []
    for i, t in enumerate(tensors):
        batch.add(t)
        if i % 16 == 15:
            torch.cuda.synchronize()  # whatever was reduced is on the host now
            ready = batch.resolve_ready()
            assert len(got) + len(ready) <= i + 1
            got += ready
    assert 0 < len(got) < len(tensors)  # some came early, the unreduced tail did not
    got += batch.resolve()
    assert batch.resolve() == [] and len(got) == len(tensors)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.checksum == theirs.checksum
        np.testing.assert_array_equal(mine.stats, theirs.stats)
        np.testing.assert_array_equal(mine.sketch, theirs.sketch)


def test_capture_on_cuda_bf16_round_trips(tmp_path: Path) -> None:
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.store import open_capture

    result = capture(
        "tiny:qwen3_moe",
        tmp_path / "g.h5",
        CaptureInput(prompt="Hello GPU"),
        CaptureOptions(device="cuda", dtype="bfloat16", deterministic=True),
    )
    with open_capture(result.path) as cap:
        assert cap.complete and cap.manifest.device["type"] == "cuda"
        info = cap.info("model.layers.0.self_attn.q_proj")
        values = cap.tensor(info.name).astype(np.float64)
        np.testing.assert_allclose(info.stats["l2"], np.linalg.norm(values), rtol=1e-5)
