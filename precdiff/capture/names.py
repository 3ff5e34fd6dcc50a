"""Names of captured tensors: the decoder-layer list, the name filter and output flattening.

The primary key of every tensor is the Hugging Face fully-qualified module name from
``named_modules()``. Structured outputs are flattened with stable suffixes:

- a tensor output is named ``<module>``;
- a tuple/list output ``<module>[i]`` (``None`` and non-tensor items are skipped, indices kept);
- a dict / ModelOutput ``<module>[key]``;
- module inputs (``--save-inputs``) ``<module>:input[i]`` / ``<module>:input[kwarg]``;
- the second, third… call of one module in a forward gets ``#1``, ``#2`` after the module name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from precdiff.config import name_filter
from precdiff.errors import ModelLoadError
from precdiff.store.format import layer_index

NameFilter = Callable[[str], bool]
__all__ = [
    "NameFilter",
    "decoder_layers",
    "flatten_tensors",
    "input_prefix",
    "layer_index",
    "name_filter",
    "occurrence_name",
]


def decoder_layers(model: nn.Module) -> tuple[str, int]:
    """Find the decoder-layer list generically: the largest ``nn.ModuleList`` of same-class blocks.

    Returns:
        (fully qualified name of the list, number of layers), e.g. ``("model.layers", 16)``.

    Raises:
        ModelLoadError: the model has no ``ModuleList`` of repeated blocks.
    """
    best: tuple[int, int, str] | None = None  # (layers, parameters, name)
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        classes = Counter(type(child).__name__ for child in module)
        if len(classes) != 1:
            continue
        size = sum(p.numel() for p in module.parameters())
        candidate = (len(module), size, name)
        # Most parameters wins (MoE expert lists are long but live inside one layer); ties by length.
        if best is None or (candidate[1], candidate[0]) > (best[1], best[0]):
            best = candidate
    if best is None:
        raise ModelLoadError(
            f"{type(model).__name__} has no nn.ModuleList of repeated blocks, so its decoder layers "
            "cannot be found; precdiff supports decoder-only causal LMs"
        )
    return best[2], best[0]


def flatten_tensors(prefix: str, value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, tensor)`` for every tensor inside a module's output or input structure."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):  # ModelOutput is a dict subclass (None fields are absent)
        for key, item in value.items():
            yield from flatten_tensors(f"{prefix}[{key}]", item)
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from flatten_tensors(f"{prefix}[{index}]", item)
    # Caches, None and other objects carry no activations to compare.


def input_prefix(module_name: str, key: int | str) -> str:
    """Name prefix of a module's positional (int) or keyword (str) input."""
    return f"{module_name}:input[{key}]"


def occurrence_name(module_name: str, call_index: int) -> str:
    """Name of a module's ``call_index``-th call in one forward (0 = the first, unsuffixed)."""
    return module_name if call_index == 0 else f"{module_name}#{call_index}"
