"""Launch Triton kernels with less host work than ``kernel[grid](...)``: the decode hot path.

Measured on the H100 machine (``benchmarks/decode_overhead.py``, host-bound 1x64 GEMM):
``kernel[grid](...)`` cost 19.7 µs of Python per launch (it specialises every argument, builds a
string cache key and checks globals each time), ``CompiledKernel.run`` 10.1 µs and this module's
cached launch 11.2 µs (``benchmarks/results/decode_overhead.json``). A decode step of an 8B model
reaches our kernels ~300 times, so the difference is ~2.5 ms per token.

Here the first launch of an argument *signature* goes through ``kernel[grid](...)``, which compiles
or finds the kernel and returns it; later launches with the same signature call the compiled kernel
directly, exactly as ``JITFunction.run`` does after its own cache lookup. The signature is
conservative, so a kernel is only reused where Triton would have picked the same one: the leading
``tensors`` arguments by dtype, device and 16-byte alignment of the data pointer (what Triton
specialises pointers on), every other argument by *value* (Triton specialises integers on
properties of the value, so equal values never specialise differently; floats are not specialised,
keying them by value only costs cache entries), and the compile options.
"""

from __future__ import annotations

from typing import Any

import torch
import triton

_MAX_ENTRIES = 4096
_cache: dict[tuple[Any, ...], Any] = {}
_direct = True  # False once a compiled kernel refused our call (a Triton with another launcher convention)
_knobs = getattr(triton, "knobs", None)
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def _stream(device: int) -> int:
    if _raw_stream is not None:
        return int(_raw_stream(device))
    return int(torch.cuda.current_stream(device).cuda_stream)  # pragma: no cover - older torch


def _grid3(grid: tuple[int, ...]) -> tuple[int, int, int]:
    return grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1


def _active(hook: Any) -> bool:
    """A launch hook that will call something: not None, and not an empty ``HookChain`` (triton >= 3.5)."""
    return hook is not None and bool(getattr(hook, "calls", True))


class Plan:
    """A launch whose kernel, grid, options and non-tensor arguments are fixed (callers cache one per
    shape). Its identity is the cache key, cheap to hash: per launch only the tensors' alignment is
    checked. The caller's cache key must cover everything else Triton specialises on (dtypes, device)."""

    __slots__ = ("device", "grid", "kernel", "options", "tail")

    def __init__(
        self, kernel: Any, grid: tuple[int, ...], device: int, tail: tuple[Any, ...], options: dict[str, Any]
    ) -> None:
        self.kernel, self.device, self.tail, self.options = kernel, device, tail, options
        self.grid = _grid3(grid)


def launch(kernel: Any, grid: tuple[int, ...], *args: Any, tensors: int, **options: Any) -> None:
    """``kernel[grid](*args, **options)`` with the per-launch specialisation cached (see module doc).

    Args:
        kernel: a ``@triton.jit`` function.
        grid: up to three grid dimensions.
        args: every kernel parameter in signature order, constexprs included (positional: the
            compiled kernel's launcher takes them in that order); the first ``tensors`` of them are
            the torch tensors, the rest ints, floats, bools or None.
        tensors: how many leading ``args`` are tensors.
        options: compile options (``num_warps``, ``num_stages``).
    """
    device = args[0].get_device()
    key = (
        kernel,
        device,
        *options.values(),
        *[(t.dtype, t.data_ptr() % 16 == 0) for t in args[:tensors]],
        *args[tensors:],
    )
    _launch(key, kernel, _grid3(grid), device, args, tensors, options)


def launch_keyed(
    key: tuple[Any, ...], kernel: Any, grid: tuple[int, ...], *args: Any, tensors: int, **options: Any
) -> None:
    """:func:`launch` under the caller's ``key`` instead of every argument's value.

    For kernels whose size arguments are ``do_not_specialize``: ``key`` must then cover everything
    else Triton specialises on (tensor dtypes and 16-byte alignment, integers past int32, constexpr
    values), and ``args`` are every parameter in signature order, constexprs included; the first
    ``tensors`` of them are the torch tensors.
    """
    device = args[0].get_device()
    _launch((kernel, device, *key, *options.values()), kernel, _grid3(grid), device, args, tensors, options)


def launch_plan(plan: Plan, *tensors: torch.Tensor) -> None:
    """Launch ``plan`` with these leading tensor arguments (then ``plan.tail``)."""
    key = (plan, *[t.data_ptr() % 16 == 0 for t in tensors])
    _launch(key, plan.kernel, plan.grid, plan.device, (*tensors, *plan.tail), len(tensors), plan.options)


def remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """``cache[key] = value`` in a bounded cache (emptied when full: a forward has few shapes, and an
    emptied cache only costs one slow launch per shape) -> value."""
    if len(cache) >= _MAX_ENTRIES:
        cache.clear()
    cache[key] = value
    return value


def _launch(
    key: tuple[Any, ...],
    kernel: Any,
    grid3: tuple[int, int, int],
    device: int,
    args: tuple[Any, ...],
    tensors: int,
    options: dict[str, Any],
) -> None:
    global _direct
    compiled = _cache.get(key) if _direct else None
    if compiled is None:
        remember(_cache, key, kernel[grid3](*args, **options))
        return
    stream = _stream(device)
    try:
        runtime = _knobs.runtime if _knobs is not None else compiled
        enter, leave = runtime.launch_enter_hook, runtime.launch_exit_hook
        # Launch metadata only feeds launch hooks (profilers such as proton): skip it when none is set.
        metadata = (
            compiled.launch_metadata(grid3, stream, *args) if _active(enter) or _active(leave) else None
        )
        compiled.run(
            *grid3,
            stream,
            compiled.function,
            compiled.packed_metadata,
            metadata,
            enter,
            leave,
            *_addresses(args, tensors),
        )
    except (TypeError, AttributeError):  # another Triton launcher convention: Triton's own path from now on
        _direct = False
        kernel[grid3](*args, **options)


def _addresses(args: tuple[Any, ...], tensors: int) -> tuple[Any, ...]:
    """``args`` with its first ``tensors`` (the tensors) replaced by their data addresses. Triton's
    launcher takes an int as the address as it is, while for a tensor it calls ``data_ptr()`` and then
    asks the driver to confirm the address is a device one (``cuPointerGetAttribute``), for every
    tensor of every launch. Every caller passes tensors of the one CUDA device its cache key holds
    (the summary kernel's arena and tables are made on its input's device; the batch-invariant
    kernels run under CUDA dispatch). Positions, not an isinstance test per argument (torch.Tensor's
    metaclass makes each one costly): a summary launch has 22 arguments, and its host glue went from
    15.3 to 10.4 µs (benchmarks/summary_launch_glue.py, side by side on the CPU)."""
    return (*[arg.data_ptr() for arg in args[:tensors]], *args[tensors:])


def clear() -> None:
    """Forget every cached kernel (tests; a changed kernel source is a new JITFunction anyway)."""
    _cache.clear()
