"""Exact aliases among the tensors of one forward: the same memory, seen through the same view.

About a tenth of a module-level llama capture is the same tensor seen twice: ``self_attn[0]`` *is*
``o_proj``'s output, ``mlp`` is ``down_proj``'s, ``model[last_hidden_state]`` is ``model.norm``'s. A
tensor is an alias of one captured earlier when both have the same storage, data pointer, storage
offset, shape, strides, dtype and device, and neither was modified in place since the earlier one was
captured (``tensor._version``, the in-place write counter views share, is unchanged). The earlier
tensor is held by a weak reference and must still be alive: freed memory that a new tensor reuses at
the same address is never taken for an alias. Tensors without a version counter (inference-mode
tensors) or without real storage (meta, fake) are never aliases.
"""

from __future__ import annotations

import weakref
from typing import Generic, NamedTuple, TypeVar

import torch

Payload = TypeVar("Payload")
# (data pointer, storage offset, shape, strides, dtype, device): the storage's address follows from the
# first two and the dtype's size, so it is not asked for (a storage object per call costs ~0.8 µs).
_Key = tuple[object, ...]


def _view_key(tensor: torch.Tensor) -> _Key | None:
    """Everything that makes two tensors the same elements; ``None`` when it cannot be known.

    Runs for every captured tensor (thousands per op-level forward): a handful of C calls, no Python
    conversions (``torch.Size`` hashes and compares as the tuple it is).
    """
    shape = tensor.shape
    if 0 in shape or tensor.is_meta:  # no elements, or no memory
        return None
    try:
        return (
            tensor.data_ptr(),
            tensor.storage_offset(),
            shape,
            tensor.stride(),
            tensor.dtype,
            tensor.device,
        )
    except (RuntimeError, NotImplementedError):  # no storage: fake, functional or sparse tensors
        return None


def _version(tensor: torch.Tensor) -> int | None:
    try:
        return int(tensor._version)
    except RuntimeError:  # inference tensors keep no version counter
        return None


class _Seen(NamedTuple, Generic[Payload]):
    ref: weakref.ReferenceType[torch.Tensor]
    version: int
    payload: Payload


class AliasIndex(Generic[Payload]):
    """The tensors captured so far, each with a payload (its name and what was recorded for it)."""

    def __init__(self) -> None:
        self._seen: dict[_Key, _Seen[Payload]] = {}
        # The tensor last asked about in find(), weakly, with its key: the sink adds that same tensor
        # next when it is no alias, and nothing in between changes its view (only set_ could).
        self._last: tuple[weakref.ReferenceType[torch.Tensor], _Key | None] | None = None

    def find(self, tensor: torch.Tensor) -> Payload | None:
        """The payload of the earlier tensor that ``tensor`` exactly aliases, else ``None``."""
        key = _view_key(tensor)
        try:
            self._last = (weakref.ref(tensor), key)
        except TypeError:  # a tensor subclass without weak references
            self._last = None
        seen = self._seen.get(key) if key is not None else None
        if seen is None:
            return None
        earlier = seen.ref()
        if earlier is None:  # freed: its address may now hold anything
            del self._seen[key]  # type: ignore[arg-type]  # key is not None when seen is
            return None
        # Re-checked on the live tensor: its view cannot have changed (set_ would), but its data can.
        if _view_key(earlier) != key or _version(earlier) != seen.version or _version(tensor) != seen.version:
            return None
        return seen.payload

    def add(self, tensor: torch.Tensor, payload: Payload) -> None:
        """Remember ``tensor`` (weakly) as captured now, with its version at this moment."""
        last, self._last = self._last, None
        if last is not None and last[0]() is tensor:
            ref, key = last
        else:
            key = _view_key(tensor)
            try:
                ref = weakref.ref(tensor)
            except TypeError:  # a tensor subclass without weak references
                return
        version = _version(tensor)
        if key is None or version is None:
            return
        self._seen[key] = _Seen(ref, version, payload)
