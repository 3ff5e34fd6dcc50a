"""Temporary forward hooks on every selected module.

``with attach(model, keep, sink): model(...)`` registers one forward hook per selected module and
removes every handle in ``finally``, also when the forward raises. Each tensor the module outputs
(and, with ``save_inputs``, each tensor it receives) is handed to ``sink`` in forward order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from precdiff.capture.names import NameFilter, flatten_tensors, input_prefix, occurrence_name
from precdiff.store.format import ROLE_INPUT, ROLE_OUTPUT

# sink(tensor_name, module_name, role, tensor)
Sink = Callable[[str, str, str, torch.Tensor], None]


@contextmanager
def attach(model: nn.Module, keep: NameFilter, sink: Sink, *, save_inputs: bool = False) -> Iterator[int]:
    """Hook every module whose name passes ``keep`` (the root module itself is never hooked).

    Yields:
        The number of modules hooked.
    """
    handles: list[RemovableHandle] = []
    calls: Counter[str] = Counter()

    def make_hook(module_name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            call = calls[module_name]
            calls[module_name] += 1
            name = occurrence_name(module_name, call)
            if save_inputs:
                for index, arg in enumerate(args):
                    for tensor_name, tensor in flatten_tensors(input_prefix(name, index), arg):
                        sink(tensor_name, module_name, ROLE_INPUT, tensor)
                for key, arg in kwargs.items():
                    for tensor_name, tensor in flatten_tensors(input_prefix(name, key), arg):
                        sink(tensor_name, module_name, ROLE_INPUT, tensor)
            for tensor_name, tensor in flatten_tensors(name, output):
                sink(tensor_name, module_name, ROLE_OUTPUT, tensor)

        return hook

    try:
        for module_name, module in model.named_modules():
            if module_name and keep(module_name):
                handles.append(module.register_forward_hook(make_hook(module_name), with_kwargs=True))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()
