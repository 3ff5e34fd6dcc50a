"""Batch-invariant CUDA kernels in Triton. Imported only when the mode is entered for ``cuda``.

Invariance rules every kernel here follows, and why each is enough:

* **GEMM (mm / addmm / bmm / _grouped_mm): no split-K, K loop in order** (:mod:`triton_gemm`; the
  tile per (M, K, N) comes from :mod:`gemm_tiles`, which holds only configurations proven
  bit-identical on the device).
* **fp32 is IEEE fp32.** fp32 GEMMs use ``input_precision="ieee"`` (FMA, never TF32), whatever the
  TF32 flags say; the mode also sets those flags so ops we do not override stay fp32.
* **Row reductions (sum/mean/softmax/log_softmax/_safe_softmax/_fused_rms_norm): one program per
  row, fixed BLOCK.** Each lane accumulates its strided elements in order and the lanes are combined
  by a fixed tree, so the order depends only on the row length.
* **Attention: fixed KV block size, blocks laid from the sequence's first real key, masks as data.**
  See :mod:`precdiff.kernels.attention`. BLOCK_M is fixed too, so decode (1 query) and prefill use
  the same MMA shape.

Unsupported dtypes (fp64, integers) go to the vendor ``out=`` kernels: integer math is exact, and
fp64 is not used by LLM forwards.
"""

# Triton kernels take tl-typed arguments that mypy cannot check; the Python wrappers are typed.
# mypy: disable-error-code="untyped-decorator,no-untyped-def,misc"
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import triton
import triton.language as tl

from precdiff.kernels import triton_gemm
from precdiff.kernels.triton_attention import ATTN_BLOCK_M, ATTN_BLOCK_N, attention
from precdiff.kernels.triton_launch import Plan, launch, launch_plan, remember

ROW_BLOCK = 1024
_FLOATS = triton_gemm.FLOATS
_row_plans: dict[tuple[Any, ...], Plan] = {}


@triton.jit
def _row_sum_kernel(x_ptr, out_ptr, N, stride, scale, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + row * stride + offs, mask=offs < N, other=0.0).to(tl.float32)
    tl.store(out_ptr + row, (tl.sum(acc, axis=0) * scale).to(out_ptr.dtype.element_ty))


@triton.jit
def _row_softmax_kernel(
    x_ptr, out_ptr, N, stride_x, stride_o, LOG: tl.constexpr, SAFE: tl.constexpr, BLOCK: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)
    m = tl.full((BLOCK,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, N, BLOCK):  # per-lane online max / sum, in order
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + offs, mask=offs < N, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, x)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.exp(x - m_safe)
        m = m_new
    row_max = tl.max(m, axis=0)
    max_safe = tl.where(row_max == float("-inf"), 0.0, row_max)
    total = tl.sum(s * tl.exp(m - max_safe), axis=0)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + offs, mask=offs < N, other=float("-inf")).to(tl.float32)
        if LOG:
            y = x - max_safe - tl.log(total)
        else:
            y = tl.exp(x - max_safe) / total
        if SAFE:
            y = tl.where(row_max == float("-inf"), 0.0, y)
        tl.store(out_ptr + row * stride_o + offs, y.to(out_ptr.dtype.element_ty), mask=offs < N)


def _rows(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, list[int], int]:
    """Move ``dims`` last and flatten: (rows [R, L] contiguous, kept shape, L)."""
    keep = [d for d in range(x.dim()) if d not in dims]
    length = 1
    for d in dims:
        length *= x.shape[d]
    moved = x.permute(*keep, *dims) if x.dim() else x.reshape(1)
    return moved.reshape(-1, length).contiguous(), [x.shape[d] for d in keep], length


def _scale(length: int, mean: bool) -> float:
    """Factor applied to a row sum: 1/length for a mean (NaN for an empty row, as torch.mean gives)."""
    return (1.0 / length if length else float("nan")) if mean else 1.0


def _reduce(
    x: torch.Tensor, dim: Sequence[int] | None, keepdim: bool, dtype: torch.dtype | None, mean: bool
) -> torch.Tensor:
    out_dtype = dtype or x.dtype
    if (
        dim is not None
        and len(dim) == 1
        and x.dim() > 0
        and dim[0] in (-1, x.dim() - 1)
        and x.is_contiguous()
        and x.dtype in _FLOATS
        and out_dtype in _FLOATS
    ):
        # The RMSNorm hot path (mean over the last dim, twice per layer per token): no copies, and
        # a launch plan per shape.
        out = torch.empty(x.shape[:-1] + ((1,) if keepdim else ()), dtype=out_dtype, device=x.device)
        if out.numel() > 0:
            key = (x.shape, x.dtype, out_dtype, mean, x.get_device())
            plan = _row_plans.get(key)
            if plan is None:
                length = x.shape[-1]
                plan = remember(
                    _row_plans,
                    key,
                    Plan(
                        _row_sum_kernel,
                        (out.numel(),),
                        x.get_device(),
                        (length, length, _scale(length, mean), ROW_BLOCK),
                        {},
                    ),
                )
            launch_plan(plan, x, out)
        return out
    dims = list(range(x.dim())) if not dim else sorted({d % max(x.dim(), 1) for d in dim})
    if x.dtype not in _FLOATS or out_dtype not in _FLOATS:
        out = torch.empty(
            0, dtype=dtype or (torch.int64 if not x.dtype.is_floating_point else x.dtype), device=x.device
        )
        fn = torch.mean if mean else torch.sum
        return fn(x, dim=dims, keepdim=keepdim, dtype=dtype, out=out)
    rows, kept, length = _rows(x, dims)
    out = torch.empty(kept, dtype=out_dtype, device=x.device)
    if out.numel() > 0:
        launch(
            _row_sum_kernel,
            (rows.shape[0],),
            rows,
            out,
            length,
            rows.stride(0),
            _scale(length, mean),
            ROW_BLOCK,
            tensors=2,
        )
    if keepdim:
        for d in dims:
            out = out.unsqueeze(d)
    return out


