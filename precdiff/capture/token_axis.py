"""The token axis of a captured tensor, decided at capture time from the prompt length.

At capture the batch is one sequence of ``num_tokens`` tokens, and Hugging Face modules lay tensors
out in a few fixed ways, so the axis holding one entry per prompt token is known there and recorded in
the capture (``token_axis``, docs/format.md) instead of being guessed later from shapes alone:

- ``[batch, seq, ...]`` (hidden states, logits, rotary cos/sin ``[1, seq, dim]``) -> 1;
- ``[batch, heads, seq, ...]`` (logsumexp ``[1, heads, seq]``, queries/keys/values after the head transpose, attention weights
  ``[1, heads, q, k]``: the query axis) -> 2;
- ``[tokens, ...]`` (MoE token buffers, router logits ``[tokens, experts]`` and top-k indices,
  the ``aten.mm`` of a linear layer on flattened tokens) -> 0;
- ``[heads, seq, ...]`` (``aten.bmm`` of attention on batch·heads) -> 1;
- anything else (weights, per-expert buffers whose rows are the tokens routed to one expert, scalars)
  -> ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence


def token_axis(shape: Sequence[int], num_tokens: int) -> int | None:
    """The axis of ``shape`` that indexes the prompt's ``num_tokens`` tokens (batch of one), or ``None``."""
    rank = len(shape)
    if rank == 0 or num_tokens < 1:
        return None
    if rank >= 2 and shape[0] == 1:
        if shape[1] == num_tokens:
            return 1
        if rank >= 3 and shape[2] == num_tokens:
            return 2
        return None
    if shape[0] == num_tokens:
        return 0
    if rank == 3 and shape[1] == num_tokens:
        return 1
    return None
