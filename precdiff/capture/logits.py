"""Logprobs at every prompt position and the greedy continuation, with top-k and margins.

Logprobs are ``log_softmax`` of the logits in float32 on the device. Generation is greedy for a fixed
number of steps (it does not stop at EOS) so that two captures always have comparable lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from precdiff.capture.kv_cache import cache_kwargs, returned_cache


@dataclass(frozen=True)
class GenerationRecord:
    """Per step: chosen id, top-k ids/logprobs and the top-1 minus top-2 logprob margin."""

    ids: np.ndarray  # [steps] int64
    topk_ids: np.ndarray  # [steps, k]
    topk_logprobs: np.ndarray  # [steps, k] float32
    margin: np.ndarray  # [steps] float32
    top_logit: np.ndarray  # [steps] float32: the chosen token's logit as the model computed it


def topk_logprobs(logits: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ids and logprobs of each row of ``logits`` ([n, vocab]) as host arrays [n, k]."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    values, ids = torch.topk(logprobs, k=min(k, logprobs.shape[-1]), dim=-1)
    return ids.cpu().numpy().astype(np.int64), values.cpu().numpy().astype(np.float32)


def greedy_generate(
    model: nn.Module, first_logits: torch.Tensor, cache: Any, prompt_length: int, steps: int, k: int
) -> GenerationRecord:
    """Continue greedily from the prefill's last-position logits (``first_logits``, [vocab]).

    The chosen token is ``argmax`` (the first maximum on exact ties), as ``generate(do_sample=False)``
    picks it; ``topk`` does not promise which of two equal logits comes first.
    """
    device = first_logits.device
    ids: list[int] = []
    top_ids: list[np.ndarray] = []
    top_logprobs: list[np.ndarray] = []
    margins: list[float] = []
    top_logits: list[float] = []
    logits = first_logits
    with torch.no_grad():
        for step in range(steps):
            # At least two candidates so that a margin exists even when k == 1.
            step_ids, step_logprobs = topk_logprobs(logits[None, :], max(k, 2))
            chosen = int(torch.argmax(logits))
            top_logits.append(float(logits[chosen]))
            ids.append(chosen)
            top_ids.append(step_ids[0, :k])
            top_logprobs.append(step_logprobs[0, :k])
            margins.append(float(step_logprobs[0, 0] - step_logprobs[0, 1]))
            if step == steps - 1:
                break
            position = torch.tensor([[prompt_length + step]], device=device)
            out = model(
                input_ids=torch.tensor([[chosen]], device=device),
                use_cache=True,
                position_ids=position,
                cache_position=position[0],
                **cache_kwargs(model, cache),
            )
            cache = returned_cache(out)
            logits = out.logits[0, -1]
    width = min(k, first_logits.shape[-1])
    return GenerationRecord(
        ids=np.asarray(ids, dtype=np.int64),
        topk_ids=np.asarray(top_ids, dtype=np.int64).reshape(len(ids), width),
        topk_logprobs=np.asarray(top_logprobs, dtype=np.float32).reshape(len(ids), width),
        margin=np.asarray(margins, dtype=np.float32),
        top_logit=np.asarray(top_logits, dtype=np.float32),
    )
