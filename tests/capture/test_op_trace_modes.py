"""The op tracer switches the dispatch modes off for its sink's own ops, also under another mode, and
only the model's ops reach a mode below it."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from precdiff.capture.op_trace import CallTree, OpTracer


class _Seen(TorchDispatchMode):
    """Counts the ops that reach it, by overload name."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


class _Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 3.0).view(-1)


def _sink_runs_ops(*args: Any) -> None:
    torch.ones(2).add(1.0)  # the sink's own work (statistics): aten.ones and aten.add


def test_sink_and_paused_ops_reach_no_mode_below() -> None:
    model = torch.nn.Sequential(_Scale())
    outer, tree, x = _Seen(), CallTree(), torch.ones(2, 2)
    tracer = OpTracer(tree, _sink_runs_ops, references=True, model=model)
    with outer, tree.hooked(model), tracer:
        model(x)
        with tracer.paused():
            torch.zeros(3).sub(1.0)  # a module hook's own work
        assert torch._C._len_torch_dispatch_stack() == 2  # both modes back in place
    assert outer.ops == Counter({"aten.mul.Tensor": 1, "aten.view.default": 1})
    assert tree.calls["0"].ops == ["0/aten.mul.Tensor#0"]
    assert tracer.traced_ops == 1


def test_sink_ops_are_not_traced_without_other_modes() -> None:
    model = torch.nn.Sequential(_Scale())
    tree, x = CallTree(), torch.ones(2, 2)
    names: list[str] = []

    def sink(name: str, *args: Any) -> None:
        names.append(name)
        _sink_runs_ops()

    with tree.hooked(model), OpTracer(tree, sink, references=True, model=model) as tracer:
        model(x)
        with tracer.paused():
            torch.zeros(3).sub(1.0)
        torch.ones(1).neg()  # traced again after the pause, at the root
    assert names == ["0/aten.mul.Tensor#0", "<root>/aten.ones.default#0", "<root>/aten.neg.default#0"]
    assert tracer.traced_ops == 3


class _InPlace(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        y.add_(1.0)  # writes to an output handed to the sink earlier
        z = torch.empty_like(y)
        torch.mul(y, 3.0, out=z)
        return z.neg()


def test_before_write_runs_before_every_op_that_writes_to_an_argument() -> None:
    """A sink that summarises later (shared launches) must get to read each output before any op
    writes to it: before_write runs before the in-place and ``out=`` ops, and only those."""
    model = torch.nn.Sequential(_InPlace())
    tree, x = CallTree(), torch.ones(2)
    outputs: list[torch.Tensor] = []
    seen_at_write: list[list[float]] = []

    def sink(name: str, scope: str, op: str, tensor: torch.Tensor, *args: Any) -> None:
        outputs.append(tensor)

    def before_write() -> None:
        seen_at_write.append([float(t.sum()) for t in outputs])

    with tree.hooked(model), OpTracer(tree, sink, model=model, before_write=before_write):
        model(x)
    assert tree.calls["0"].ops == [
        "0/aten.mul.Tensor#0",
        "0/aten.add_.Tensor#0",
        "0/aten.mul.out#0",
        "0/aten.neg.default#0",
    ]
    # The add_ sees y as the multiply left it (2 + 2); the out= multiply sees y after the add_.
    assert seen_at_write == [[4.0], [6.0, 6.0]]


def test_ops_of_a_module_s_own_pre_hook_stay_in_the_caller_s_scope() -> None:
    """The call tree enters a module after the module's own forward pre-hooks, as a hook registered
    on the module after them would: ops those hooks run belong to the caller. Modules without hooks
    of their own share one process-wide hook, which PyTorch would run before theirs."""
    model = torch.nn.Sequential(_Scale(), _Scale())
    doubling = model[1].register_forward_pre_hook(lambda module, args: (args[0] * 2.0,))
    tree, names, x = CallTree(), [], torch.ones(2, 2)
    try:
        with tree.hooked(model), OpTracer(tree, lambda name, *_: names.append(name)):
            model(x)
    finally:
        doubling.remove()
    assert names == ["0/aten.mul.Tensor#0", "<root>/aten.mul.Tensor#0", "1/aten.mul.Tensor#0"]


class _Raises(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("caught by the caller")


class _Recovers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bad, self.scale = _Raises(), _Scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(ValueError):
            self.bad(x)
        return self.scale(x)


def test_the_call_tree_unwinds_a_module_that_raised() -> None:
    """A module that raises leaves the stack (the shared post-hook is always called), so the calls
    after it are scoped under the caller, not under the module that failed."""
    model, tree = _Recovers(), CallTree()
    with tree.hooked(model):
        model(torch.ones(2, 2))
    assert tree.stack == ["<root>"]
    assert tree.calls["<root>"].children == ["bad", "scale"]


def test_compiled_functions_run_eagerly_under_the_tracer_and_the_stance_comes_back() -> None:
    """A function compiled with torch.compile (compiled once before) runs its Python eagerly while
    tracing, so its ops are traced and no frame goes to TorchDynamo (the tracer's __torch_dispatch__
    has no Dynamo guard of its own); the compiler's stance is restored afterwards, also after an error."""
    import torch._dynamo.eval_frame as eval_frame

    compiles: list[int] = []

    def backend(graph: torch.fx.GraphModule, example: Any) -> Any:
        compiles.append(1)
        return graph.forward

    @torch.compile(backend=backend)
    def double_sine(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x) * 2.0

    x = torch.ones(3)
    expected = double_sine(x)
    assert compiles == [1]
    names: list[str] = []
    tree, model = CallTree(), torch.nn.Sequential()
    with OpTracer(tree, lambda name, *_: names.append(name), references=True, model=model):
        assert eval_frame._stance.stance == "force_eager"
        got = double_sine(x)
    torch.testing.assert_close(got, expected)
    assert names == ["<root>/aten.sin.default#0", "<root>/aten.mul.Tensor#0"]
    assert eval_frame._stance.stance == "default" and compiles == [1]
    try:
        with OpTracer(tree, lambda *_: None, references=True, model=model):
            raise KeyError("the forward failed")
    except KeyError:
        pass
    assert eval_frame._stance.stance == "default"
    assert torch._C._len_torch_dispatch_stack() == 0
