"""The fast paths of the streaming compare give the same float64 bits as the plain algorithms.

The per-token pass skips its finiteness masks when its sums come out finite, and writes token
positions with ``np.repeat``; the reader decodes BF16 in one pass into blocks read with
``read_direct``. Each is checked bit for bit against the straightforward computation it replaced, on
data with NaN, ±Inf, -0.0 and squares that overflow, and on block cuts that split tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from precdiff.capture.stats import stats_to_dict, tensor_stats_torch
from precdiff.compare.metrics import CACHE_ELEMENTS
from precdiff.compare.per_token import TokenSums
from precdiff.store import CaptureWriter, open_capture
from precdiff.store.dtypes import from_storage, to_float64, to_storage
from precdiff.store.manifest import Manifest


class _PlainTokenSums(TokenSums):
    """Per-token sums with index arithmetic and finiteness masks on every slice (the plain algorithm)."""

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        for start in range(0, a.size, CACHE_ELEMENTS):
            a_part, b_part = a[start : start + CACHE_ELEMENTS], b[start : start + CACHE_ELEMENTS]
            first = self.offset + start
            tokens = (np.arange(first, first + a_part.size, dtype=np.int64) // self.inner) % self.num_tokens
            finite = np.isfinite(a_part) & np.isfinite(b_part)
            if not finite.all():
                equal = ~finite & ((np.isnan(a_part) & np.isnan(b_part)) | (a_part == b_part))
                self.mismatch += np.bincount(tokens[~finite & ~equal], minlength=self.num_tokens)
                a_part, b_part, tokens = a_part[finite], b_part[finite], tokens[finite]
            d = b_part - a_part
            self.sum_aa += np.bincount(tokens, weights=a_part * a_part, minlength=self.num_tokens)
            self.sum_dd += np.bincount(tokens, weights=d * d, minlength=self.num_tokens)
        self.offset += a.size


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


@pytest.mark.parametrize("special", ["finite", "nonfinite", "overflow"])
@pytest.mark.parametrize(
    ("shape", "axis", "block"),
    [
        ((1, 64, 3000), 1, 1 << 17),  # several tokens per cache slice, slices cut tokens
        ((1, 8, 100_000), 1, 250_000),  # a token spans slices and blocks
        ((3, 50, 7), 1, 1000),  # leading axis > 1: positions wrap around
        ((2, 5, 3), 2, 4),  # token axis last: one element per run
    ],
)
def test_token_sums_equal_the_plain_algorithm_bit_for_bit(
    shape: tuple[int, ...], axis: int, block: int, special: str
) -> None:
    a, b = _pair(shape, special, seed=len(shape) * 7 + axis)
    fast, plain = TokenSums(shape, axis, shape[axis]), _PlainTokenSums(shape, axis, shape[axis])
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):  # the plain algorithm warns on the overflow case
        for sums in (fast, plain):
            for start in range(0, a.size, block):
                sums.add(flat_a[start : start + block], flat_b[start : start + block])
    for name in ("sum_aa", "sum_dd", "mismatch"):
        assert getattr(fast, name).tobytes() == getattr(plain, name).tobytes(), name
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
