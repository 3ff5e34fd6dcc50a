"""Conversion between torch tensors, dtype codes and the numpy arrays stored in HDF5.

The codes are those of :data:`precdiff.store.format.STORAGE_DTYPES`. 16-bit floats travel as raw
``uint16`` bit patterns: exact, half the size of an fp32 upcast, and still bitwise comparable.
"""

from __future__ import annotations

import numpy as np
import torch

from precdiff.errors import CaptureFormatError, InputError
from precdiff.store.format import STORAGE_DTYPES

_TORCH_TO_CODE: dict[torch.dtype, str] = {
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

FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16"})
STORABLE_DTYPES = frozenset(_TORCH_TO_CODE)


def dtype_code(dtype: torch.dtype) -> str:
    """The format's code for a torch dtype (``torch.bfloat16`` -> ``"BF16"``)."""
    try:
        return _TORCH_TO_CODE[dtype]
    except KeyError:
        raise InputError(
            f"cannot store tensors of dtype {dtype}; supported: {', '.join(map(str, _TORCH_TO_CODE))}"
        ) from None


def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a format code (``"BF16"`` -> ``torch.bfloat16``)."""
    for dtype, known in _TORCH_TO_CODE.items():
        if known == code:
            return dtype
    raise CaptureFormatError(f"unknown dtype code {code!r} in capture; it was written by a newer precdiff?")


def to_storage(tensor: torch.Tensor) -> np.ndarray:
    """A host numpy array holding ``tensor``'s exact bits in its storage dtype (C order)."""
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
