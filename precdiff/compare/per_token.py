"""Per-token error of token-aligned tensors, and the tokens with massive activations.

Trained LLMs put a huge norm on a few tokens (the first token, a delimiter: the attention-sink or
*massive activation* tokens) from some layer on; there the residual stream of one token can be
100–1000× the norm of the others. A whole-tensor rel-L2 ``‖b−a‖/‖a‖`` is then the error of that one
token, and an error on every other token vanishes in it. So for every tensor with a token axis the
streaming float64 pass of ``compare`` also accumulates Σa² and Σ(b−a)² *per token position*
(:class:`TokenSums`, memory ``O(tokens)`` whatever the tensor size), giving:

- ``token_rel_l2``: the rel-L2 of each token position (NaN where a NaN/Inf pattern differs);
- ``token_norms``: the reference's L2 norm of each token position;
- ``massive``: positions whose norm is more than :data:`MASSIVE_RATIO` times the median token norm;
- ``rel_l2_robust``: what localization uses — ``max(whole-tensor rel-L2, rel-L2 over the tokens that
  are not massive)`` (see :mod:`precdiff.compare.localize`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from precdiff.compare.results import LayerSummary, MassiveToken, TensorComparison

# A token is "massive" when its reference norm exceeds this multiple of the median token norm. Ordinary
# tokens' residual norms vary within ~2–3× of each other; attention-sink tokens of trained models sit at
# 20–1000× (SmolLM2-135M: token 0 at ×175 from layer 11 on, reports/2026-12-01_smollm2_real_model).
MASSIVE_RATIO = 10.0


class _HasShape(Protocol):
    @property
    def shape(self) -> tuple[int, ...]: ...


def token_axis_of(info: _HasShape, num_tokens: int) -> int | None:
    """The token axis of a captured tensor, or None.

    Prefers an axis recorded at capture (``info.token_axis``, where the format records one); else the
    first axis whose length is the prompt's token count (a guess that fails only when another axis has
    the same length, which the recorded axis resolves).
    """
    recorded = getattr(info, "token_axis", None)
    if recorded is not None:
        return int(recorded) if 0 <= int(recorded) < len(info.shape) else None
    shape = tuple(info.shape)
    return shape.index(num_tokens) if num_tokens > 1 and num_tokens in shape else None


@dataclass(frozen=True)
class TokenErrors:
    """Per-token metrics of one tensor pair."""

    rel_l2: tuple[float, ...]  # per token position
    norms: tuple[float, ...]  # reference L2 norm per token position
    massive: tuple[int, ...]  # positions with norm > MASSIVE_RATIO × median norm
    rel_l2_robust: float  # max(whole-tensor rel-L2, rel-L2 without the massive tokens)


@dataclass(frozen=True)
class TokenPart:
    """One slice's per-token sums, added to the running sums at ``positions`` (in slice order)."""

    positions: np.ndarray | slice
    sum_aa: np.ndarray
    sum_dd: np.ndarray
    mismatch: np.ndarray | None = None


# Slices at least this long sum their token runs with a sparse matrix-vector product (below); shorter
# ones with np.bincount, which is quicker to call and keeps scipy.sparse (~0.25 s to import) out of
# small comparisons.
SPARSE_MIN_ELEMENTS = 1 << 14


