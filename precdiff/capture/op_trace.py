"""Naming every aten op of a forward, ``<module call>/<overload>#<k>``, and where its inputs came from.

Example name: ``model.layers.3.mlp.down_proj/aten.mm.default#0``. Used by ``capture --level op`` and
by ``invariance --level op``.

A :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees each op after autograd and composite
decomposition (``F.linear`` arrives as ``aten.mm``/``aten.addmm``), which is the level at which
kernels are chosen. Ops run by a batch-invariant override (a Python kernel registered below the Python
key, which re-enters this mode) are passed through untraced, and the sink's own work runs with the
mode off (:meth:`OpTracer.paused`). ``#k`` counts calls of that overload within one module call, so
names repeat across runs exactly when the call sequence does.

Skipped always, because their outputs read uninitialised memory or are no tensor: ``empty*``
allocations and ``_local_scalar_dense``. Skipped unless ``all_ops``, because they compute nothing
(aliases or metadata of a tensor already traced): view ops, ``_unsafe_view``, ``detach``, ``alias``,
``lift_fresh``.

**Input references.** With ``references=True`` every traced op also gets one reference per tensor
argument, in argument order (positional arguments, then keyword arguments; lists such as ``cat``'s
flattened in place): the name of the traced op output that produced the data (a skipped view of it
refers to the same producer), ``parameter <FQN>`` / ``buffer <FQN>`` for the model's own tensors, or
``constant`` for a tensor made outside the traced forward (the input ids). Non-tensor arguments
(scalars, shapes) are not referenced.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from precdiff.capture.names import flatten_tensors, occurrence_name

ROOT = "<root>"
CONSTANT = "constant"
PARAMETER_PREFIX = "parameter "
BUFFER_PREFIX = "buffer "

# sink(tensor_name, scope, op, tensor, input_references)
OpSink = Callable[[str, str, str, torch.Tensor, tuple[str, ...]], None]

_NEVER = frozenset(
    {"_local_scalar_dense", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}
)
_METADATA = frozenset({"detach", "alias", "lift_fresh", "_unsafe_view"})


def _packet(func: Any) -> str:
    text = str(func)
    return text.split(".")[1] if text.startswith("aten.") else text


def traced(func: Any, all_ops: bool = False) -> bool:
    """Whether an aten overload's outputs are recorded (see the module docstring)."""
    packet = _packet(func)
    if packet in _NEVER:
        return False
    if all_ops:
        return True
    return not getattr(func, "is_view", False) and packet not in _METADATA


@dataclass
class _Call:
    children: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)


