"""Batch-invariant ops written with torch ops only (the CPU path, and the NPU fallback).

The idea that makes every op here batch invariant is the **fixed-shape row tile**: a vendor kernel
(MKL/oneDNN on CPU, the CANN cube unit on NPU) picks its blocking, its threading and any split of the
reduction from the *shape* it is called with. Standard torch therefore computes row ``i`` of
``x @ w`` differently when ``x`` has 1, 7 or 300 rows on many CPUs (measured on one AVX-512 MKL
machine: fp32 GEMM gave three bit patterns for the same row over ``M = 1..1024``; another CPU of the same
family was invariant on those shapes, so no test relies on either). Here every vendor call sees one
shape only: the rows are copied, :data:`ROW_TILE` at a time, into a fresh zero-padded ``[ROW_TILE, K]``
buffer and the kernel runs on that buffer. Each row's result then depends only on that row, on ``K``
and on the (fixed) weight, never on how many other rows came with it. Copying into a fresh buffer also
makes the data pointer's alignment identical for every tile (the allocator aligns to 64 bytes), so
an alignment-dependent code path in the vendor library cannot differ between tiles.

The tile is padded with zero rows; a GEMM row of zeros costs time but never touches another row.
Reductions (sum/mean) and softmax use the same tiling with the reduced dimension moved last, so a
row-wise reduction is never split across threads differently for different row counts (standard torch
splits a long row across threads only when there are few rows: that is the batch dependence of
``x.sum(-1)`` for vocabulary-sized rows).

Recursion: these functions are registered as the ``aten::mm`` (etc.) kernels for the CPU / NPU
dispatch key while the mode is on, so calling ``torch.mm`` inside them would call them again. They
call the ``out=`` overloads instead (``aten::mm.out``, ``aten::sum.IntList_out``, ...), which are
separate operators that the mode leaves alone and which run the same vendor kernel.

Half-precision GEMMs (bf16/fp16) are computed in fp32 on the tile and rounded once at the end: the
same numerics as a tensor-core GEMM with fp32 accumulation, and no reliance on oneDNN's bf16 path.

Speed: this path is made for correctness and for NPU, not for throughput (a Python loop over tiles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

ROW_TILE = 16
"""Rows per vendor call. 16 keeps decode (1 row) waste bounded while amortising the Python loop."""

_HALF = (torch.bfloat16, torch.float16)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half types (tensor-core-like fp32 accumulation), otherwise the dtype itself."""
    return torch.float32 if dtype in _HALF else dtype


def _tiled_rows(
    x: torch.Tensor,  # [rows, K]
    out_cols: int,
    fn: Callable[[torch.Tensor, torch.Tensor], None],
    out_dtype: torch.dtype,
) -> torch.Tensor:  # [rows, out_cols]
    """Run ``fn(tile_in, tile_out)`` on fresh ``[ROW_TILE, K]`` tiles and gather the rows.

    ``fn`` must write its result for the tile into ``tile_out`` (shape ``[ROW_TILE, out_cols]``).
    """
    rows, k = x.shape
    out = torch.empty((rows, out_cols), dtype=out_dtype, device=x.device)
    for start in range(0, rows, ROW_TILE):
        n = min(ROW_TILE, rows - start)
        tile_in = torch.zeros((ROW_TILE, k), dtype=x.dtype, device=x.device)
        tile_in[:n].copy_(x[start : start + n])
        tile_out = torch.empty((ROW_TILE, out_cols), dtype=out_dtype, device=x.device)
        fn(tile_in, tile_out)
        out[start : start + n].copy_(tile_out[:n])
    return out


