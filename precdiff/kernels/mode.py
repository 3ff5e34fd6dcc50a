"""The batch-invariant mode: a ``with`` block that swaps in invariant kernels and records what it did.

Mechanism (judgement, why not a ``TorchDispatchMode``): the kernels are registered with
``torch.library.Library("aten", "IMPL")`` for one dispatch key (``CPU``, ``CUDA`` or ``PrivateUse1``
for Ascend NPU). That overrides the op *below* autograd and every Python mode, so it catches the op
wherever the model reaches it (``F.linear`` -> ``addmm``/``mm``, ``matmul`` -> ``bmm``, math SDPA ->
``bmm`` + ``_safe_softmax``) at no per-op Python cost for ops we do not override, and it leaves
other devices untouched. The ``Library`` object is destroyed when the last ``with`` block for that
key exits, which restores the vendor kernels exactly.

Nesting and exceptions: registrations are reference-counted per dispatch key and the process-wide
numerics flags are saved by the outermost block and restored by it, in ``finally``. A block for
``cpu`` nested in a block for ``cuda`` adds the CPU registration and leaves the CUDA one in place.
The mode is process-global (dispatcher registrations are), not per thread.

Globals: every flag the mode sets is recorded as ``old -> new`` in :class:`KernelSettings`, and so
are the flags it only observes (thread count, deterministic algorithms, preferred linalg library),
so a capture manifest tells the whole numerics story.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from precdiff.errors import DeviceUnavailableError, KernelError
from precdiff.kernels import cpu
from precdiff.kernels.attention import ATTENTION_IMPLEMENTATION, register_attention

_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA", "npu": "PrivateUse1"}


@dataclass(frozen=True)
class KernelSettings:
    """What a :func:`batch_invariant_mode` block changed. ``to_dict()`` goes into a capture manifest.

    Attributes:
        device_type: ``"cpu"``, ``"cuda"`` or ``"npu"``.
        backend: ``"triton"`` (CUDA) or ``"torch"`` (fixed-shape row tiles over vendor kernels).
        dispatch_key: the dispatcher key the kernels are registered for.
        ops_overridden: aten overloads whose kernel the mode replaced, sorted.
        globals: flag name -> ``{"old": ..., "new": ...}`` (equal when only observed).
        attention_implementation: the ``attn_implementation`` name to load models with.
        parameters: tile sizes and other constants that fix the reduction order.
    """

    device_type: str
    backend: str
    dispatch_key: str
    ops_overridden: tuple[str, ...]
    globals: dict[str, dict[str, Any]] = field(default_factory=dict)
    attention_implementation: str = ATTENTION_IMPLEMENTATION
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (plain str / int / float / bool / None values only)."""
        return {
            "device_type": self.device_type,
            "backend": self.backend,
            "dispatch_key": self.dispatch_key,
            "ops_overridden": list(self.ops_overridden),
            "globals": {k: dict(v) for k, v in sorted(self.globals.items())},
            "attention_implementation": self.attention_implementation,
            "parameters": dict(self.parameters),
        }


# ---- process-wide flags ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flag:
    """One global: how to read it, how to set it, and the value the mode wants (None: observe only)."""

    name: str
    get: Callable[[], Any]
    set: Callable[[Any], None] | None
    want: Any


def _setter(obj: Any, attr: str) -> Callable[[Any], None]:
    return lambda value: setattr(obj, attr, value)