def sum_dim(
    self: torch.Tensor, dim: Sequence[int] | None, keepdim: bool = False, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    return _reduce(self, dim, keepdim, dtype, mean=False)


def mean_dim(
    self: torch.Tensor, dim: Sequence[int] | None, keepdim: bool = False, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    return _reduce(self, dim, keepdim, dtype, mean=True)


def _softmax_rows(x: torch.Tensor, dim: int, log: bool, safe: bool, out_dtype: torch.dtype) -> torch.Tensor:
    dim = dim % max(x.dim(), 1)
    moved = x.movedim(dim, -1) if x.dim() else x.reshape(1)
    shape = moved.shape
    rows = moved.reshape(-1, shape[-1]).contiguous()
    out = torch.empty(rows.shape, dtype=out_dtype, device=x.device)
    if rows.numel() > 0:
        launch(
            _row_softmax_kernel,
            (rows.shape[0],),
            rows,
            out,
            rows.shape[1],
            rows.stride(0),
            out.stride(0),
            log,
            safe,
            ROW_BLOCK,
            tensors=2,
        )
    res = out.reshape(shape)
    return res.movedim(-1, dim) if x.dim() else res.reshape(())


def softmax(self: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    return _softmax_rows(self, dim, False, False, torch.float32 if half_to_float else self.dtype)


def log_softmax(self: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    return _softmax_rows(self, dim, True, False, torch.float32 if half_to_float else self.dtype)


def safe_softmax(self: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    src = self.to(dtype) if dtype is not None else self
    return _softmax_rows(src, dim, False, True, src.dtype)


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    rstd_ptr,
    N,
    stride_x,
    stride_o,
    scale,
    eps,
    HAS_W: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One row per program: the same per-lane in-order sum of squares and fixed tree as
    ``_row_sum_kernel``, then out = x * rstd (* w) in fp32, rounded once."""
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + offs, mask=offs < N, other=0.0).to(tl.float32)
        acc += x * x
    rstd = 1.0 / tl.sqrt_rn(tl.sum(acc, axis=0) * scale + eps)
    tl.store(rstd_ptr + row, rstd)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        y = tl.load(x_ptr + row * stride_x + offs, mask=offs < N, other=0.0).to(tl.float32) * rstd
        if HAS_W:
            y = y * tl.load(w_ptr + offs, mask=offs < N, other=0.0).to(tl.float32)
        tl.store(out_ptr + row * stride_o + offs, y.to(out_ptr.dtype.element_ty), mask=offs < N)


def fused_rms_norm(
    input: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None, eps: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``aten::_fused_rms_norm`` -> (output, rstd [fp32, keepdim shape]), one fused row kernel
    (one launch instead of about ten ops: this runs twice per layer per decode step)."""
    nd = len(normalized_shape)
    eps_v = torch.finfo(input.dtype).eps if eps is None else eps
    lead = tuple(input.shape[: input.dim() - nd])
    length = 1
    for d in input.shape[input.dim() - nd :]:
        length *= d
    rstd_shape = lead + (1,) * nd
    if input.dtype not in _FLOATS or input.numel() == 0 or length == 0:
        dims = list(range(input.dim() - nd, input.dim()))
        x32 = input.to(torch.float32)
        rstd = (
            torch.rsqrt((x32 * x32).mean(dims, keepdim=True) + eps_v)
            if x32.numel()
            else torch.empty(rstd_shape, dtype=torch.float32, device=input.device)
        )
        out = x32 * rstd
        if weight is not None:
            out = out * weight.to(torch.float32)
        return out.to(input.dtype), rstd
    rows = input.reshape(-1, length)
    if rows.stride(1) != 1:
        rows = rows.contiguous()
    out = torch.empty((rows.shape[0], length), dtype=input.dtype, device=input.device)
    rstd = torch.empty(rows.shape[0], dtype=torch.float32, device=input.device)
    w = weight.reshape(-1).contiguous() if weight is not None else out
    launch(
        _rms_norm_kernel,
        (rows.shape[0],),
        rows,
        w,
        out,
        rstd,
        length,
        rows.stride(0),
        out.stride(0),
        1.0 / length,
        float(eps_v),
        weight is not None,
        ROW_BLOCK,
        tensors=4,
    )
    return out.reshape(input.shape), rstd.reshape(rstd_shape)


def ops() -> dict[str, Callable[..., Any]]:
    """aten overload -> Triton-backed kernel, registered for the CUDA dispatch key."""
    table: dict[str, Callable[..., Any]] = {
        **triton_gemm.OPS,
        "sum.dim_IntList": sum_dim,
        "mean.dim": mean_dim,
        "_softmax": softmax,
        "_log_softmax": log_softmax,
        "_safe_softmax": safe_softmax,
    }
    try:  # reached by F.rms_norm on CUDA in recent torch; absent in older builds
        if torch._C._dispatch_has_kernel_for_dispatch_key("aten::_fused_rms_norm", "CUDA"):
            table["_fused_rms_norm"] = fused_rms_norm
    except RuntimeError:
        pass
    return table


def parameters() -> dict[str, Any]:
    """Constants that fix the reduction order or the speed (recorded in the capture manifest)."""
    return {
        **triton_gemm.parameters(),
        "row_block": ROW_BLOCK,
        "attention_block_m": ATTN_BLOCK_M,
        "attention_block_n": ATTN_BLOCK_N,
        "triton": triton.__version__,
    }


__all__ = ["attention", "ops", "parameters"]