class TokenSums:
    """Per-token Σa², Σ(b−a)² and NaN/Inf mismatches of flat float64 slices in storage order.

    :meth:`measure` computes one slice's contribution without touching the running sums; :meth:`add`
    adds contributions, which must come in storage order: a token's sum is the float64 sum of its
    slices' sums in that order.
    """

    def __init__(self, shape: tuple[int, ...], axis: int, num_tokens: int) -> None:
        self.num_tokens = num_tokens
        self.inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))  # elements per step of the token axis
        self.sum_aa = np.zeros(num_tokens)
        self.sum_dd = np.zeros(num_tokens)
        self.mismatch = np.zeros(num_tokens)
        self._run_sums: dict[tuple[int, int], Any] = {}  # (first % inner, size) -> sparse matrix

    def measure(
        self, first: int, a: np.ndarray, b: np.ndarray, squares: np.ndarray | None = None
    ) -> TokenPart:
        """The sums of the slice ``a``, ``b`` that starts at flat element ``first``.

        ``squares``: ``[a² | (b−a)²]`` (``2 * a.size`` values) when the caller has computed them.
        """
        first_token, last_token = first // self.inner, (first + a.size - 1) // self.inner
        part = None
        # Fast paths: finite per-token sums of a² and (b−a)² prove that every a and b is finite, and then
        # the sums are exactly those of the masked path below (the same sums in the same order). Their
        # NaN/Inf arithmetic is thrown away, so it is not warned about.
        with np.errstate(over="ignore", invalid="ignore"):
            if squares is None:
                squares = square_pairs(a, b - a, np.empty(2 * a.size))
            if a.size >= SPARSE_MIN_ELEMENTS and last_token - first_token < self.num_tokens:
                part = self._runs(first, squares)
            else:
                tokens = self._tokens(first, a.size)
                sum_aa = np.bincount(tokens, weights=squares[: a.size], minlength=self.num_tokens)
                sum_dd = np.bincount(tokens, weights=squares[a.size :], minlength=self.num_tokens)
                if np.isfinite(sum_aa).all() and np.isfinite(sum_dd).all():
                    part = TokenPart(slice(None), sum_aa, sum_dd)
        return part if part is not None else self._masked(a, b, self._tokens(first, a.size))

    def add(self, part: TokenPart) -> None:
        """Add the next slice's :meth:`measure` result."""
        self.sum_aa[part.positions] += part.sum_aa
        self.sum_dd[part.positions] += part.sum_dd
        if part.mismatch is not None:
            self.mismatch += part.mismatch

    def _runs(self, first: int, squares: np.ndarray) -> TokenPart | None:
        """Sums over each token's contiguous run in the slice (no token occurs twice in it); None when
        one is not finite (the caller then takes the masked path).

        A token's sum must be its values added one after the other from 0.0 (what np.bincount does),
        not numpy's pairwise sum. A CSR matrix of ones with one row per run computes exactly that
        (scipy's csr_matvec adds ``1.0 * w[j]`` in column order into a zeroed float64), ~4x faster
        than np.bincount. The a² and d² runs go through one block-diagonal matrix, in one call.
        """
        n = squares.size // 2
        key = (first % self.inner, n)
        matrix = self._run_sums.get(key)
        if matrix is None:
            matrix = self._run_sums[key] = _run_matrix(first % self.inner, n, self.inner)
        sums = matrix @ squares
        if not np.isfinite(sums).all():
            return None
        first_token = first // self.inner
        runs = sums.size // 2
        positions = np.arange(first_token, first_token + runs) % self.num_tokens
        return TokenPart(positions, sums[:runs], sums[runs:])

    def _tokens(self, first: int, size: int) -> np.ndarray:
        """The token position of each of ``size`` flat elements from element ``first`` on.

        Element ``i`` belongs to token ``(i // inner) % num_tokens``; the slice holds runs of ``inner``
        equal positions, written with one ``np.repeat`` instead of an index array and two divisions.
        """
        first_token, last_token = first // self.inner, (first + size - 1) // self.inner
        starts = np.arange(first_token + 1, last_token + 1, dtype=np.int64) * self.inner - first
        counts = np.diff(starts, prepend=0, append=size)
        positions = np.arange(first_token, last_token + 1, dtype=np.intp) % self.num_tokens
        return np.repeat(positions, counts)

    def _masked(self, a: np.ndarray, b: np.ndarray, tokens: np.ndarray) -> TokenPart:
        """Per-token sums over the positions where both sides are finite, and the mismatches."""
        finite = np.isfinite(a) & np.isfinite(b)
        mismatch = None
        if not finite.all():
            equal = ~finite & ((np.isnan(a) & np.isnan(b)) | (a == b))
            bad = ~finite & ~equal
            mismatch = np.bincount(tokens[bad], minlength=self.num_tokens).astype(np.float64)
            a, b, tokens = a[finite], b[finite], tokens[finite]
        d = b - a
        return TokenPart(
            slice(None),
            np.bincount(tokens, weights=a * a, minlength=self.num_tokens),
            np.bincount(tokens, weights=d * d, minlength=self.num_tokens),
            mismatch,
        )

    def result(self, whole_rel_l2: float) -> TokenErrors:
        """Per-token rel-L2 (conventions of :func:`precdiff.compare.metrics.rel_l2`) and the robust value."""
        rel = [_rel(aa, dd, bad) for aa, dd, bad in zip(self.sum_aa, self.sum_dd, self.mismatch)]
        norms = np.sqrt(self.sum_aa)
        median = float(np.median(norms)) if norms.size else 0.0
        massive = tuple(int(i) for i in np.flatnonzero(norms > MASSIVE_RATIO * median)) if median > 0 else ()
        robust = whole_rel_l2
        if massive and len(massive) < self.num_tokens and math.isfinite(whole_rel_l2):
            keep = np.ones(self.num_tokens, dtype=bool)
            keep[list(massive)] = False
            rest = _rel(float(self.sum_aa[keep].sum()), float(self.sum_dd[keep].sum()), 0.0)
            robust = max(whole_rel_l2, rest)
        return TokenErrors(tuple(rel), tuple(float(n) for n in norms), massive, robust)


