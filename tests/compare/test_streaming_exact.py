"""The fast paths of the streaming compare give the same float64 bits as the plain algorithms.

The per-token pass skips its finiteness masks when its sums come out finite, and writes token
positions with ``np.repeat``; the reader decodes BF16 in one pass into blocks read with
``read_direct``. Each is checked bit for bit against the straightforward computation it replaced, on
data with NaN, ±Inf, -0.0 and squares that overflow, and on block cuts that split tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from stored import write_stored

from precdiff.capture.stats import stats_to_dict, tensor_stats_torch
from precdiff.compare import stream
from precdiff.compare.metrics import CACHE_ELEMENTS, PairSums, Tolerance, accumulate, merge
from precdiff.compare.per_token import TokenSums, square_pairs
from precdiff.compare.stream import measure_pair
from precdiff.store import CaptureWriter, open_capture, reader
from precdiff.store.dtypes import from_storage, to_float64, to_storage
from precdiff.store.manifest import Manifest


def _plain_token_sums(
    a: np.ndarray, b: np.ndarray, axis: int, blocks: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token sums with index arithmetic, finiteness masks and np.bincount on every slice (the plain
    algorithm), for blocks of the given lengths cut into slices as compare cuts them."""
    num_tokens, inner = a.shape[axis], int(np.prod(a.shape[axis + 1 :]))
    sums = np.zeros(num_tokens), np.zeros(num_tokens), np.zeros(num_tokens)
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    for first, stop in _slices(blocks):
        a_part, b_part = flat_a[first:stop], flat_b[first:stop]
        tokens = (np.arange(first, stop, dtype=np.int64) // inner) % num_tokens
        finite = np.isfinite(a_part) & np.isfinite(b_part)
        if not finite.all():
            equal = ~finite & ((np.isnan(a_part) & np.isnan(b_part)) | (a_part == b_part))
            sums[2][:] += np.bincount(tokens[~finite & ~equal], minlength=num_tokens)
            a_part, b_part, tokens = a_part[finite], b_part[finite], tokens[finite]
        d = b_part - a_part
        sums[0][:] += np.bincount(tokens, weights=a_part * a_part, minlength=num_tokens)
        sums[1][:] += np.bincount(tokens, weights=d * d, minlength=num_tokens)
    return sums


def _slices(blocks: list[int]) -> list[tuple[int, int]]:
    """Compare's slices of blocks of these lengths: every CACHE_ELEMENTS from the start of each block."""
    out, first = [], 0
    for size in blocks:
        out += [
            (s, min(s + CACHE_ELEMENTS, first + size)) for s in range(first, first + size, CACHE_ELEMENTS)
        ]
        first += size
    return out


def _pair(shape: tuple[int, ...], special: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    b = a + 1e-3 * rng.standard_normal(shape)
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    picks = rng.choice(a.size, size=min(40, a.size), replace=False)
    if special == "nonfinite":
        flat_a[picks[:10]] = np.nan
        flat_b[picks[5:15]] = np.nan  # 5 shared NaNs, 10 mismatches
        flat_a[picks[20:25]] = flat_b[picks[20:25]] = np.inf  # equal infinities
        flat_b[picks[25:30]] = -np.inf
        flat_a[picks[30:]] = -0.0
    elif special == "overflow":
        flat_a[picks[:3]] = 1e200  # finite values whose squares are inf
    return a, b


@pytest.mark.parametrize("given_squares", [True, False])
@pytest.mark.parametrize("special", ["finite", "nonfinite", "overflow"])
@pytest.mark.parametrize(
    ("shape", "axis", "block"),
    [
        ((1, 64, 3000), 1, 1 << 17),  # several tokens per cache slice, slices cut tokens (sparse runs)
        ((1, 8, 100_000), 1, 250_000),  # a token spans slices and blocks (sparse runs)
        ((40, 64, 30), 1, 1 << 17),  # long slices in which positions wrap around (bincount)
        ((3, 50, 7), 1, 1000),  # leading axis > 1: positions wrap around
        ((2, 5, 3), 2, 4),  # token axis last: one element per run
    ],
)
def test_token_sums_equal_the_plain_algorithm_bit_for_bit(
    shape: tuple[int, ...], axis: int, block: int, special: str, given_squares: bool
) -> None:
    a, b = _pair(shape, special, seed=len(shape) * 7 + axis)
    fast = TokenSums(shape, axis, shape[axis])
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):  # the plain algorithm warns on the overflow case
        blocks = [min(block, a.size - start) for start in range(0, a.size, block)]
        plain = _plain_token_sums(a, b, axis, blocks)
        for first, stop in _slices(blocks):
            a_part, b_part = flat_a[first:stop], flat_b[first:stop]
            squares = (
                square_pairs(a_part, b_part - a_part, np.empty(2 * a_part.size)) if given_squares else None
            )
            fast.add(fast.measure(first, a_part, b_part, squares))
    for name, expected in zip(("sum_aa", "sum_dd", "mismatch"), plain):
        assert getattr(fast, name).tobytes() == expected.tobytes(), name
    if special == "nonfinite":
        assert fast.mismatch.sum() == 15  # 10 one-sided NaNs, 5 opposite infinities


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_streamed_blocks_decode_exactly(tmp_path: Path, dtype: torch.dtype) -> None:
    tensor = torch.randn(3, 70, 33).to(dtype)
    tensor.view(-1)[:4] = torch.tensor([float("nan"), float("inf"), -0.0, float("-inf")]).to(dtype)
    writer = CaptureWriter(tmp_path / "run.h5")
    writer.write_manifest(Manifest.from_dict({"model": {"weights_sha256": "x"}}))
    writer.write_input([1, 2], None)
    writer.write_tensor(
        "t",
        module="t",
        role="output",
        dtype=dtype,
        shape=tuple(tensor.shape),
        stats=stats_to_dict(tensor_stats_torch(tensor).tolist()),
        data=to_storage(tensor),
    )
    writer.finish()
    code = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.float64: "F64"}[dtype]
    expected = from_storage(to_storage(tensor), code).astype(np.float64).reshape(-1)
    assert to_float64(to_storage(tensor), code).tobytes() == expected.tobytes()
    with open_capture(tmp_path / "run.h5") as cap:
        for block_elements in (7, 33, 1000, 5000, 1 << 20):  # inside a row, whole rows, partial last block
            blocks = list(cap.iter_blocks("t", block_elements=block_elements))
            assert np.concatenate(blocks).tobytes() == expected.tobytes()


