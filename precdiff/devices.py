"""Device resolution (cpu / cuda / npu), synchronisation and device facts for the manifest.

``torch_npu`` is imported only when an ``npu`` device is requested: ``import precdiff`` never
imports it. The npu path is written against torch_npu's public API (``torch.npu.*`` after
``import torch_npu``) and is untested on Ascend hardware.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from precdiff.errors import DeviceLimitError, DeviceUnavailableError, InputError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|npu)(?::(\d+))?$")


def _import_torch_npu() -> Any:
    try:
        return importlib.import_module("torch_npu")
    except ImportError:
        raise DeviceUnavailableError(
            "device 'npu' needs torch_npu, which is not installed; install torch_npu (and CANN) "
            "matching your torch, or use --device cpu|cuda / device='cpu'"
        ) from None


def npu_available() -> bool:
    """Whether an Ascend NPU can be used (imports torch_npu only if it is installed)."""
    if importlib.util.find_spec("torch_npu") is None:
        return False
    _import_torch_npu()
    return bool(torch.npu.is_available())  # type: ignore[attr-defined]


def resolve_device(spec: str | None) -> torch.device:
    """Turn ``auto|cpu|cuda[:i]|npu[:i]`` into a usable :class:`torch.device`.

    ``auto`` (the default) picks cuda, then npu, then cpu.

    Raises:
        InputError: the spec is not one of the accepted forms.
        DeviceUnavailableError: the device is not present on this machine.
    """
    text = (spec or "auto").strip().lower()
    match = _DEVICE_PATTERN.match(text)
    if not match:
        raise InputError(f"unknown device {spec!r}; use --device auto|cpu|cuda[:i]|npu[:i] / device='cuda:0'")
    kind, index_text = match.group(1), match.group(2)
    index = int(index_text) if index_text is not None else None
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if npu_available():
            return torch.device("npu", 0)
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "device 'cuda' requested but torch sees no CUDA GPU (CPU build or no driver); "
                "use --device cpu / device='cpu', or install a CUDA build of torch"
            )
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise DeviceUnavailableError(
                f"device 'cuda:{index}' requested but only {count} CUDA GPU(s) exist"
            )
        return torch.device("cuda", index or 0)
    _import_torch_npu()
    if not torch.npu.is_available():  # type: ignore[attr-defined]
        raise DeviceUnavailableError("torch_npu is installed but no NPU is available; use --device cpu|cuda")
    return torch.device("npu", index or 0)


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (device-to-host copies are only valid after this)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "npu":
        torch.npu.synchronize(device)  # type: ignore[attr-defined]


def device_facts(device: torch.device) -> dict[str, Any]:
    """Name, index and capability of ``device``, for the manifest."""
    facts: dict[str, Any] = {"type": device.type, "index": device.index, "name": None, "capability": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_bytes=props.total_memory,
        )
    elif device.type == "npu":
        facts["name"] = torch.npu.get_device_name(device)  # type: ignore[attr-defined]
    else:
        import platform

        facts["name"] = platform.processor() or platform.machine()
        facts["threads"] = torch.get_num_threads()
    return facts


def backend_versions() -> dict[str, str | None]:
    """torch / CUDA / cuDNN / torch_npu / CANN versions (None where absent). Never imports torch_npu."""
    import sys

    versions: dict[str, str | None] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "torch_npu": None,
        "cann": None,
    }
    npu_module = sys.modules.get("torch_npu")
    if npu_module is not None:
        versions["torch_npu"] = getattr(npu_module, "__version__", None)
        version_module = getattr(npu_module, "version", None)
        versions["cann"] = getattr(version_module, "cann", None) if version_module is not None else None
    return versions


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when the message is empty)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# Markers of conditions of the machine rather than of precdiff: out of memory (CUDA, NPU, the CPU
# allocator) and operations the device has no kernel for.
_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "cannot allocate memory")
_NO_KERNEL = ("not implemented for", "no kernel image is available", "not supported on")


def device_condition(exc: BaseException) -> str | None:
    """``"out of memory"`` / ``"no kernel for this operation on this device"`` when ``exc`` is one of
    those conditions, else ``None`` (then it is a bug and must keep its traceback)."""
    text = str(exc).lower()
    if isinstance(exc, torch.OutOfMemoryError) or any(m in text for m in _OUT_OF_MEMORY):
        return "the device ran out of memory"
    if isinstance(exc, NotImplementedError) or any(m in text for m in _NO_KERNEL):
        return "the device has no kernel for an operation"
    return None


@contextmanager
def device_limits(what: str, fix: str) -> Iterator[None]:
    """Turn out-of-memory and missing-kernel failures inside the block into :class:`DeviceLimitError`
    naming ``what`` ran and the ``fix``; every other exception passes through unchanged."""
    try:
        yield
    except (RuntimeError, NotImplementedError) as exc:
        condition = device_condition(exc)
        if condition is None:
            raise
        raise DeviceLimitError(f"{condition} running {what} ({first_line(exc)}); {fix}") from None