def _flags() -> list[_Flag]:
    """The numerics flags, newest API first (torch >= 2.9 ``fp32_precision``; the legacy TF32
    booleans otherwise: reading one API after writing the other warns on recent torch)."""
    b = torch.backends
    flags: list[_Flag] = []
    if hasattr(b.cuda.matmul, "fp32_precision"):
        # "ieee": fp32 GEMMs that fall back to cuBLAS (fp32 ops we do not override) stay IEEE fp32.
        flags.append(
            _Flag(
                "torch.backends.cuda.matmul.fp32_precision",
                lambda: b.cuda.matmul.fp32_precision,
                _setter(b.cuda.matmul, "fp32_precision"),
                "ieee",
            )
        )
        flags.append(
            _Flag(
                "torch.backends.cudnn.fp32_precision",
                lambda: b.cudnn.fp32_precision,
                _setter(b.cudnn, "fp32_precision"),
                "ieee",
            )
        )
    else:  # pragma: no cover - torch < 2.9
        flags.append(
            _Flag(
                "torch.backends.cuda.matmul.allow_tf32",
                lambda: b.cuda.matmul.allow_tf32,
                _setter(b.cuda.matmul, "allow_tf32"),
                False,
            )
        )
        flags.append(
            _Flag(
                "torch.backends.cudnn.allow_tf32",
                lambda: b.cudnn.allow_tf32,
                _setter(b.cudnn, "allow_tf32"),
                False,
            )
        )
        flags.append(
            _Flag(
                "torch.get_float32_matmul_precision",
                torch.get_float32_matmul_precision,
                torch.set_float32_matmul_precision,
                "highest",
            )
        )
    # Reduced-precision reductions let cuBLAS round split-K partials to bf16/fp16: off.
    for attr in ("allow_bf16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction"):
        flags.append(
            _Flag(
                f"torch.backends.cuda.matmul.{attr}",
                functools.partial(getattr, b.cuda.matmul, attr),
                _setter(b.cuda.matmul, attr),
                False,
            )
        )
    # SDPA outside our attention function: only the math backend, which decomposes into bmm and
    # _safe_softmax, both overridden. Flash / efficient / cuDNN pick split counts by shape.
    # These flags are global (the CPU flash kernel obeys enable_flash_sdp too).
    for kind, want in (("flash", False), ("mem_efficient", False), ("cudnn", False), ("math", True)):
        get = getattr(b.cuda, f"{kind}_sdp_enabled", None)
        put = getattr(b.cuda, f"enable_{kind}_sdp", None)
        if get is not None and put is not None:
            flags.append(_Flag(f"torch.backends.cuda.{kind}_sdp_enabled", get, put, want))
    # Observed only: they change numerics or determinism but the mode does not need to change them.
    flags.append(
        _Flag(
            "torch.backends.cuda.preferred_linalg_library",
            lambda: str(b.cuda.preferred_linalg_library()),
            None,
            None,
        )
    )
    flags.append(
        _Flag(
            "torch.are_deterministic_algorithms_enabled",
            torch.are_deterministic_algorithms_enabled,
            None,
            None,
        )
    )
    flags.append(_Flag("torch.get_num_threads", torch.get_num_threads, None, None))
    return flags


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# ---- registration state ---------------------------------------------------------------------------


@dataclass
class _Registration:
    lib: Any  # torch.library.Library
    ops: tuple[str, ...]
    count: int


