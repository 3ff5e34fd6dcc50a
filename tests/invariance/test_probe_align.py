"""Locating the probe's slice in batched tensors, and the call-tree check for data-dependent control flow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from precdiff.capture.op_trace import CallTree
from precdiff.invariance.align import Layout, diverged, probe_slice, suspect_reason

LEFT = Layout(batch=3, length=7, slot=1, offset=2, probe_length=5)  # probe in row 1, columns 2..6


def _marked(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.arange(int(torch.tensor(shape).prod())).reshape(shape)


def test_batch_major_with_left_padding_slices_row_and_sequence_dims() -> None:
    hidden = _marked((3, 7, 4))
    piece, whole = probe_slice(hidden, (1, 5, 4), LEFT)  # type: ignore[misc]
    assert not whole and torch.equal(piece, hidden[1:2, 2:7])
    scores = _marked((3, 2, 7, 7))  # [B, heads, L, L]: both sequence dims narrowed
    piece, _ = probe_slice(scores, (1, 2, 5, 5), LEFT)  # type: ignore[misc]
    assert torch.equal(piece, scores[1:2, :, 2:7, 2:7])


def test_flattened_tokens_take_the_probe_rows() -> None:
    flat = _marked((21, 4))  # [B*L, hidden], e.g. the MoE experts' input
    piece, whole = probe_slice(flat, (5, 4), LEFT)  # type: ignore[misc]
    assert not whole and torch.equal(piece, flat[7 + 2 : 7 + 2 + 5])


def test_batch_independent_tensor_is_taken_whole() -> None:
    cos = _marked((1, 5, 8))
    piece, whole = probe_slice(cos, (1, 5, 8), Layout(batch=4, length=5, slot=2, offset=0, probe_length=5))  # type: ignore[misc]
    assert whole and piece is cos


@pytest.mark.parametrize(
    "shape, ref, reason",
    [
        ((9, 4), (3, 4), "dim 0: 9 vs 3"),  # tokens routed to one expert: their count depends on the batch
        ((3, 7), (1, 5, 4), "rank 2 vs 3"),
    ],
)
def test_unalignable_shapes_say_why(shape: tuple[int, ...], ref: tuple[int, ...], reason: str) -> None:
    got = probe_slice(torch.zeros(shape), ref, LEFT)
    assert isinstance(got, str) and reason in got


class _Loop(nn.Module):
    """Calls its child a data-dependent number of times (like an MoE layer over the experts hit)."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(x.shape[0]):
            x = self.act(x)
        return x


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.loop = _Loop()
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.loop(x))


def _tree(batch: int) -> CallTree:
    net, tree = _Net(), CallTree()
    with tree.hooked(net):
        net(torch.ones(batch, 2))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    return tree


def test_call_tree_flags_names_under_a_diverging_call() -> None:
    children, ops = diverged(_tree(1), _tree(3))
    assert "loop" in children
    assert suspect_reason("loop.act", "loop.act", children, ops) is not None
    assert suspect_reason("loop.act#1", "loop.act", children, ops) is not None
    assert suspect_reason("loop", "loop", children, ops) is None  # its own output is still comparable
    assert suspect_reason("out", "out", children, ops) is None
    assert diverged(_tree(2), _tree(2)) == (set(), set())
