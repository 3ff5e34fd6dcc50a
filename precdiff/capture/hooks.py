"""Temporary forward hooks on every selected module.

``with attach(model, keep, sink): model(...)`` hooks every selected module and removes every hook in
``finally``, also when the forward raises. Each tensor the module outputs (and, with
``save_inputs``, each tensor it receives) is handed to ``sink`` in forward order.

The hooks are attached by :func:`forward_hooks`: one process-wide hook for all modules that have no
forward hooks of their own, instead of one registration per module (hundreds per model, milliseconds
before the first kernel of a capture can start). Python's cyclic garbage collector is paused
meanwhile (:func:`collector_paused`).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils.hooks import RemovableHandle

from precdiff.capture.names import NameFilter, flatten_tensors, input_prefix, occurrence_name
from precdiff.store.format import ROLE_INPUT, ROLE_OUTPUT

# sink(tensor_name, module_name, role, tensor)
Sink = Callable[[str, str, str, torch.Tensor], None]
# before(module_name); after(module_name, args, kwargs, output)
Before = Callable[[str], None]
After = Callable[[str, tuple[Any, ...], dict[str, Any], Any], None]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, then as it was (also after an error).

    A hooked forward allocates thousands of objects that live until the sink writes them (index
    rows, pending entries, alias and producer records). With the collector running, an op-level
    forward of the 8B-shaped model triggered ~16 young collections and, every ten forwards or so, a
    full one over every object of the process (torch and transformers hold hundreds of thousands):
    up to 273 ms in a 270 ms capture on the 2-core CI host. Paused, one young collection remained,
    when the block ended: 4.2 ms per capture in the collector on average against 33.6 ms
    (benchmarks/results/gc_pause_host_cpu_s4.json); :func:`_settle` removes that one too (6.5 ms per
    op-level capture in the collector against none, benchmarks/results/gc_pause_host_cpu_s7.json).
    Memory is unchanged: objects are still freed by reference counting, and a paused capture leaves
    no cyclic garbage (none found afterwards there).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            _settle()
            gc.enable()


def _settle() -> None:
    """Hand what the block allocated to the oldest generation without a collection.

    Left in the youngest one, the first allocation after ``gc.enable`` starts a young collection
    that scans every object the block allocated and still holds (the capture's producer records,
    alias index and pending rows: tens of thousands at op level), only to find them alive. Freezing
    and unfreezing moves them, and the rest, to the oldest generation in O(1) (list splices) and
    zeroes the allocation counts; most of them are freed by reference counting soon after, and full
    collections still examine whatever stays. Not done when the process froze objects itself
    (``gc.freeze``, e.g. before forking workers): unfreezing would hand those back too.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


@contextmanager
def forward_hooks(
    modules: Iterable[tuple[str, nn.Module]],
    *,
    before: Before | None = None,
    after: After | None = None,
    always_call: bool = False,
) -> Iterator[None]:
    """``before(name)`` ahead of, and ``after(name, args, kwargs, output)`` behind, every call of each
    named module, until the block ends; every hook is removed in ``finally``. ``always_call``: ``after``
    runs also when the module raises (then ``kwargs`` is empty and ``output`` None).

    A module that has forward hooks of its own gets its own hooks, registered after them, so that
    ``after`` sees the output they leave. The others share one process-wide hook, which runs before
    any module's own hooks (PyTorch calls the global ones first) and recognises its modules by
    identity: one registration for the whole model, and modules of other models are ignored (a model
    run meanwhile, in any thread, pays a dictionary lookup per module call).
    """
    handles: list[RemovableHandle] = []
    shared: dict[int, str] = {}
    try:
        for name, module in modules:
            if not (module._forward_hooks or module._forward_pre_hooks):
                shared[id(module)] = name
                continue
            if before is not None:
                handles.append(module.register_forward_pre_hook(_bound_before(before, name)))
            if after is not None:
                handles.append(
                    module.register_forward_hook(
                        _bound_after(after, name), with_kwargs=True, always_call=always_call
                    )
                )
        if shared and before is not None:
            handles.append(register_module_forward_pre_hook(_shared_before(before, shared)))
        if shared and after is not None:
            handles.append(
                register_module_forward_hook(
                    _shared_after(after, shared), with_kwargs=True, always_call=always_call
                )
            )
        yield
    finally:
        for handle in handles:
            handle.remove()


# PyTorch calls a hook with (module, args, kwargs, output), or, when the module raised and the hook is
# always called, with (module, args, output=None); a pre-hook's return value would replace the args.
def _bound_before(before: Before, name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        before(name)

    return hook


def _call_after(after: After, name: str, args: tuple[Any, ...], rest: tuple[Any, ...]) -> None:
    kwargs, output = rest if len(rest) == 2 else ({}, rest[0])
    after(name, args, kwargs, output)


def _bound_after(after: After, name: str) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        _call_after(after, name, args, rest)

    return hook


def _shared_before(before: Before, names: dict[int, str]) -> Callable[[nn.Module, tuple[Any, ...]], None]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        name = names.get(id(module))
        if name is not None:
            before(name)

    return hook


def _shared_after(after: After, names: dict[int, str]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        name = names.get(id(module))
        if name is not None:
            _call_after(after, name, args, rest)

    return hook


@contextmanager
def attach(model: nn.Module, keep: NameFilter, sink: Sink, *, save_inputs: bool = False) -> Iterator[int]:
    """Hook every module whose name passes ``keep`` (the root module itself is never hooked).

    Yields:
        The number of modules hooked.
    """
    calls: Counter[str] = Counter()

    def after(module_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        call = calls[module_name]
        calls[module_name] = call + 1
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

    with collector_paused():  # also while the hooks are made and removed: thousands of objects
        selected = [(name, module) for name, module in model.named_modules() if name and keep(name)]
        with forward_hooks(selected, after=after):
            yield len(selected)