def _mm_acc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in the accumulation dtype, row-tiled. a: [M, K], b: [K, N] -> [M, N] (acc dtype)."""
    acc = _acc_dtype(a.dtype)
    a_acc = a.to(acc)
    b_acc = b.to(acc)  # no copy when already fp32: the weight keeps its fixed pointer and strides

    def run(tile_in: torch.Tensor, tile_out: torch.Tensor) -> None:
        torch.mm(tile_in, b_acc, out=tile_out)

    return _tiled_rows(a_acc, b.shape[1], run, acc)


def mm(self: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    """``aten::mm``: self [M, K] @ mat2 [K, N] -> [M, N]; row i depends only on self[i] and mat2."""
    if not self.dtype.is_floating_point:
        return torch.mm(self, mat2, out=self.new_empty((self.shape[0], mat2.shape[1])))
    return _mm_acc(self, mat2).to(self.dtype)


def addmm(
    self: torch.Tensor, mat1: torch.Tensor, mat2: torch.Tensor, *, beta: float = 1, alpha: float = 1
) -> torch.Tensor:
    """``aten::addmm``: beta * self + alpha * (mat1 @ mat2), the product row-tiled.

    The bias is added elementwise after the product (in the accumulation dtype), not folded into
    the GEMM's C operand: elementwise adds cannot depend on the batch.
    """
    prod = _mm_acc(mat1, mat2)
    if alpha != 1:
        prod = prod * alpha
    bias = self.to(prod.dtype)
    if beta != 1:
        bias = bias * beta
    return (prod + bias if beta != 0 else prod).to(mat1.dtype)


def bmm(self: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    """``aten::bmm``: [B, M, K] @ [B, K, N], one row-tiled GEMM per batch entry.

    ``mat2[i]`` is copied to a fresh contiguous buffer so its alignment does not depend on ``i``
    (a slice of a larger tensor starts wherever the previous entries end).
    """
    out = torch.empty((self.shape[0], self.shape[1], mat2.shape[2]), dtype=self.dtype, device=self.device)
    for i in range(self.shape[0]):
        out[i].copy_(mm(self[i], mat2[i].contiguous()))
    return out


def baddbmm(
    self: torch.Tensor, batch1: torch.Tensor, batch2: torch.Tensor, *, beta: float = 1, alpha: float = 1
) -> torch.Tensor:
    """``aten::baddbmm``: beta * self + alpha * bmm(batch1, batch2), elementwise after the product."""
    prod = bmm(batch1, batch2).to(_acc_dtype(batch1.dtype))
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return prod.to(batch1.dtype)
    return (prod + self.to(prod.dtype) * beta).to(batch1.dtype)


def grouped_mm(
    self: torch.Tensor,
    mat2: torch.Tensor,
    offs: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``aten::_grouped_mm`` for the MoE expert layout: self [S, K] (rows sorted by expert),
    mat2 [E, K, N], offs [E] cumulative row ends -> [S, N].

    Each expert's rows go through the row-tiled GEMM, so a token's expert output does not depend on
    how many other tokens were routed to the same expert. The 3-D x 3-D form is a bmm. The 2-D x 2-D
    form (a K-split used only by the backward pass) is not provided.
    """
    dtype = out_dtype or self.dtype
    if self.dim() == 3 and mat2.dim() == 3:
        res = bmm(self, mat2).to(dtype)
        return res if bias is None else res + bias.unsqueeze(1).to(dtype)
    if not (self.dim() == 2 and mat2.dim() == 3 and offs is not None):
        raise NotImplementedError(
            "precdiff batch-invariant _grouped_mm supports [S, K] x [E, K, N] with offs and [B, M, K] x "
            f"[B, K, N]; got {tuple(self.shape)} x {tuple(mat2.shape)} (offs={'set' if offs is not None else None})"
        )
    ends = [int(e) for e in offs.tolist()]
    out = torch.zeros((self.shape[0], mat2.shape[2]), dtype=dtype, device=self.device)
    start = 0
    for expert, end in enumerate(ends):
        if end > start:
            part = mm(self[start:end], mat2[expert])
            if bias is not None:
                part = part + bias[expert].to(part.dtype)
            out[start:end].copy_(part.to(dtype))
        start = end
    return out