def square_pairs(a: np.ndarray, d: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``[a² | d²]`` of a slice and its ``d = b − a`` into ``out`` (``2 * a.size`` values): what
    :meth:`TokenSums.measure` sums per token."""
    n = a.size
    np.multiply(a, a, out=out[:n])
    np.multiply(d, d, out=out[n : 2 * n])
    return out[: 2 * n]


def _run_matrix(offset: int, size: int, inner: int) -> Any:
    """Block-diagonal CSR matrix of ones summing the token runs of ``[a² | d²]`` for a slice of ``size``
    elements that starts ``offset`` elements into a token."""
    from scipy.sparse import csr_array

    cuts = np.arange(inner - offset, size, inner, dtype=np.int32)
    bounds = np.concatenate(([0], cuts, [size])).astype(np.int32)
    indptr = np.concatenate((bounds, bounds[1:] + size)).astype(np.int32)
    columns = np.arange(2 * size, dtype=np.int32)
    return csr_array((np.ones(2 * size), columns, indptr), shape=(indptr.size - 1, 2 * size))


def _rel(sum_aa: float, sum_dd: float, mismatch: float) -> float:
    if mismatch:
        return math.nan
    if sum_aa == 0.0:
        return 0.0 if sum_dd == 0.0 else math.inf
    return math.sqrt(sum_dd / sum_aa)


def massive_tokens(
    tensors: Sequence[TensorComparison], layers: Sequence[LayerSummary], input_ids: Sequence[int]
) -> tuple[MassiveToken, ...]:
    """The massive-activation positions of the stage outputs, with the first stage and largest ratio."""
    by_name = {t.name: t for t in tensors}
    found: dict[int, tuple[float, str]] = {}
    for stage in layers:
        output = by_name.get(stage.output or "")
        if output is None or not output.massive_tokens:
            continue
        median = float(np.median(output.token_norms))
        for position in output.massive_tokens:
            ratio = output.token_norms[position] / median
            first = found.get(position, (0.0, stage.label))[1]
            found[position] = (max(ratio, found.get(position, (0.0, ""))[0]), first)
    return tuple(
        MassiveToken(
            position=p,
            token_id=int(input_ids[p]) if p < len(input_ids) else None,
            token_text=None,
            norm_ratio=ratio,
            first_stage=first,
        )
        for p, (ratio, first) in sorted(found.items())
    )