class CallTree:
    """Tracks the module stack during a forward (pre/post hooks) and records each call's events.

    Module and op names carry per-forward occurrence counters, so a name means the same thing in two
    runs only if the calls leading to it were the same; the tree records, per module call, the ordered
    child-module calls and op names so that callers can check that.
    """

    def __init__(self) -> None:
        self.stack: list[str] = [ROOT]
        self.calls: dict[str, _Call] = {ROOT: _Call()}
        self.counts: Counter[str] = Counter()

    @property
    def scope(self) -> str:
        return self.stack[-1]

    def enter(self, module_name: str) -> None:
        name = occurrence_name(module_name, self.counts[module_name])
        self.counts[module_name] += 1
        self.calls[self.scope].children.append(name)
        self.calls[name] = _Call()
        self.stack.append(name)

    def leave(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def record_op(self, op_name: str) -> None:
        self.calls[self.scope].ops.append(op_name)

    @contextmanager
    def hooked(self, model: nn.Module) -> Iterator[None]:
        """Pre/post hooks on every named module; all removed in ``finally``."""
        handles = []

        def pre(name: str) -> Any:
            return lambda module, args: self.enter(name)

        try:
            for name, module in model.named_modules():
                if name:
                    handles.append(module.register_forward_pre_hook(pre(name)))
                    # always_call: the stack unwinds also when a module raises.
                    handles.append(
                        module.register_forward_hook(
                            lambda module, args, output: self.leave(), always_call=True
                        )
                    )
            yield
        finally:
            for handle in handles:
                handle.remove()


class _Producers:
    """Which traced tensor (or parameter) a tensor object holds the data of, by object identity.

    Keyed by ``id()`` with a weak reference to check that the object is still the same one: ids are
    reused once a tensor is freed, and a stale entry must not name the wrong producer.
    """

    def __init__(self, model: nn.Module | None) -> None:
        self._names: dict[int, tuple[weakref.ref[torch.Tensor], str]] = {}
        if model is not None:
            for name, param in model.named_parameters(remove_duplicate=False):
                self.set(param, PARAMETER_PREFIX + name)
            for name, buffer in model.named_buffers(remove_duplicate=False):
                self.set(buffer, BUFFER_PREFIX + name)

    def set(self, tensor: torch.Tensor, name: str) -> None:
        self._names[id(tensor)] = (weakref.ref(tensor), name)

    def get(self, tensor: torch.Tensor) -> str:
        entry = self._names.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            return CONSTANT
        return entry[1]


def _tensor_args(args: Any, kwargs: Any) -> Iterator[torch.Tensor]:
    for arg in args:
        if isinstance(arg, torch.Tensor):
            yield arg
        elif isinstance(arg, (list, tuple)):
            yield from (item for item in arg if isinstance(item, torch.Tensor))
    if kwargs:
        for arg in kwargs.values():
            if isinstance(arg, torch.Tensor):
                yield arg


class OpTracer(TorchDispatchMode):
    """Hands every traced op output to ``sink`` under its name, in forward order.

    Args:
        tree: the call tree (hooked on the model) that says which module call is running.
        sink: receives ``(tensor name, scope, op, tensor, input references)``.
        all_ops: also trace view and metadata ops.
        references: compute input references (else the sink gets ``()``); needs ``model`` to name
            parameters.
        model: the traced model, whose parameters and buffers references name.
    """

    def __init__(
        self,
        tree: CallTree,
        sink: OpSink,
        *,
        all_ops: bool = False,
        references: bool = False,
        model: nn.Module | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        self.tree = tree
        self.sink = sink
        self.all_ops = all_ops
        self.counts: Counter[tuple[str, str]] = Counter()
        self.inside = False
        self.producers = _Producers(model) if references else None
        self.traced_ops = 0
        # overload -> its name if traced, else None; cached because str(func) costs microseconds
        self._decisions: dict[Any, str | None] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.inside:
            # An op run by a Python kernel registered below us (a batch-invariant override) or by the
            # sink itself: part of what is being traced or recorded, not a model op.
            return func(*args, **(kwargs or {}))
        self.inside = True
        try:
            out = func(*args, **(kwargs or {}))
            if func in self._decisions:
                op = self._decisions[func]
            else:
                op = self._decisions[func] = str(func) if traced(func, self.all_ops) else None
            if op is not None:
                self._record(op, args, kwargs, out)
            elif self.producers is not None and isinstance(out, torch.Tensor):
                # A skipped view or alias: its data is its first input's, so it refers to the same producer.
                first = next(_tensor_args(args, kwargs), None)
                if first is not None:
                    self.producers.set(out, self.producers.get(first))
        finally:
            self.inside = False
        return out

    def _record(self, op: str, args: Any, kwargs: Any, out: Any) -> None:
        scope = self.tree.scope
        index = self.counts[(scope, op)]
        self.counts[(scope, op)] += 1
        name = f"{scope}/{op}#{index}"
        self.tree.record_op(name)
        self.traced_ops += 1
        producers = self.producers
        inputs: tuple[str, ...] = ()
        if producers is not None:
            inputs = tuple(producers.get(t) for t in _tensor_args(args, kwargs))
        # The sink's statistics and copies run with the dispatch modes off: through this mode, each of
        # their ops would pay the Python dispatch round trip only to be passed through.
        with _disable_current_modes():
            for tensor_name, tensor in flatten_tensors(name, out):
                if producers is not None:
                    producers.set(tensor, tensor_name)
                self.sink(tensor_name, scope, op, tensor, inputs)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Ops run inside this block are not traced (module hooks' own slicing and copies); the
        dispatch modes are off meanwhile, so they do not even pass through this one."""
        previous, self.inside = self.inside, True
        try:
            with _disable_current_modes():
                yield
        finally:
            self.inside = previous
