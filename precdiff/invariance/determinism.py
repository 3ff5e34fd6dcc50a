"""``check_determinism``: the 1,000-completions experiment in small.

Each run draws, from a generator seeded by ``(seed, run)``, a number of companions (0..max), their
lengths (1..2x the probe) and tokens, and the probe's slot. The batch is left-padded (attention mask,
position ids from the mask, as serving engines batch requests) and the whole batch is generated
greedily for ``max_new_tokens`` steps with a KV cache; the probe's completion is kept. At temperature 0
every run should produce the same completion; the report counts how many distinct ones appeared.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from precdiff import _progress
from precdiff.capture.kv_cache import cache_kwargs, returned_cache
from precdiff.devices import device_limits
from precdiff.invariance.options import DeterminismOptions
from precdiff.invariance.results import Completion, DeterminismReport, RunRecord
from precdiff.invariance.session import Session, open_session


def greedy_batch(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy tokens ``[B, steps]`` for a left-padded batch ``ids``/``mask`` ``[B, L]``."""
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    # logits_to_keep=1: only the last position feeds the first token; the lm_head GEMM stays small.
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    chosen = out.logits[:, -1].argmax(-1)
    tokens = [chosen]
    for _ in range(steps - 1):
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = positions[:, -1:] + 1
        out = model(
            input_ids=chosen[:, None],
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **cache_kwargs(model, returned_cache(out)),
        )
        chosen = out.logits[:, -1].argmax(-1)
        tokens.append(chosen)
    return torch.stack(tokens, dim=1)


def random_batch(
    session: Session, max_companions: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The probe among 0..``max_companions`` random companions, left-padded: (ids, mask, probe slot)."""
    probe = torch.tensor(session.probe.ids, dtype=torch.long)
    t = len(probe)
    companions = int(torch.randint(0, max_companions + 1, (1,), generator=generator))
    batch = companions + 1
    slot = int(torch.randint(0, batch, (1,), generator=generator))
    lengths = [
        t if row == slot else int(torch.randint(1, 2 * t + 1, (1,), generator=generator))
        for row in range(batch)
    ]
    length = max(lengths)
    ids = torch.full((batch, length), session.pad_id, dtype=torch.long)
    mask = torch.zeros((batch, length), dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens = probe if row == slot else torch.randint(0, session.vocab_size, (n,), generator=generator)
        ids[row, length - n :] = tokens
        mask[row, length - n :] = 1
    return ids.to(session.device), mask.to(session.device), slot


def first_divergence(completions: list[tuple[int, ...]]) -> int | None:
    """The first step at which not all ``completions`` (equal lengths) agree; None if they all do."""
    if len(set(completions)) < 2:
        return None
    for step in range(min(len(c) for c in completions)):
        if len({c[step] for c in completions}) > 1:
            return step
    return min(len(c) for c in completions)  # one is a prefix of another (only with unequal lengths)


def check_determinism(
    model: str | nn.Module, options: DeterminismOptions | None = None, tokenizer: object = None
) -> DeterminismReport:
    """Generate the probe's greedy completion in ``runs`` random batches; count distinct completions.

    Args:
        model: a local Hugging Face model directory, ``tiny:<arch>``, or a loaded causal LM.
        options: runs, tokens, companions, kernels, probe; defaults in :mod:`precdiff.invariance.options`.
        tokenizer: only with a loaded model, to tokenize ``options.prompt`` and decode completions.

    Returns:
        A :class:`DeterminismReport`; ``bool(report)`` is True for exactly one distinct completion.

    Raises:
        InputError, ModelLoadError, DeviceUnavailableError, KernelError.

    Example:
        >>> check_determinism("tiny:llama", DeterminismOptions(device="cpu", runs=4))  # doctest: +SKIP
    """
    options = options or DeterminismOptions()
    with open_session(model, options, tokenizer) as session:
        by_completion: dict[tuple[int, ...], list[int]] = defaultdict(list)
        placements: list[tuple[int, int, tuple[int, ...]]] = []
        for run in _progress.iterate(range(options.runs), "determinism: runs"):
            generator = torch.Generator().manual_seed(options.seed * 1_000_003 + run)
            ids, mask, slot = random_batch(session, options.max_companions, generator)
            with device_limits(
                f"a batch of {ids.shape[0]} sequences × {options.max_new_tokens} tokens",
                "lower --max-companions / max_companions= or --max-new-tokens / max_new_tokens=",
            ):
                tokens = greedy_batch(session.model, ids, mask, options.max_new_tokens)
            completion = tuple(int(i) for i in tokens[slot].tolist())
            by_completion[completion].append(run)
            placements.append((ids.shape[0], slot, completion))
        # Most frequent first; ties in order of first appearance (dicts keep insertion order).
        ranked = sorted(by_completion.items(), key=lambda item: -len(item[1]))
        index = {ids: i for i, (ids, _) in enumerate(ranked)}
        completions = tuple(
            Completion(ids=ids, text=session.decode(ids), count=len(runs), runs=tuple(runs))
            for ids, runs in ranked
        )
        records = tuple(
            RunRecord(run=run, batch_size=batch, probe_slot=slot, completion=index[completion])
            for run, (batch, slot, completion) in enumerate(placements)
        )
        return DeterminismReport(
            run=session.run_info(options.seed),
            probe=session.probe,
            runs=options.runs,
            max_new_tokens=options.max_new_tokens,
            max_companions=options.max_companions,
            completions=completions,
            first_divergence_step=first_divergence(list(index)),
            records=records,
        )
