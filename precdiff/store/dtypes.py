"""Conversion between torch tensors, dtype codes and the numpy arrays stored in HDF5.

The codes are those of :data:`precdiff.store.format.STORAGE_DTYPES`. 16-bit floats travel as raw
``uint16`` bit patterns: exact, half the size of an fp32 upcast, and still bitwise comparable.

Reading (``compare``, ``inspect``) needs only :func:`from_storage` and :data:`FLOAT_CODES`, so torch is
imported on first use of a torch helper, never by importing this module: a command that reads
captures must not pay torch's start-up (seconds on a CPU machine).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from precdiff.errors import CaptureFormatError, InputError
from precdiff.store.format import STORAGE_DTYPES

if TYPE_CHECKING:
    import torch

FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16"})


@functools.cache
def _torch_to_code() -> dict[torch.dtype, str]:
    import torch

    return {
        torch.float64: "F64",
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.int32: "I32",
        torch.int16: "I16",
        torch.int8: "I8",
        torch.uint8: "U8",
        torch.bool: "BOOL",
    }


def __getattr__(name: str) -> frozenset[torch.dtype]:
    # STORABLE_DTYPES is a torch-typed constant: built on first access (PEP 562), see the docstring.
    if name == "STORABLE_DTYPES":
        return frozenset(_torch_to_code())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dtype_code(dtype: torch.dtype) -> str:
    """The format's code for a torch dtype (``torch.bfloat16`` -> ``"BF16"``)."""
    codes = _torch_to_code()
    try:
        return codes[dtype]
    except KeyError:
        raise InputError(
            f"cannot store tensors of dtype {dtype}; supported: {', '.join(map(str, codes))}"
        ) from None


def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a format code (``"BF16"`` -> ``torch.bfloat16``)."""
    for dtype, known in _torch_to_code().items():
        if known == code:
            return dtype
    raise CaptureFormatError(f"unknown dtype code {code!r} in capture; it was written by a newer precdiff?")


def to_storage(tensor: torch.Tensor) -> np.ndarray:
    """A host numpy array holding ``tensor``'s exact bits in its storage dtype (C order)."""
    import torch

    host = tensor.detach().to("cpu").contiguous()
    if host.dtype in (torch.bfloat16, torch.float16):
        return host.view(torch.int16).numpy().view(np.uint16)
    return host.numpy()


def from_storage(array: np.ndarray, code: str) -> np.ndarray:
    """Decode a stored array to a numpy array of its natural value type, exactly.

    BF16 becomes float32 (every bf16 value is exactly representable in float32), F16 becomes
    float16; other codes are returned as stored.
    """
    if code not in STORAGE_DTYPES:
        raise CaptureFormatError(
            f"unknown dtype code {code!r} in capture; it was written by a newer precdiff?"
        )
    if code == "BF16":
        return (array.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if code == "F16":
        return array.view(np.float16)
    return array


def to_float64(array: np.ndarray, code: str, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`from_storage` as a flat float64 array: the same values, bit for bit.

    BF16 goes from its bits to float32 in one ufunc pass (``left_shift`` casting to uint32 on the
    fly) instead of a widening copy plus a shift: the streaming compare decodes every stored value.
    ``out``: a flat float64 array of ``array.size`` values to decode into (and return), so that a
    caller decoding slice after slice reuses one cache-resident buffer instead of fresh memory.
    """
    if code == "BF16":
        values: np.ndarray = np.left_shift(array.reshape(-1), 16, dtype=np.uint32).view(np.float32)
    else:
        values = from_storage(array, code).reshape(-1)
    if out is None:
        return values.astype(np.float64)
    np.copyto(out, values, casting="unsafe")  # the cast astype makes
    return out
