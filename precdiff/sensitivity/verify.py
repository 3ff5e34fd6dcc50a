"""Float vs all-quantized vs mixed on held-out prompts: does keeping the flagged layers float suffice?

For each held-out prompt (one at a time, no padding) and each variant:

- the prompt's forward pass gives the next-token log-probabilities at every position: the perplexity
  ``exp(Σ NLL / Σ predicted tokens)`` over all prompts, the top-1 agreement (fraction of positions whose
  argmax equals the float model's) and, at the last position, ``KL(P_float ‖ P_variant)`` (float64), whose
  mean over prompts is ``mean_kl``;
- a greedy continuation of ``new_tokens`` tokens (KV cache, no end-of-sequence stop): the greedy agreement
  is the mean over prompts of (length of the common prefix with the float continuation) / ``new_tokens``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from precdiff.capture.kv_cache import cache_kwargs, returned_cache
from precdiff.sensitivity.measures import kl_from_logits
from precdiff.sensitivity.results import Verification, VerifyRow
from precdiff.sensitivity.targets import Target, swapped

Progress = Callable[[str, int, int], None]


@dataclass
class _Outputs:
    """One variant's outputs on one prompt."""

    nll: float  # summed over predicted positions
    predicted: int
    argmax: torch.Tensor  # [positions] int64
    final_logits: torch.Tensor  # [vocab] float32 at the last prompt position
    continuation: list[int]


def _logits(output: object) -> torch.Tensor:
    logits = getattr(output, "logits", None)
    assert isinstance(logits, torch.Tensor), "the model returned no logits"
    return logits


def _run_prompt(model: nn.Module, ids: list[int], device: torch.device, new_tokens: int) -> _Outputs:
    tokens = torch.tensor([ids], device=device)
    output = model(input_ids=tokens, use_cache=True)
    logits = _logits(output)[0].float()  # [positions, vocab]
    log_probs = torch.log_softmax(logits[:-1].double(), dim=-1)
    nll = float(-log_probs.gather(1, tokens[0, 1:, None]).sum())
    past = returned_cache(output)
    next_id = int(logits[-1].argmax())
    continuation = [next_id]
    for _ in range(new_tokens - 1):
        step = model(
            input_ids=torch.tensor([[next_id]], device=device), use_cache=True, **cache_kwargs(model, past)
        )
        past = returned_cache(step)
        next_id = int(_logits(step)[0, -1].argmax())
        continuation.append(next_id)
    return _Outputs(nll, len(ids) - 1, logits.argmax(dim=-1).cpu(), logits[-1].cpu(), continuation)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def verify(
    model: nn.Module,
    targets: Sequence[Target],
    qweights: dict[str, torch.Tensor],
    flagged: Iterable[str],
    sequences: Sequence[list[int]],
    device: torch.device,
    *,
    new_tokens: int,
    progress: Progress | None = None,
) -> Verification:
    """Score float, all-quantized and mixed (``flagged`` names kept float) on ``sequences``."""
    keep = set(flagged)
    variants = {
        "float": [],
        "quantized": [(t.module, qweights[t.name]) for t in targets],
        "mixed": [(t.module, qweights[t.name]) for t in targets if t.name not in keep],
    }
    outputs: dict[str, list[_Outputs]] = {}
    done, total = 0, len(variants) * len(sequences)
    with torch.no_grad():
        for variant, swaps in variants.items():
            with swapped(swaps):
                outputs[variant] = []
                for ids in sequences:
                    outputs[variant].append(_run_prompt(model, ids, device, new_tokens))
                    done += 1
                    if progress is not None:
                        progress("verify", done, total)
    reference = outputs["float"]
    rows = []
    for variant, swaps in variants.items():
        runs = outputs[variant]
        predicted = sum(r.predicted for r in runs)
        positions = sum(r.argmax.numel() for r in runs)
        agree = sum(int((r.argmax == f.argmax).sum()) for r, f in zip(runs, reference))
        kls = [float(kl_from_logits(f.final_logits, r.final_logits)) for r, f in zip(runs, reference)]
        greedy = [
            _common_prefix(r.continuation, f.continuation) / new_tokens for r, f in zip(runs, reference)
        ]
        rows.append(
            VerifyRow(
                variant=variant,
                quantized_layers=len(swaps),
                perplexity=math.exp(sum(r.nll for r in runs) / predicted) if predicted else math.nan,
                mean_kl=sum(kls) / len(kls) if kls else math.nan,
                top1_agreement=agree / positions if positions else math.nan,
                greedy_agreement=sum(greedy) / len(greedy) if greedy else math.nan,
            )
        )
    tokens = sum(len(ids) for ids in sequences)
    return Verification(prompts=len(sequences), tokens=tokens, new_tokens=new_tokens, rows=tuple(rows))
