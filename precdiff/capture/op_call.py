"""An aten op's full call, recorded at ``capture --level op`` so that ``replay`` can re-run the op.

Written as JSON into the ``call`` index field of each output row of a kept op (docs/format.md, "Op
calls")::

    {"op": "aten.mm.default",
     "args": [{"t": 0}, {"t": 1}], "kwargs": {},
     "inputs": [null, {"views": [["aten.t.default", [], {}]]}]}

``args``/``kwargs`` are the call with each tensor replaced by ``{"t": i}``, ``i`` its position in the
row's ``inputs`` references (the same order: positional arguments, then keyword arguments; lists such
as ``cat``'s flattened in place). Other values: numbers (non-finite floats as ``{"float": "inf"}``),
bools, ``None``, strings and lists as themselves; ``{"dtype": "float32"}``, ``{"device": "cuda:0"}``,
``{"memory_format": "contiguous_format"}``, ``{"layout": "strided"}``; anything else
``{"unreplayable": "<type name>"}`` (replay refuses the op and names it).

``inputs[i]`` says how to rebuild tensor input ``i`` from its reference, ``null`` when the op received
the producer's own tensor, contiguous. Otherwise an object with any of:

- ``base``: ``[stride, storage_offset]``, the producer's layout when it was not contiguous (``neg`` of
  a transposed view keeps its input's strides, SDPA returns a transposed layout): the stored values
  are laid out this way again before the views, so that every view op sees the strides it saw;
- ``dtype``: the dtype of a parameter or buffer in the run (replay loads weights in float32);
- ``value``: a small constant tensor (made outside the traced forward, at most
  :data:`INLINE_CONSTANT_ELEMENTS` elements, any device) as a nested list, with its ``dtype``;
- ``views``: the skipped view ops between the producer and the op, in order, each
  ``[op, args, kwargs]`` without the base tensor (``[op, args, kwargs, k]``: item ``k`` of a view op
  returning several views, e.g. ``split``).

Why the chain of view ops and not the input's strides: the producer's data is stored contiguous, and
``as_strided`` on it reproduces the op's input only when the producer had that same layout; the view
ops are functions of the logical values, so replaying them on the producer's values (in the
producer's layout) rebuilds exactly the tensor the op received, strides included.

Cost: nothing is encoded at the op; :class:`OpCall` keeps references to the arguments, and the sink
encodes it once, only for a kept op stored in full (replay needs the op's output), before the op's
tensors are released. Summary rows (``--summary`` outside ``--focus``) never encode their call.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

CONSTANT = "constant"  # the reference of a tensor made outside the traced forward (docs/format.md)

# A constant input up to this many elements is written into the call (masks and ids built before the
# forward are larger and are not): small enough to keep the index row short.
INLINE_CONSTANT_ELEMENTS = 64

# (stride, storage offset, dtype name) of a reference's base tensor; None: contiguous, dtype known.
Base = tuple[tuple[int, ...] | None, int, str | None]
# (view op, its arguments after the base, its keyword arguments, output item or None)
Step = tuple[str, tuple[Any, ...] | None, dict[str, Any] | None, int | None]

# One encoder for every call: json.dumps with options builds a new one each time.
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_NAMES: dict[Any, str] = {}  # dtype / memory format / layout -> name, cached (str() costs µs)


def _name(value: Any) -> str:
    name = _NAMES.get(value)
    if name is None:
        name = _NAMES[value] = str(value).removeprefix("torch.")
    return name


def dtype_name(dtype: torch.dtype) -> str:
    """``float32`` for ``torch.float32``, as calls write dtypes (cached)."""
    return _name(dtype)


def encode_value(value: Any, tensors: list[torch.Tensor] | None) -> Any:
    """The JSON form of one argument; tensors are appended to ``tensors`` and become ``{"t": i}``."""
    kind = type(value)
    if kind is int or kind is bool or kind is str or value is None:
        return value
    if kind is list or kind is tuple:
        if all(type(item) is int for item in value):  # shapes, dims: the common case, no recursion
            return value if kind is list else list(value)
        return [encode_value(item, tensors) for item in value]
    if isinstance(value, torch.Tensor):
        if tensors is None:
            return {"unreplayable": "Tensor"}
        tensors.append(value)
        return {"t": len(tensors) - 1}
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is torch.dtype:
        return {"dtype": _name(value)}
    if kind is torch.device:
        return {"device": str(value)}
    if kind is torch.memory_format:
        return {"memory_format": _name(value)}
    if kind is torch.layout:
        return {"layout": _name(value)}
    return {"unreplayable": kind.__name__}


def _encode_kwargs(kwargs: dict[str, Any] | None, tensors: list[torch.Tensor] | None) -> dict[str, Any]:
    if not kwargs:
        return {}
    out = {}
    for key, value in kwargs.items():
        if type(value) in (list, tuple) and any(isinstance(v, torch.Tensor) for v in value):
            # The references list only direct keyword tensors: a tensor list keyword is not referenced.
            out[key] = {"unreplayable": "tensor list keyword"}
        else:
            out[key] = encode_value(value, tensors)
    return out


def _encode_input(tensor: torch.Tensor, ref: str, base: Base | None, steps: tuple[Step, ...]) -> Any:
    if ref == CONSTANT:
        # Any device: encoding runs only for ops stored in full, which copy to the host anyway.
        if tensor.numel() <= INLINE_CONSTANT_ELEMENTS:
            return {"value": encode_value(tensor.tolist(), None), "dtype": _name(tensor.dtype)}
        return None  # replay says that the capture does not hold the constant's value
    entry: dict[str, Any] = {}
    if base is not None:
        stride, offset, dtype = base
        if stride is not None:
            entry["base"] = [list(stride), offset]
        if dtype is not None:
            entry["dtype"] = dtype
    if steps:
        entry["views"] = [
            [op, encode_value(list(args), None), _encode_kwargs(kwargs, None)]
            + ([item] if item is not None else [])
            if args is not None
            else [op, {"unreplayable": "view whose base is not its first argument"}, {}]
            for op, args, kwargs, item in steps
        ]
    return entry or None


class OpCall:
    """One traced op's call, kept as references until :meth:`encode` (at most once) is asked for.

    Args:
        op: the overload, ``aten.mm.default``.
        args, kwargs: the call as dispatched.
        found: per tensor input (in reference order): its reference, its base and its view steps.
    """

    __slots__ = ("_text", "args", "found", "kwargs", "op")

    def __init__(
        self,
        op: str,
        args: Any,
        kwargs: Any,
        found: list[tuple[str, Base | None, tuple[Step, ...]]],
    ) -> None:
        self.op, self.args, self.kwargs, self.found = op, args, kwargs, found
        self._text: str | None = None

    def encode(self) -> str:
        """The JSON text of the call (docs/format.md "Op calls")."""
        if self._text is None:
            tensors: list[torch.Tensor] = []
            args = [encode_value(arg, tensors) for arg in self.args]
            kwargs = _encode_kwargs(self.kwargs, tensors)
            inputs = [
                _encode_input(tensor, *entry) for tensor, entry in zip(tensors, self.found, strict=False)
            ]
            document = {"op": self.op, "args": args, "kwargs": kwargs, "inputs": inputs}
            self._text = _JSON.encode(document)
        return self._text
