"""The cyclic garbage collector is paused while hooks are attached, and restored as it was, also when
the forward raises."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from precdiff.capture.hooks import attach, collector_paused
from precdiff.capture.op_trace import CallTree


class _Probe(nn.Module):
    """Records whether the collector was enabled during its forward; raises when asked to."""

    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.inner = nn.Linear(2, 2)
        self.fail = fail
        self.enabled_inside: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.enabled_inside.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("boom")
        return self.inner(x)


@pytest.fixture
def collector_state() -> Iterator[None]:
    """Whatever a test does to the collector, the next test finds it as it was."""
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _sink(name: str, module: str, role: str, tensor: torch.Tensor) -> None:
    pass


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("enabled_before", [True, False])
def test_attach_pauses_the_collector_and_restores_it(
    collector_state: None, fail: bool, enabled_before: bool
) -> None:
    (gc.enable if enabled_before else gc.disable)()
    model = _Probe(fail)
    try:
        with attach(model, lambda name: True, _sink):
            model(torch.ones(1, 2))
    except RuntimeError as exc:
        assert fail and str(exc) == "boom"
    else:
        assert not fail
    assert model.enabled_inside == [False]
    assert gc.isenabled() is enabled_before


@pytest.mark.parametrize("enabled_before", [True, False])
def test_call_tree_hooks_pause_the_collector_and_restore_it(
    collector_state: None, enabled_before: bool
) -> None:
    (gc.enable if enabled_before else gc.disable)()
    model = _Probe(fail=True)
    with pytest.raises(RuntimeError, match="boom"), CallTree().hooked(model):
        model(torch.ones(1, 2))
    assert model.enabled_inside == [False]
    assert gc.isenabled() is enabled_before


def test_nested_pauses_restore_the_outer_state(collector_state: None) -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block found it off
    assert gc.isenabled()


def test_resuming_moves_the_blocks_objects_out_of_the_youngest_generation(collector_state: None) -> None:
    """What the block allocated and still holds is not scanned by a young collection on resuming: it
    goes to the oldest generation at once (allocation counts zeroed, nothing left frozen), and an
    unreachable cycle made inside is still collected by the next full collection."""
    gc.enable()
    gc.collect()
    with collector_paused():
        held = [[index] for index in range(5000)]  # tracked containers, still held afterwards
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.get_count()[0] > len(held)
    assert gc.get_count()[0] < 100
    assert gc.get_freeze_count() == 0
    assert not any(held[0] is item for item in gc.get_objects(generation=0))
    assert any(held[0] is item for item in gc.get_objects(generation=2))
    assert gc.collect() >= 1  # the cycle


def test_objects_the_process_froze_stay_frozen(collector_state: None) -> None:
    """A process that froze objects itself (gc.freeze before forking workers) keeps them frozen:
    resuming then only re-enables the collector."""
    gc.enable()
    mine = [[1], [2]]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            held = [[index] for index in range(1000)]
        assert gc.get_freeze_count() == frozen
        assert not any(mine[0] is item for item in gc.get_objects())  # still in the frozen generation
        assert held
    finally:
        gc.unfreeze()
    assert mine
