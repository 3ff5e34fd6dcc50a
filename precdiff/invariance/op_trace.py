"""Naming every aten op of a forward: ``<module call>/<overload>#<k>``, e.g.
``model.layers.3.mlp.down_proj/aten.mm.default#0``.

A :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees each op after autograd and composite
decomposition (``F.linear`` arrives as ``aten.mm``/``aten.addmm``), which is the level at which
kernels are chosen. Ops run by a batch-invariant
override (a Python kernel registered below the Python key, which re-enters this mode) are passed
through untraced, and the sink's own slicing runs with the mode off. ``#k`` counts calls of
that overload within one module call, so names repeat across runs exactly when the call sequence does
(:mod:`precdiff.invariance.align` checks that).

Skipped, because their outputs carry no computed numbers or read uninitialised memory: view ops
and ``_unsafe_view`` (aliases of an input already traced), ``empty*`` allocations, ``detach``/``alias``/``lift_fresh``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from precdiff.capture.names import flatten_tensors
from precdiff.invariance.align import CallTree

# sink(tensor_name, scope, op, tensor)
OpSink = Callable[[str, str, str, torch.Tensor], None]

_SKIP_PACKETS = frozenset(
    {
        "detach",
        "alias",
        "lift_fresh",
        "_local_scalar_dense",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "_unsafe_view",
    }
)


def traced(func: Any) -> bool:
    """Whether an aten overload's outputs are compared (see the module docstring)."""
    if getattr(func, "is_view", False):
        return False
    packet = str(func).split(".")[1] if str(func).startswith("aten.") else str(func)
    return packet not in _SKIP_PACKETS


class OpTracer(TorchDispatchMode):
    """Hands every traced op output to ``sink`` under its name, in forward order."""

    def __init__(self, tree: CallTree, sink: OpSink) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        self.tree = tree
        self.sink = sink
        self.counts: Counter[tuple[str, str]] = Counter()
        self.inside = False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.inside:
            # An op run by a Python kernel registered below us (a batch-invariant override) or by the
            # sink itself: part of what is being traced or recorded, not a model op.
            return func(*args, **(kwargs or {}))
        with self.paused():
            out = func(*args, **(kwargs or {}))
            if traced(func):
                scope = self.tree.scope
                op = str(func)
                index = self.counts[(scope, op)]
                self.counts[(scope, op)] += 1
                name = f"{scope}/{op}#{index}"
                self.tree.record_op(name)
                for tensor_name, tensor in flatten_tensors(name, out):
                    self.sink(tensor_name, scope, op, tensor)
        return out

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Ops run inside this block are not traced (module hooks' own slicing and copies)."""
        previous, self.inside = self.inside, True
        try:
            yield
        finally:
            self.inside = previous