def _write(path: Path, tensors: dict[str, torch.Tensor], compression: str | None = None) -> Path:
    writer = CaptureWriter(path, compression=compression)
    writer.write_manifest(Manifest.from_dict({"model": {"weights_sha256": "x"}}))
    writer.write_input([1, 2], None)
    for name, tensor in tensors.items():
        write_stored(writer, name, tensor)
    writer.finish()
    return path


@pytest.mark.parametrize(
    ("special", "dtype"),
    [
        ("finite", torch.bfloat16),
        ("finite", torch.float32),
        ("finite", torch.float64),
        ("nonfinite", torch.bfloat16),
        ("nonfinite", torch.float32),
        ("overflow", torch.float64),  # squares overflow: the masked paths
        ("overflow", torch.float32),
        ("zeros", torch.bfloat16),  # both all zero
        ("a_zero", torch.float32),  # reference all zero
        ("empty", torch.bfloat16),
    ],
)
@pytest.mark.parametrize(
    ("shape", "block"),
    [
        ((1, 48, 3000), 1 << 17),  # slices of 65,536 values cut tokens; per-token sums by sparse runs
        ((1, 6, 40_000), 100_000),  # blocks split rows; a token spans slices and blocks
        ((2, 24, 50), 1000),  # small slices (np.bincount); one-slice blocks
    ],
)
def test_fused_pass_equals_the_separate_metric_functions_bit_for_bit(
    tmp_path: Path, shape: tuple[int, ...], block: int, special: str, dtype: torch.dtype
) -> None:
    if special == "empty":
        shape = (shape[0], 0, shape[2])
    a, b = _pair(shape, special if special in ("nonfinite", "overflow") else "finite", seed=3)
    if special == "overflow" and dtype != torch.float64:
        a.reshape(-1)[:3] = 3e38  # the largest fp32 values (only fp64 values have squares that overflow)
    if special in ("zeros", "a_zero"):
        a[...] = 0.0
    if special == "zeros":
        b[...] = 0.0
    ta, tb = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
    path_a, path_b = _write(tmp_path / "a.h5", {"t": ta}), _write(tmp_path / "b.h5", {"t": tb})
    tolerance = Tolerance(2.0**-7, 1e-5)
    tokens = TokenSums(shape, 1, shape[1]) if shape[1] else None
    # Both the plain algorithms and the fused pass warn where squares overflow (the "overflow" rows).
    with (
        open_capture(path_a) as cap_a,
        open_capture(path_b) as cap_b,
        np.errstate(over="ignore", invalid="ignore"),
    ):
        expected, blocks = PairSums(), []
        for block_a, block_b in zip(cap_a.iter_blocks("t", block), cap_b.iter_blocks("t", block)):
            expected = merge(expected, accumulate(block_a, block_b, tolerance))
            blocks.append(block_a.size)
        fused = measure_pair(cap_a, cap_b, cap_a.info("t"), cap_b.info("t"), tolerance, tokens, block)
        plain = _plain_token_sums(ta.to(torch.float64).numpy(), tb.to(torch.float64).numpy(), 1, blocks)
    assert fused == expected  # every count and every float64 sum, exactly
    assert fused.n == int(np.prod(shape))
    if tokens is not None:
        for name, want in zip(("sum_aa", "sum_dd", "mismatch"), plain):
            assert getattr(tokens, name).tobytes() == want.tobytes(), name


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((1, 700, 900), torch.bfloat16),  # chunked: ~582 rows per chunk, blocks cut inside chunks
        ((3, 40, 5000), torch.float32),  # chunked along the second axis, leading axis > 1
        ((5, 7), torch.float16),  # one chunk: contiguous storage
        ((), torch.float32),  # a scalar
    ],
)
def test_raw_blocks_read_straight_from_the_file_equal_hdf5s(
    tmp_path: Path,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    compression: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tensor = torch.randn(shape).to(dtype)
    path = _write(tmp_path / "run.h5", {"t": tensor}, compression=compression)
    blocks: dict[bool, list[list[bytes]]] = {}
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(reader, "file_runs", lambda dataset: None)
        with open_capture(path) as cap:
            blocks[direct] = [
                [raw.tobytes() for raw in cap.iter_raw_blocks("t", block)]
                for block in (7, 1000, 250_000, 1 << 20)
            ]
            if direct and shape:
                dataset = cap._dataset(cap.info("t"))
                runs = cap._file_runs(cap.info("t").key, dataset)
                assert (runs is None) == (dataset.compression is not None)  # direct whenever it can be
    assert blocks[True] == blocks[False]
    for cut in blocks[True]:
        assert b"".join(cut) == to_storage(tensor).tobytes()


@contextmanager
def _no_serial_dots() -> Iterator[None]:
    yield None


@pytest.mark.parametrize(
    ("dtype", "serial"), [(torch.bfloat16, True), (torch.float32, True), (torch.float32, False)]
)
def test_the_sums_do_not_depend_on_the_number_of_threads(
    tmp_path: Path, dtype: torch.dtype, serial: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads measure tasks of several slices at once; the merge in storage order keeps the bits. Also
    where serial dots are not available (``np.dot`` with BLAS's own threads, as before)."""
    if not serial:
        monkeypatch.setattr(stream, "serial_dots", _no_serial_dots)
    monkeypatch.setattr(stream, "SLICES_PER_TASK", 2)
    shape, block = (1, 24, 20_000), 1 << 18  # 2 blocks (the last one short), 2 tasks per block
    a, b = _pair(shape, "nonfinite", seed=5)  # a few slices take the masked paths
    ta, tb = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
    path_a, path_b = _write(tmp_path / "a.h5", {"t": ta}), _write(tmp_path / "b.h5", {"t": tb})
    tolerance = Tolerance(2.0**-7, 1e-5)
    results = []
    with open_capture(path_a) as cap_a, open_capture(path_b) as cap_b:
        expected = PairSums()
        for block_a, block_b in zip(cap_a.iter_blocks("t", block), cap_b.iter_blocks("t", block)):
            expected = merge(expected, accumulate(block_a, block_b, tolerance))
        for workers in (1, 3, None):
            tokens = TokenSums(shape, 1, shape[1])
            sums = measure_pair(
                cap_a, cap_b, cap_a.info("t"), cap_b.info("t"), tolerance, tokens, block, workers
            )
            results.append(
                (sums, tokens.sum_aa.tobytes(), tokens.sum_dd.tobytes(), tokens.mismatch.tobytes())
            )
    assert results[0][0] == expected
    assert all(result == results[0] for result in results)