def _dims(x: torch.Tensor, dim: Sequence[int] | None) -> list[int]:
    """Normalise a reduction ``dim`` argument; None or [] means every dimension (torch semantics)."""
    if dim is None or len(dim) == 0:
        return list(range(x.dim()))
    return sorted({d % max(x.dim(), 1) for d in dim})


def _row_reduce(
    x: torch.Tensor, dims: list[int], keepdim: bool, dtype: torch.dtype, mean: bool
) -> torch.Tensor:
    """Sum (or mean) over ``dims`` with the reduced dims moved last and the rows tiled."""
    keep = [d for d in range(x.dim()) if d not in dims]
    moved = x.permute(*keep, *dims) if x.dim() else x.reshape(1)
    outer = [x.shape[d] for d in keep]
    length = 1
    for d in dims:
        length *= x.shape[d]
    acc = _acc_dtype(dtype)
    rows2d = moved.reshape(-1, length).to(acc)

    def run(tile_in: torch.Tensor, tile_out: torch.Tensor) -> None:
        torch.sum(tile_in, dim=-1, keepdim=True, out=tile_out)

    res = _tiled_rows(rows2d, 1, run, acc).reshape(outer)
    if mean:
        res = res / length
    res = res.to(dtype)
    if keepdim:
        for d in dims:
            res = res.unsqueeze(d)
    return res


