"""Locating the probe's part of a tensor from a batched run, and the module call tree.

**Slicing rules** (``probe_slice``). The reference is the same tensor from the probe-alone run
(batch 1, probe length ``T``). In a batched run the batch has ``B`` rows padded to length ``L``, the
probe sits in row ``p`` and its first token at column ``o`` (``o > 0`` only with left padding):

1. leading dim ``B`` where the reference has 1 (``[B, ...]``): take row ``p``;
2. leading dim ``B*L`` where the reference has ``T`` (flattened tokens, e.g. MoE ``[tokens, hidden]``):
   take rows ``p*L + o .. p*L + o + T``;
3. otherwise the tensor is taken whole: it may be batch independent (rotary cos/sin built from
   shared position ids), or it may summarise the whole batch (a histogram of expert choices over all
   tokens). The caller cannot tell which, so a *whole* tensor that differs is reported as not aligned
   rather than as a difference;
4. then every remaining dim whose size is ``L`` where the reference has ``T`` is a sequence dim and
   is narrowed to ``o .. o + T`` (hidden ``[B, L, H]``, heads ``[B, h, L, d]``, scores ``[B, h, L, L]``).

Anything else (a dim that differs otherwise, such as the tokens routed to one MoE expert, or a
different rank or dtype) is **not aligned**: reported with the reason, never guessed.

**Call tree** (:class:`~precdiff.capture.op_trace.CallTree`). Module and op names carry per-forward occurrence counters, so a name
means the same thing in two runs only if the calls leading to it were the same. Data-dependent
control flow (an MoE layer looping over the experts its tokens hit) breaks that. The tree records,
per module call, the ordered child-module calls and the ordered op names; where the two runs differ,
the names under that call are reported as not aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from precdiff.capture.op_trace import ROOT, CallTree


@dataclass(frozen=True)
class Layout:
    """Where the probe sits in a batch: ``batch`` rows of ``length`` tokens, the probe in row ``slot``
    starting at column ``offset``, ``probe_length`` tokens long."""

    batch: int
    length: int
    slot: int
    offset: int
    probe_length: int


WHOLE_TENSOR_DIFFERS = (
    "no batch or token dim found and it differs: it may summarise the whole batch "
    "(e.g. a histogram over all tokens)"
)


def probe_slice(
    tensor: torch.Tensor, reference_shape: tuple[int, ...], layout: Layout
) -> tuple[torch.Tensor, bool] | str:
    """The probe's part of ``tensor`` shaped like the reference and whether it is the whole tensor
    (rule 3), or the reason it cannot be found."""
    shape = tuple(tensor.shape)
    if len(shape) != len(reference_shape):
        return f"rank {len(shape)} vs {len(reference_shape)} alone"
    if not shape:
        return tensor, True
    b, length, t = layout.batch, layout.length, layout.probe_length
    x = tensor
    start_dim = 0
    whole = True
    if shape[0] == b and reference_shape[0] == 1 and b != 1:
        x = tensor[layout.slot : layout.slot + 1]
        start_dim, whole = 1, False
    elif shape[0] == b * length and reference_shape[0] == t and b * length != t:
        first = layout.slot * length + layout.offset
        x = tensor[first : first + t]
        start_dim, whole = 1, False
    for dim in range(start_dim, len(shape)):
        size, want = x.shape[dim], reference_shape[dim]
        if size == want:
            continue
        if size == length and want == t:
            x = x.narrow(dim, layout.offset, t)
            whole = False
            continue
        return f"shape {list(shape)} vs {list(reference_shape)} alone (dim {dim}: {size} vs {want})"
    return x, whole


def diverged(reference: CallTree, run: CallTree) -> tuple[set[str], set[str]]:
    """Calls whose child-module sequence differs (everything below them is suspect) and calls whose
    own op sequence differs (their direct ops are suspect)."""
    children_differ: set[str] = set()
    ops_differ: set[str] = set()
    for name in set(reference.calls) | set(run.calls):
        a, b = reference.calls.get(name), run.calls.get(name)
        if a is None or b is None or a.children != b.children:
            children_differ.add(name)
        if a is None or b is None or a.ops != b.ops:
            ops_differ.add(name)
    return children_differ, ops_differ


def suspect_reason(name: str, scope: str, children_differ: set[str], ops_differ: set[str]) -> str | None:
    """Why ``name`` (produced in call ``scope``) cannot be trusted to mean the same in both runs."""
    if scope in ops_differ and "/" in name:
        return f"op sequence of {scope} differs from the probe alone (data-dependent control flow)"
    for call in children_differ:
        if call != ROOT and (scope.startswith(call + ".") or name.startswith(call + ".")):
            return f"module calls inside {call} differ from the probe alone (data-dependent control flow)"
    return None
