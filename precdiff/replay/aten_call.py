"""Re-running one recorded aten call (docs/format.md "Op calls") from its inputs' base tensors.

Plain torch only (no precdiff import): ``replay --emit-repro`` copies this module's source into the
standalone ``repro.py``, so that precdiff's replay and the reproducer rebuild inputs and call the op
with the same code.

Each tensor input is rebuilt from its *base* (the producer's stored values, a parameter, a buffer or
an inlined constant): laid out in the producer's strides when the call records them, then the recorded
view ops are applied in order, so the op sees the same shapes, strides and values as in the captured
run. ``cast`` maps every dtype of the run to the dtype of this replay (identity, or float64 for the
reference) and is applied to bases and to dtype arguments alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Cast = Callable[[torch.dtype], torch.dtype]


class CallError(ValueError):
    """The recorded call cannot be rebuilt or run here; the message says why."""


def aten_op(name: str) -> Any:
    """``"aten.mm.default"`` -> ``torch.ops.aten.mm.default``."""
    namespace, _, rest = name.partition(".")
    packet, _, overload = rest.rpartition(".")
    try:
        return getattr(getattr(getattr(torch.ops, namespace), packet), overload)
    except (AttributeError, RuntimeError):
        raise CallError(f"this torch ({torch.__version__}) has no operator {name}") from None


def decode(value: Any, tensors: list[torch.Tensor] | None, cast: Cast, device: torch.device) -> Any:
    """A recorded argument as a Python value; ``{"t": i}`` becomes ``tensors[i]``."""
    if isinstance(value, list):
        return [decode(item, tensors, cast, device) for item in value]
    if not isinstance(value, dict):
        return value
    if "t" in value and tensors is not None:
        return tensors[value["t"]]
    if "float" in value:
        return float(value["float"])
    if "dtype" in value:
        return cast(getattr(torch, value["dtype"]))
    if "device" in value:
        return device  # the op runs where this replay runs
    if "memory_format" in value:
        return getattr(torch, value["memory_format"])
    if "layout" in value:
        return getattr(torch, value["layout"])
    raise CallError(f"argument {value} cannot be replayed")


def decode_kwargs(
    kwargs: dict[str, Any], tensors: list[torch.Tensor] | None, cast: Cast, device: torch.device
) -> dict[str, Any]:
    """Recorded keyword arguments as Python values (see :func:`decode`)."""
    return {key: decode(value, tensors, cast, device) for key, value in kwargs.items()}


def unreplayable(value: Any) -> str | None:
    """The type name of the first argument recorded as unreplayable inside ``value``, else ``None``."""
    if isinstance(value, list):
        return next((found for item in value if (found := unreplayable(item)) is not None), None)
    if isinstance(value, dict):
        if "unreplayable" in value:
            return str(value["unreplayable"])
        return next((found for item in value.values() if (found := unreplayable(item)) is not None), None)
    return None


def rebuild(base: torch.Tensor, spec: Any, cast: Cast, device: torch.device) -> torch.Tensor:
    """The tensor an op received, from its base (a fresh copy: in-place ops must not touch ``base``)."""
    spec = spec or {}
    tensor = base.to(device=device, dtype=cast(base.dtype), copy=True)
    if "base" in spec:  # the producer's layout: the same values, in its strides and storage offset
        stride, offset = spec["base"]
        extent = 1 + sum((size - 1) * step for size, step in zip(tensor.shape, stride, strict=True) if size)
        storage = torch.empty(offset + extent, dtype=tensor.dtype, device=device)
        laid = storage.as_strided(tensor.shape, stride, offset)
        laid.copy_(tensor)
        tensor = laid
    for step in spec.get("views", []):
        op, args, kwargs = step[0], step[1], step[2]
        try:
            out = aten_op(op)(
                tensor, *decode(args, None, cast, device), **decode_kwargs(kwargs, None, cast, device)
            )
        except RuntimeError as exc:
            raise CallError(f"rebuilding an input with {op} failed: {str(exc).splitlines()[0]}") from None
        tensor = out[step[3]] if len(step) > 3 else out
    return tensor


# Fused attention kernels that exist for one device type only (the CPU flash kernel, CUDA's flash,
# memory-efficient and cuDNN ones, out-of-tree backends'): elsewhere, and for the float64 reference,
# their attention output is recomputed by the composite op, which dispatches to what that device has.
DEVICE_ATTENTION = (
    "aten._scaled_dot_product_flash_attention_for_cpu.",
    "aten._scaled_dot_product_flash_attention.",
    "aten._scaled_dot_product_efficient_attention.",
    "aten._scaled_dot_product_cudnn_attention.",
    "aten._scaled_dot_product_fused_attention_overrideable.",
)


def portable_attention(name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[torch.Tensor]:
    """A device-specific attention kernel's output (index 0) through ``scaled_dot_product_attention``,
    its arguments bound by name from the kernel's schema."""
    names = [argument.name for argument in aten_op(name)._schema.arguments]
    bound = {**dict(zip(names, args)), **kwargs}
    query, key, value = bound["query"], bound["key"], bound["value"]
    output = torch.ops.aten.scaled_dot_product_attention.default(
        query,
        key,
        value,
        attn_mask=bound.get("attn_mask", bound.get("attn_bias")),
        dropout_p=float(bound.get("dropout_p", 0.0)),
        is_causal=bool(bound.get("is_causal", False)),
        scale=bound.get("scale"),
        enable_gqa=query.shape[-3] != key.shape[-3],
    )
    return (output,)


def run_call(call: dict[str, Any], bases: list[torch.Tensor], cast: Cast, device: torch.device) -> Any:
    """The op's output(s), called on the rebuilt inputs on ``device``."""
    inputs = [rebuild(base, spec, cast, device) for base, spec in zip(bases, call["inputs"], strict=True)]
    args = decode(call["args"], inputs, cast, device)
    kwargs = decode_kwargs(call["kwargs"], inputs, cast, device)
    try:
        return aten_op(call["op"])(*args, **kwargs)
    except (RuntimeError, NotImplementedError) as exc:
        if not call["op"].startswith(DEVICE_ATTENTION):
            raise CallError(f"{call['op']} failed: {str(exc).splitlines()[0]}") from None
    try:  # a fused kernel of another device type (or dtype): the composite op computes the same output
        return portable_attention(call["op"], args, kwargs)
    except (RuntimeError, NotImplementedError) as exc:
        raise CallError(
            f"{call['op']} (as scaled_dot_product_attention) failed: {str(exc).splitlines()[0]}"
        ) from None


def pick(output: Any, path: list[int]) -> torch.Tensor:
    """The output tensor at ``path`` (indices into nested tuple outputs; ``[]``: the output itself)."""
    for index in path:
        if isinstance(output, tuple) and index >= len(output):
            raise CallError(
                f"output {path} exists only in the captured device's fused kernel; on this device only "
                "its attention output (index 0) is recomputed"
            )
        output = output[index]
    if not isinstance(output, torch.Tensor):
        raise CallError(f"the op's output at {path} is not a tensor")
    return output


def to_float64(dtype: torch.dtype) -> torch.dtype:
    """The reference's cast: every floating dtype of the run becomes float64."""
    return torch.float64 if dtype.is_floating_point else dtype


def rel_l2(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """``||candidate - reference|| / ||reference||`` in float64 (0 when both are zero)."""
    reference, candidate = reference.to("cpu", torch.float64), candidate.to("cpu", torch.float64)
    norm = float(torch.linalg.vector_norm(reference))
    diff = float(torch.linalg.vector_norm(candidate - reference))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / norm