class _State:
    """Process-wide bookkeeping: one registration per dispatch key, and the saved flags."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.registrations: dict[str, _Registration] = {}
        self.depth = 0
        self.saved: list[tuple[_Flag, Any]] = []
        self.record: dict[str, dict[str, Any]] = {}


_STATE = _State()


def _resolve(device: torch.device | str) -> str:
    device_type = torch.device(device).type if not isinstance(device, torch.device) else device.type
    if device_type not in _DISPATCH_KEYS:
        raise KernelError(
            f"batch-invariant kernels are not available for device type {device_type!r}; "
            "use --device cpu, cuda or npu (device=...)"
        )
    if device_type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "batch-invariant mode was asked for device 'cuda' but torch sees no CUDA device; "
            "use --device cpu (device='cpu') or run on a machine with a CUDA GPU"
        )
    if device_type == "npu" and not (hasattr(torch, "npu") and torch.npu.is_available()):
        raise DeviceUnavailableError(
            "batch-invariant mode was asked for device 'npu' but no Ascend NPU is visible; "
            "install torch_npu and `import torch_npu` before entering the mode, or use --device cpu"
        )
    return device_type


def _backend_ops(device_type: str) -> tuple[str, dict[str, Callable[..., Any]], dict[str, Any]]:
    """(backend name, aten overload -> kernel, parameters) for a device type."""
    if device_type == "cuda":
        try:
            from precdiff.kernels import triton_ops
        except ImportError as exc:
            raise KernelError(
                f"batch-invariant kernels on cuda need triton, which failed to import ({exc}); "
                "install it with `pip install triton` (it ships with CUDA builds of torch), "
                "or capture without --kernels batch-invariant"
            ) from None
        return "triton", triton_ops.ops(), triton_ops.parameters()
    return "torch", dict(cpu.OPS), {"row_tile": cpu.ROW_TILE}


def _install(dispatch_key: str, table: dict[str, Callable[..., Any]]) -> _Registration:
    lib = torch.library.Library("aten", "IMPL")
    installed: list[str] = []
    try:
        with warnings.catch_warnings():
            # torch warns (once per process) that an aten kernel is being overridden: that is the point.
            warnings.simplefilter("ignore", UserWarning)
            for name, fn in sorted(table.items()):
                packet = getattr(torch.ops.aten, name.split(".")[0], None)
                if packet is None:  # op absent in this torch (e.g. _grouped_mm before 2.8)
                    continue
                lib.impl(name, fn, dispatch_key)
                installed.append(name)
    except BaseException:
        lib._destroy()
        raise
    return _Registration(lib=lib, ops=tuple(installed), count=0)


def _enter_globals() -> None:
    _STATE.saved = []
    _STATE.record = {}
    try:
        for flag in _flags():
            old = flag.get()
            if flag.set is not None and flag.want is not None and old != flag.want:
                _STATE.saved.append((flag, old))
                flag.set(flag.want)
            _STATE.record[flag.name] = {"old": _jsonable(old), "new": _jsonable(flag.get())}
    except BaseException:
        _restore_globals()
        raise


def _restore_globals() -> None:
    # Reverse order so a flag set twice (it is not, but cheaply safe) ends at its first value.
    for flag, old in reversed(_STATE.saved):
        assert flag.set is not None
        flag.set(old)
    _STATE.saved = []


@contextmanager
def batch_invariant_mode(device: torch.device | str) -> Iterator[KernelSettings]:
    """Run the enclosed forward passes with batch-invariant kernels on ``device``.

    Args:
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"npu"``).

    Yields:
        KernelSettings: what was overridden and which globals changed (``settings.to_dict()``).

    Raises:
        KernelError: triton missing on CUDA, or an unsupported device type.
        DeviceUnavailableError: the device is not present.

    Example:
        >>> from precdiff.kernels import batch_invariant_mode
        >>> with batch_invariant_mode("cpu") as settings:
        ...     y = torch.ones(3, 4) @ torch.ones(4, 2)
        >>> settings.backend
        'torch'
    """
    device_type = _resolve(device)
    key = _DISPATCH_KEYS[device_type]
    backend, table, params = _backend_ops(device_type)
    register_attention()
    with _STATE.lock:
        entered_globals = False
        try:
            if _STATE.depth == 0:
                _enter_globals()
            _STATE.depth += 1
            entered_globals = True
            reg = _STATE.registrations.get(key)
            if reg is None:
                reg = _install(key, table)
                _STATE.registrations[key] = reg
            reg.count += 1
        except BaseException:
            if entered_globals:
                _leave(None)
            raise
        settings = KernelSettings(
            device_type=device_type,
            backend=backend,
            dispatch_key=key,
            ops_overridden=tuple(sorted(reg.ops)),
            globals={k: dict(v) for k, v in _STATE.record.items()},
            parameters=params,
        )
    try:
        yield settings
    finally:
        with _STATE.lock:
            _leave(key)


def _leave(key: str | None) -> None:
    """Undo one entry: drop the key's registration at count 0, restore flags at depth 0."""
    try:
        if key is not None:
            reg = _STATE.registrations[key]
            reg.count -= 1
            if reg.count == 0:
                del _STATE.registrations[key]
                reg.lib._destroy()
    finally:
        _STATE.depth -= 1
        if _STATE.depth == 0:
            _restore_globals()


def active_dispatch_keys() -> dict[str, int]:
    """Dispatch key -> nesting count of the registrations in force now (empty outside the mode)."""
    with _STATE.lock:
        return {k: r.count for k, r in _STATE.registrations.items()}
