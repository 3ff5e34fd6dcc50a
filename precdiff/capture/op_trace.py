"""Naming every aten op of a forward, ``<module call>/<overload>#<k>``, and where its inputs came from.

Example name: ``model.layers.3.mlp.down_proj/aten.mm.default#0``. Used by ``capture --level op`` and
by ``invariance --level op``.

A :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees each op after autograd and composite
decomposition (``F.linear`` arrives as ``aten.mm``/``aten.addmm``), which is the level at which
kernels are chosen. Ops run by a batch-invariant override (a Python kernel registered below the Python
key, which re-enters this mode) are passed through untraced, and the sink's own work runs with the
mode off (:meth:`OpTracer.paused`). ``#k`` counts calls of that overload within one module call, so
names repeat across runs exactly when the call sequence does.

**Host time.** At op level on a GPU the forward is bound by this module's Python per op (issue 9), so
the per-op path keeps to dictionary look-ups and C calls: each overload's name and kind are decided
once (:class:`OpTracer`'s cache), references are found by ``id()``, and the dispatch modes below are
switched off for the sink only when there are any (inside ``__torch_dispatch__`` torch has already
taken this mode off its stack, so usually there are none).

Skipped always, because their outputs read uninitialised memory or are no tensor: ``empty*``
allocations and ``_local_scalar_dense``. Skipped unless ``all_ops``, because they compute nothing
(aliases or metadata of a tensor already traced): view ops, ``_unsafe_view``, ``detach``, ``alias``,
``lift_fresh``.

**Input references.** With ``references=True`` every traced op also gets one reference per tensor
argument, in argument order (positional arguments, then keyword arguments; lists such as ``cat``'s
flattened in place): the name of the traced op output that produced the data (a skipped view of it
refers to the same producer), ``parameter <FQN>`` / ``buffer <FQN>`` for the model's own tensors, or
``constant`` for a tensor made outside the traced forward (the input ids). Non-tensor arguments
(scalars, shapes) are not referenced; with them, the sink also gets the op's full call
(:class:`~precdiff.capture.op_call.OpCall`: non-tensor arguments, and for each tensor input the
producer's layout and the chain of skipped view ops between producer and op), which ``replay`` uses to
re-run the op.
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
from torch._C import _len_torch_dispatch_stack, _pop_torch_dispatch_stack, _push_on_torch_dispatch_stack
from torch._ops import _len_torch_dispatch_stack_pre_dispatch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from precdiff.capture.hooks import collector_paused, forward_hooks
from precdiff.capture.names import flatten_tensors, occurrence_name
from precdiff.capture.op_call import CONSTANT, Base, OpCall, Step, dtype_name

ROOT = "<root>"
PARAMETER_PREFIX = "parameter "
BUFFER_PREFIX = "buffer "

# sink(tensor_name, scope, op, tensor, input_references, call); call is None without references
OpSink = Callable[[str, str, str, torch.Tensor, tuple[str, ...], OpCall | None], None]

# torch.compiler.set_stance (torch >= 2.6); without it torch keeps its Dynamo guard on every op.
_FORCE_EAGER: Any = getattr(torch.compiler, "set_stance", None)

_NEVER = frozenset(
    {"_local_scalar_dense", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}
)
_METADATA = frozenset({"detach", "alias", "lift_fresh", "_unsafe_view"})

# What a reference resolves to: (reference, base layout, view steps since the producer).
_Found = tuple[str, Base | None, tuple[Step, ...]]
_Entry = tuple["weakref.ref[torch.Tensor]", _Found]  # the tensor, weakly, and what it resolves to
_UNKNOWN: _Found = (CONSTANT, None, ())


def _packet(func: Any) -> str:
    text = str(func)
    return text.split(".")[1] if text.startswith("aten.") else text


def _writes(func: Any) -> bool:
    """Whether an op writes to one of its arguments (in-place and ``out=`` overloads)."""
    schema = getattr(func, "_schema", None)
    return bool(schema is not None and schema.is_mutable)


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

    def enter(self, module_name: str) -> None:
        count = self.counts.get(module_name, 0)
        self.counts[module_name] = count + 1
        name = occurrence_name(module_name, count)
        self.calls[self.stack[-1]].children.append(name)
        self.calls[name] = _Call()
        self.stack.append(name)

    def leave(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    @contextmanager
    def hooked(self, model: nn.Module) -> Iterator[None]:
        """Pre/post hooks on every named module (capture/hooks.py's :func:`forward_hooks`); all
        removed in ``finally``. The cyclic garbage collector is paused meanwhile."""

        def leave(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            self.leave()

        with collector_paused():  # hooks.collector_paused says why
            modules = [(name, module) for name, module in model.named_modules() if name]
            # always_call: the stack unwinds also when a module raises.
            with forward_hooks(modules, before=self.enter, after=leave, always_call=True):
                yield


class _Producers:
    """Which traced tensor (or parameter) a tensor object holds the data of, by object identity, and
    how to rebuild it from that producer: the producer's layout and the view ops applied since.

    Keyed by ``id()`` with a weak reference to check that the object is still the same one: ids are
    reused once a tensor is freed, and a stale entry must not name the wrong producer.
    """

    def __init__(self, model: nn.Module | None) -> None:
        self._names: dict[int, _Entry] = {}
        if model is not None:
            for name, param in model.named_parameters(remove_duplicate=False):
                self.set_output(param, PARAMETER_PREFIX + name, dtype=True)
            for name, buffer in model.named_buffers(remove_duplicate=False):
                self.set_output(buffer, BUFFER_PREFIX + name, dtype=True)

    def set_output(self, tensor: torch.Tensor, name: str, dtype: bool = False) -> None:
        """``tensor`` is the data of ``name`` itself (an op output, a parameter or a buffer)."""
        base: Base | None = None
        offset = int(tensor.storage_offset())
        if offset or not tensor.is_contiguous():
            base = (tuple(tensor.stride()), offset, None)
        if dtype:  # parameters and buffers have no index row that would say their dtype
            base = (base[0] if base else None, offset, dtype_name(tensor.dtype))
        self._names[id(tensor)] = (weakref.ref(tensor), (name, base, ()))

    def set_view(self, tensor: torch.Tensor, source: torch.Tensor, step: Step) -> None:
        """``tensor`` is ``step`` (a skipped view or alias op) applied to ``source``."""
        name, base, steps = self.lookup(source)
        self._names[id(tensor)] = (weakref.ref(tensor), (name, base, (*steps, step)))

    def lookup(self, tensor: torch.Tensor) -> _Found:
        entry = self._names.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            return _UNKNOWN
        return entry[1]

    def lookup_all(self, args: Any, kwargs: Any) -> list[_Found]:
        """:meth:`lookup` of every tensor argument, in :func:`_tensor_args` order (one loop, no
        generator: this runs for every traced op)."""
        names = self._names
        found: list[_Found] = []
        for arg in args:
            if isinstance(arg, torch.Tensor):
                entry = names.get(id(arg))
                found.append(_UNKNOWN if entry is None or entry[0]() is not arg else entry[1])
            elif isinstance(arg, (list, tuple)):
                found += [self.lookup(item) for item in arg if isinstance(item, torch.Tensor)]
        if kwargs:
            found += [self.lookup(arg) for arg in kwargs.values() if isinstance(arg, torch.Tensor)]
        return found


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
        before_write: called before every op that writes to one of its arguments (in-place and
            ``out=`` ops): a sink whose summaries of earlier outputs are still to be launched
            launches them first.
    """

    def __init__(
        self,
        tree: CallTree,
        sink: OpSink,
        *,
        all_ops: bool = False,
        references: bool = False,
        model: nn.Module | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        self.tree = tree
        self.sink = sink
        self.all_ops = all_ops
        self.counts: Counter[tuple[str, str]] = Counter()
        self.inside = False
        self.producers = _Producers(model) if references else None
        self.traced_ops = 0
        self._pre_dispatch = False  # any pre-dispatch mode on when tracing began (__enter__)
        self._stance: Any = None  # the compiler's stance while tracing
        self.before_write = before_write
        # id(overload) -> (the overload, kept alive so that its id stays its own; its name; traced?; a
        # view to follow?; writes to an argument?). Decided once per overload: str(func) costs
        # microseconds, and OpOverload hashes in Python, an id in C.
        self._decisions: dict[int, tuple[Any, str, bool, bool, bool]] = {}

    def _decide(self, func: Any) -> tuple[Any, str, bool, bool, bool]:
        is_traced = traced(func, self.all_ops)
        # Skipped allocations (empty_like) hold no data of their input: not views of it.
        follow = not is_traced and _packet(func) not in _NEVER
        writes = self.before_write is not None and _writes(func)
        decision = self._decisions[id(func)] = (func, str(func), is_traced, follow, writes)
        return decision

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.inside:
            # An op run by a Python kernel registered below us (a batch-invariant override) or by the
            # sink itself: part of what is being traced or recorded, not a model op.
            return func(*args, **(kwargs or {}))
        self.inside = True
        try:
            decision = self._decisions.get(id(func)) or self._decide(func)
            if decision[4] and self.before_write is not None:
                self.before_write()
            out = func(*args, **(kwargs or {}))
            if decision[2]:
                self._record(decision[1], args, kwargs, out)
            elif decision[3] and self.producers is not None:
                self._view(decision[1], args, kwargs, out)
        finally:
            self.inside = False
        return out

    def _view(self, op: str, args: Any, kwargs: Any, out: Any) -> None:
        """A skipped view or alias: its data is its first input's, so it refers to the same producer,
        one view step further."""
        assert self.producers is not None
        # Views take their base first; anything else is searched like the references are.
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if first is None:
            first = next(_tensor_args(args, kwargs), None)
        if first is None:
            return
        rest = tuple(args[1:]) if args and args[0] is first else None
        if isinstance(out, torch.Tensor):
            self.producers.set_view(out, first, (op, rest, kwargs, None))
        elif isinstance(out, (list, tuple)):  # split, unbind: several views
            for item, tensor in enumerate(out):
                if isinstance(tensor, torch.Tensor):
                    self.producers.set_view(tensor, first, (op, rest, kwargs, item))

    def _record(self, op: str, args: Any, kwargs: Any, out: Any) -> None:
        tree = self.tree
        scope = tree.stack[-1]
        key = (scope, op)
        index = self.counts.get(key, 0)
        self.counts[key] = index + 1
        name = f"{scope}/{op}#{index}"
        tree.calls[scope].ops.append(name)
        self.traced_ops += 1
        producers = self.producers
        inputs: tuple[str, ...] = ()
        call = None
        if producers is not None:
            found = producers.lookup_all(args, kwargs)
            inputs = tuple([entry[0] for entry in found])
            call = OpCall(op, args, kwargs, found)
        # The sink's statistics and copies run with the dispatch modes off: through a mode, each of
        # their ops would pay the Python dispatch round trip only to be passed through. Torch took this
        # mode off the stack while it runs, so there is anything to switch off only under other modes.
        if _len_torch_dispatch_stack() or self._pre_dispatch:
            with _disable_current_modes():
                self._emit(name, scope, op, out, inputs, call)
        else:
            self._emit(name, scope, op, out, inputs, call)

    def _emit(
        self, name: str, scope: str, op: str, out: Any, inputs: tuple[str, ...], call: OpCall | None
    ) -> None:
        producers = self.producers
        if isinstance(out, torch.Tensor):  # flatten_tensors' first case, without its generator
            if producers is not None:
                producers.set_output(out, name)
            self.sink(name, scope, op, out, inputs, call)
            return
        for tensor_name, tensor in flatten_tensors(name, out):
            if producers is not None:
                producers.set_output(tensor, tensor_name)
            self.sink(tensor_name, scope, op, tensor, inputs, call)

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """Whether torch wraps ``__torch_dispatch__`` so that TorchDynamo never compiles its frames
        (a few µs per op, every op). Not needed where the traced forward runs with the compiler's
        stance "force_eager" (:meth:`__enter__`): then no compiled function runs and no frame is
        handed to Dynamo. Asked by torch when the class is made."""
        return _FORCE_EAGER is None

    def __enter__(self) -> OpTracer:
        # Pre-dispatch modes (torch.export's tracing) are pushed around a whole program, not inside a
        # forward: asked once here, not per op (the question is Python code in torch, ~1 µs).
        self._pre_dispatch = bool(_len_torch_dispatch_stack_pre_dispatch())
        # Functions compiled with torch.compile run their Python, eagerly: their ops are traced too.
        self._stance = _FORCE_EAGER("force_eager") if _FORCE_EAGER is not None else None
        if self._stance is not None:
            self._stance.__enter__()
        try:
            super().__enter__()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        except BaseException:
            if self._stance is not None:
                self._stance.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)  # type: ignore[no-untyped-call]
        finally:
            if self._stance is not None:
                self._stance.__exit__(*exc)

    def paused(self) -> _Paused:
        """Ops run inside this block are not traced (module hooks' own slicing and copies); the
        dispatch modes are off meanwhile, so they do not even pass through this one. A plain class,
        not a generator: it runs at every module call."""
        return _Paused(self)


class _Paused:
    """:meth:`OpTracer.paused`: what ``_disable_current_modes`` does when there are no pre-dispatch
    modes (its checks are all about those), for a fraction of its cost."""

    __slots__ = ("_disabled", "_modes", "_previous", "_tracer")

    def __init__(self, tracer: OpTracer) -> None:
        self._tracer = tracer
        self._modes: list[Any] = []
        self._previous = False
        self._disabled: Any = None

    def __enter__(self) -> None:
        tracer = self._tracer
        self._previous, tracer.inside = tracer.inside, True
        if tracer._pre_dispatch:
            self._disabled = _disable_current_modes()
            self._disabled.__enter__()
            return
        self._modes = [_pop_torch_dispatch_stack(None) for _ in range(_len_torch_dispatch_stack())]

    def __exit__(self, *exc: object) -> None:
        try:
            if self._disabled is not None:
                self._disabled.__exit__(*exc)
            for mode in reversed(self._modes):
                _push_on_torch_dispatch_stack(mode)
        finally:
            self._tracer.inside = self._previous
