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
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

Payload = TypeVar("Payload")
_Key = tuple[object, ...]


def _view_key(tensor: torch.Tensor) -> _Key | None:
    """Everything that makes two tensors the same elements; ``None`` when it cannot be known."""
    if tensor.numel() == 0 or tensor.device.type == "meta":
        return None
    try:
        storage = tensor.untyped_storage().data_ptr()
        return (
            tensor.device,
            tensor.dtype,
            storage,
            tensor.data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
        )
    except (RuntimeError, NotImplementedError):  # no storage: fake, functional or sparse tensors
        return None


def _version(tensor: torch.Tensor) -> int | None:
    try:
        return int(tensor._version)
    except RuntimeError:  # inference tensors keep no version counter
        return None


@dataclass(frozen=True)
class _Seen(Generic[Payload]):
    ref: weakref.ReferenceType[torch.Tensor]
    version: int
    payload: Payload


class AliasIndex(Generic[Payload]):
    """The tensors captured so far, each with a payload (its name and what was recorded for it)."""

    def __init__(self) -> None:
        self._seen: dict[_Key, _Seen[Payload]] = {}

    def find(self, tensor: torch.Tensor) -> Payload | None:
        """The payload of the earlier tensor that ``tensor`` exactly aliases, else ``None``."""
        key = _view_key(tensor)
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
        key, version = _view_key(tensor), _version(tensor)
        if key is None or version is None:
            return
        try:
            ref = weakref.ref(tensor)
        except TypeError:  # a tensor subclass without weak references
            return
        self._seen[key] = _Seen(ref, version, payload)
