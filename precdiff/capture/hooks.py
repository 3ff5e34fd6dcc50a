"""Temporary forward hooks on every selected module.

``with attach(model, keep, sink): model(...)`` registers one forward hook per selected module and
removes every handle in ``finally``, also when the forward raises. Each tensor the module outputs
(and, with ``save_inputs``, each tensor it receives) is handed to ``sink`` in forward order.

Python's cyclic garbage collector is paused meanwhile (:func:`collector_paused`).
"""

from __future__ import annotations

import gc
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
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, then as it was (also after an error).

    A hooked forward allocates thousands of objects that live until the sink writes them (index
    rows, pending entries, alias and producer records). With the collector running, an op-level
    forward of the 8B-shaped model triggered ~16 young collections and, every ten forwards or so, a
    full one over every object of the process (torch and transformers hold hundreds of thousands):
    up to 273 ms in a 270 ms capture on the 2-core CI host. Paused, one young collection remains, when
    the block ends: 4.2 ms per capture in the collector on average against 33.6 ms
    (benchmarks/results/gc_pause_host_cpu_s4.json). Memory is unchanged: objects are still freed by
    reference counting, and a paused capture leaves no cyclic garbage (none found afterwards there).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

    with collector_paused():  # also while the hooks are made and removed: thousands of objects
        try:
            for module_name, module in model.named_modules():
                if module_name and keep(module_name):
                    handles.append(module.register_forward_hook(make_hook(module_name), with_kwargs=True))
            yield len(handles)
        finally:
            for handle in handles:
                handle.remove()