def sum_dim(
    self: torch.Tensor, dim: Sequence[int] | None, keepdim: bool = False, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``aten::sum.dim_IntList``. Integer and bool sums are exact, so they go straight to the out kernel."""
    if not self.dtype.is_floating_point and (dtype is None or not dtype.is_floating_point):
        out_dtype = dtype or (torch.int64 if not self.dtype.is_complex else self.dtype)
        out = torch.empty(0, dtype=out_dtype, device=self.device)
        return torch.sum(self, dim=_dims(self, dim), keepdim=keepdim, dtype=dtype, out=out)
    return _row_reduce(self, _dims(self, dim), keepdim, dtype or self.dtype, mean=False)


def mean_dim(
    self: torch.Tensor, dim: Sequence[int] | None, keepdim: bool = False, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``aten::mean.dim`` (RMSNorm's ``x.pow(2).mean(-1, keepdim=True)``): sum in fp32, divide, round."""
    return _row_reduce(self, _dims(self, dim), keepdim, dtype or self.dtype, mean=True)


def _row_softmax(x: torch.Tensor, dim: int, log: bool, out_dtype: torch.dtype, safe: bool) -> torch.Tensor:
    """Softmax / log-softmax along ``dim`` with rows tiled. ``safe``: fully -inf rows give 0, not NaN."""
    dim = dim % max(x.dim(), 1)
    moved = x.movedim(dim, -1) if x.dim() else x.reshape(1)
    shape = moved.shape
    acc = _acc_dtype(x.dtype)
    rows2d = moved.reshape(-1, shape[-1] if moved.dim() else 1).to(acc)

    def run(tile_in: torch.Tensor, tile_out: torch.Tensor) -> None:
        if log:
            torch._log_softmax(tile_in, -1, False, out=tile_out)
        else:
            torch._softmax(tile_in, -1, False, out=tile_out)

    res = _tiled_rows(rows2d, rows2d.shape[1], run, acc)
    if safe:
        # _safe_softmax semantics (math SDPA with masks): a row with no finite entry attends to nothing.
        dead = torch.isneginf(rows2d).all(dim=-1, keepdim=True)
        res = res.masked_fill(dead, 0.0)
    res = res.reshape(shape).to(out_dtype)
    return res.movedim(-1, dim) if x.dim() else res.reshape(())


def softmax(self: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    """``aten::_softmax``."""
    return _row_softmax(self, dim, False, torch.float32 if half_to_float else self.dtype, safe=False)


def log_softmax(self: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    """``aten::_log_softmax`` (log-probabilities over the vocabulary)."""
    return _row_softmax(self, dim, True, torch.float32 if half_to_float else self.dtype, safe=False)


def safe_softmax(self: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``aten::_safe_softmax`` (used by the math SDPA backend when a mask is given)."""
    src = self.to(dtype) if dtype is not None else self
    return _row_softmax(src, dim, False, src.dtype, safe=True)


ELEMENT_CHUNK = 8192
"""Elements per elementwise call: a multiple of 64 (no scalar tail for fp32 or bf16 vectors) and below
ATen's 32768-element grain, so one thread runs the whole chunk with the vectorized loop."""


def _chunked(
    x: torch.Tensor, out_dtype: torch.dtype, apply: Callable[[torch.Tensor, torch.Tensor], None]
) -> torch.Tensor:
    """Apply an elementwise ``apply(buf_in, buf_out)`` on fixed, zero-padded chunks of ``x``.

    Why: ATen's CPU elementwise loop runs SIMD code on whole vectors and a *scalar* fallback on the
    tail of each thread's range. For sigmoid/silu/gelu/pow (fp32) and rsqrt (bf16) the two give
    different last bits, so an element's result depends on where it falls relative to the end of the
    tensor, i.e. on the batch size. With fixed chunks every element takes the vectorized path.
    """
    flat = x.reshape(-1)
    n = flat.numel()
    out = torch.empty(n, dtype=out_dtype, device=x.device)
    for start in range(0, n, ELEMENT_CHUNK):
        k = min(ELEMENT_CHUNK, n - start)
        buf = torch.zeros(ELEMENT_CHUNK, dtype=x.dtype, device=x.device)
        buf[:k].copy_(flat[start : start + k])
        res = torch.empty(ELEMENT_CHUNK, dtype=out_dtype, device=x.device)
        apply(buf, res)
        out[start : start + k].copy_(res[:k])
    return out.reshape(x.shape)


def _unary(name: str) -> Callable[..., torch.Tensor]:
    """Chunked kernel for ``aten::<name>`` (float inputs; others go straight to the out kernel)."""
    out_op = getattr(torch.ops.aten, name).out

    def kernel(self: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        dtype = self.dtype if self.dtype.is_floating_point else torch.get_default_dtype()
        if not self.dtype.is_floating_point:
            res: torch.Tensor = out_op(
                self.to(dtype), out=torch.empty(self.shape, dtype=dtype, device=self.device), **kwargs
            )
            return res

        def run(buf: torch.Tensor, res: torch.Tensor) -> None:
            out_op(buf, out=res, **kwargs)

        return _chunked(self, dtype, run)

    kernel.__name__ = f"{name}_chunked"
    return kernel


def pow_tensor_scalar(self: torch.Tensor, exponent: float) -> torch.Tensor:
    """``aten::pow.Tensor_Scalar`` (RMSNorm's ``x.pow(2)``), chunked like the unary ops."""
    dtype = torch.result_type(self, exponent)
    if not dtype.is_floating_point:
        out = torch.empty(self.shape, dtype=dtype, device=self.device)
        res: torch.Tensor = torch.ops.aten.pow.Tensor_Scalar_out(self, exponent, out=out)
        return res
    src = self.to(dtype)

    def run(buf: torch.Tensor, res: torch.Tensor) -> None:
        torch.ops.aten.pow.Tensor_Scalar_out(buf, exponent, out=res)

    return _chunked(src, dtype, run)


exp = _unary("exp")

UNARY_OPS = ("exp", "log", "sigmoid", "silu", "gelu", "tanh", "erf", "rsqrt", "sin", "cos")

OPS: dict[str, Callable[..., torch.Tensor]] = {
    **{name: _unary(name) for name in UNARY_OPS},
    "pow.Tensor_Scalar": pow_tensor_scalar,
    "mm": mm,
    "addmm": addmm,
    "bmm": bmm,
    "baddbmm": baddbmm,
    "_grouped_mm": grouped_mm,
    "sum.dim_IntList": sum_dim,
    "mean.dim": mean_dim,
    "_softmax": softmax,
    "_log_softmax": log_softmax,
    "_safe_softmax": safe_softmax,
}
"""aten overload name -> torch-level batch-invariant kernel (registered for CPU and NPU)."""
