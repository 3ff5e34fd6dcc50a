"""``compare`` with a serving engine's response file as one side (or both).

An engine exposes no tensors, only logprobs: each side becomes its prompt ids, prompt top-k rows and
greedy generation (:mod:`precdiff.engines`), and these go through the same
:func:`~precdiff.compare.logprobs.compare_topk` and :func:`~precdiff.compare.logprobs.compare_generation`
as two captures. Engine tokens given as strings or bytes are mapped to ids with the capture side's
tokenizer (or ``--tokenizer``). The verdict rests on discrete disagreements that rounding cannot
explain: a greedy flip, or a prompt position whose top-1 differs, where either side's top-1/top-2
margin is at least the near-tie threshold. The engine's compute precision is not in its response;
it is assumed to be bf16 (the common serving dtype) for that threshold, ``--near-tie`` overrides it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from precdiff.compare.align import capture_ref
from precdiff.compare.logprobs import compare_generation, compare_topk, next_tokens
from precdiff.compare.options import CompareOptions
from precdiff.compare.results import (
    SEVERITY_WARN,
    STATUS_DIVERGED,
    STATUS_MATCH,
    STATUS_WITHIN_NOISE,
    CaptureRef,
    Comparison,
    Difference,
    GenerationComparison,
    LogprobComparison,
    Verdict,
)
from precdiff.compare.token_text import display_tokenizer, shown_bytes, token_texts, tokenizer_loader
from precdiff.compare.tolerances import manifest_dtype_code, near_tie_nats
from precdiff.engines import TokenMap, is_response_file, read_responses, resolve
from precdiff.engines.records import Step
from precdiff.errors import EngineResponseError, NotComparableError, TemplateError
from precdiff.store.reader import Capture, Generation, TopK, open_capture

# An engine response does not say in which dtype it computed; serving engines run bf16 by default.
ENGINE_DTYPE_CODE = "BF16"


@dataclass(frozen=True)
class Side:
    """What one side offers for comparison, whether a capture or an engine response."""

    ref: CaptureRef
    prompt_ids: tuple[int, ...] | None
    prompt_logprobs: TopK | None
    prompt_start: int  # capture row of prompt_logprobs' first row
    generation: Generation | None
    dtype_code: str
    notes: tuple[str, ...]
    # Per capture row r, the side's own logprob of token r + 1 where it gave one apart from its top-k
    # (an engine echoing the prompt; the last row: of the first generated token), NaN elsewhere.
    chosen_logprobs: NDArray[np.float64] | None = None
    # The engine's own text of each prompt / generated token (None for a capture: its tokenizer knows).
    prompt_texts: tuple[str, ...] | None = None
    generated_texts: tuple[str, ...] | None = None


def involves_engine(a: object, b: object) -> bool:
    """Whether either source is an engine response file (``compare`` then dispatches here)."""
    return any(isinstance(s, (str, os.PathLike)) and is_response_file(s) for s in (a, b))


def _capture_side(cap: Capture) -> Side:
    return Side(
        capture_ref(cap), tuple(cap.input_ids) or None, cap.prompt_logprobs, 0, cap.generation,
        manifest_dtype_code(cap.manifest.dtype if cap.manifest is not None else None), (),
    )  # fmt: skip


def _tokenizer_loader(source: str | None) -> tuple[Callable[[], Any], str]:
    if source is None:
        return (lambda: None), "no tokenizer (neither side is a capture of a model)"
    load_source = tokenizer_loader(source)

    def load() -> Any:
        try:
            return load_source()
        except TemplateError as exc:
            raise EngineResponseError(
                f"cannot load the tokenizer to map the engine's tokens to ids: {exc}; pass "
                "--tokenizer DIR / tokenizer=DIR"
            ) from None

    return load, f"the tokenizer of {source}"


def _engine_side(path: Path, mapping: TokenMap, want_ids: tuple[int, ...] | None) -> Side:
    responses = read_responses(path)
    sides = [resolve(response, mapping) for response in responses]
    if len(sides) > 1:
        matching = [s for s in sides if want_ids is not None and s.prompt_ids == want_ids]
        if len(matching) != 1:
            raise EngineResponseError(
                f"{path} holds {len(sides)} responses and {len(matching)} of them have the other side's "
                "prompt ids; compare one response file per capture (or capture with --tokens-from it)"
            )
        sides = matching
    side = sides[0]
    response = side.response
    device = f"engine: {response.format}" + (f" ({response.model})" if response.model else "")
    notes = side.notes
    if side.prompt_ids is None:
        notes += (f"{response.source} ({response.format}) returned no prompt tokens: prompt ids unchecked",)
    steps = [*(response.prompt or ())[1:], *(response.generated[:1] if response.prompt else ())]
    return Side(
        CaptureRef(path=response.source, complete=True, dtype=None, device=device),
        side.prompt_ids, side.prompt_logprobs, side.prompt_logprobs_start, side.generation,
        ENGINE_DTYPE_CODE, notes,
        np.array([np.nan if s.token.logprob is None else s.token.logprob for s in steps], dtype=np.float64),
        _texts(response.prompt or ()) if response.prompt else None,
        _texts(response.generated) if response.generated else None,
    )  # fmt: skip


def _texts(steps: tuple[Step, ...]) -> tuple[str, ...] | None:
    """The engine's own strings of its tokens (None when it named any only by id)."""
    texts = [s.token.text for s in steps]
    if any(t is None or t.startswith("token_id:") for t in texts):  # vLLM's ids-as-text are no text
        raw = [s.token.raw for s in steps]
        if any(r is None for r in raw):
            return None
        return tuple(shown_bytes(r) for r in raw if r is not None)
    return tuple(t for t in texts if t is not None)


def _check_prompts(a: Side, b: Side, force: bool) -> tuple[Difference, ...]:
    if a.prompt_ids is None or b.prompt_ids is None or a.prompt_ids == b.prompt_ids:
        return ()
    ids_a, ids_b = a.prompt_ids, b.prompt_ids
    position = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
    if not force:
        engine = a if a.ref.device and a.ref.device.startswith("engine") else b
        raise NotComparableError(
            f"{a.ref.path} and {b.ref.path} saw different prompt tokens ({len(ids_a)} vs {len(ids_b)} tokens, "
            f"first difference at position {position}: {ids_a[position : position + 3]} vs "
            f"{ids_b[position : position + 3]}); capture with --tokens-from {engine.ref.path} to run the "
            "engine's exact ids, or pass --force / force=True to compare anyway"
        )
    return (Difference("input.ids", len(ids_a), len(ids_b), SEVERITY_WARN),)


def _rows_from(topk: TopK, start: int) -> TopK:
    return TopK(topk.ids[start:], topk.logprobs[start:])


def _common_k(a: TopK, b: TopK) -> tuple[TopK, TopK]:
    """Both sides cut to the smaller k (engines give 5 candidates, captures 20): the KL buckets
    then cover the same depth of each distribution."""
    k = min(a.ids.shape[1], b.ids.shape[1])
    return TopK(a.ids[:, :k], a.logprobs[:, :k]), TopK(b.ids[:, :k], b.logprobs[:, :k])


def _prompt_flips(a: TopK, b: TopK, threshold: float) -> list[int]:
    """Rows whose top-1 differs while at least one side was decided (margin ≥ threshold)."""
    n = min(a.ids.shape[0], b.ids.shape[0])
    flips = []
    for row in range(n):
        if a.ids[row, 0] == b.ids[row, 0]:
            continue
        margins = [lp[row, 0] - lp[row, 1] if lp.shape[1] > 1 else np.inf for lp in (a.logprobs, b.logprobs)]
        if not (margins[0] < threshold and margins[1] < threshold):
            flips.append(row)
    return flips


def off_greedy_steps(generation: Generation) -> list[int]:
    """Steps where an engine's chosen token is not its own most likely candidate: it did not decode
    greedily there (a logit bias such as llama.cpp's ignore_eos, a penalty, a grammar, sampling)."""
    ids, best, logprobs = generation.ids, generation.topk.ids, generation.topk.logprobs
    steps = []
    for step in range(min(ids.shape[0], best.shape[0])):
        if best.shape[1] == 0 or int(ids[step]) == int(best[step, 0]):
            continue
        chosen = logprobs[step][best[step] == ids[step]]
        if chosen.size == 0 or float(chosen[0]) < float(logprobs[step, 0]):  # a tie is still greedy
            steps.append(step)
    return steps


def _verdict(
    logprobs: LogprobComparison | None,
    generation: GenerationComparison | None,
    flips: list[int],
    offset: int,
    off_greedy: dict[str, list[int]],
) -> Verdict:
    if logprobs is None and generation is None:
        return Verdict(
            STATUS_WITHIN_NOISE,
            "no logprobs or generation on both sides: nothing compared",
            "nothing_compared",
        )
    if (logprobs is None or logprobs.exact) and (generation is None or generation.exact):
        return Verdict(STATUS_MATCH, "logprobs and generation are identical", "identical")
    step = generation.first_divergent_step if generation is not None else None
    culprits = [side for side, steps in off_greedy.items() if step is not None and step in steps]
    if generation is not None and culprits:
        return Verdict(
            STATUS_DIVERGED,
            f"greedy generation differs at step {step} (token {generation.token_a} vs {generation.token_b}) "
            f"because {' and '.join(culprits)} did not choose its own most likely candidate there: the "
            "engine request did not decode greedily (a logit bias such as llama.cpp's ignore_eos, a "
            "penalty, a grammar or sampling), not a numerical difference; fix the request",
            "engine_not_greedy",
        )
    if generation is not None and generation.first_divergent_step is not None and not generation.near_tie:
        return Verdict(
            STATUS_DIVERGED,
            f"greedy generation differs at step {generation.first_divergent_step} (token {generation.token_a} vs "
            f"{generation.token_b}) and it is not a near-tie (margins {generation.margin_a:.3g} / "
            f"{generation.margin_b:.3g} nats)",
            "generation_flip",
        )
    if flips:
        return Verdict(
            STATUS_DIVERGED,
            f"the most likely next token differs at {len(flips)} prompt position(s), first at position "
            f"{flips[0] + offset}, where one side was not near a tie",
            "top1_flip",
        )
    parts = []
    if logprobs is not None:
        parts.append(f"KL max {logprobs.kl_max:.3g} nats, top-1 agreement {logprobs.top1_agreement:.1%}")
    if generation is not None:
        parts.append(
            "generation identical"
            if generation.first_divergent_step is None
            else f"generation flips at step {generation.first_divergent_step} on a near-tie"
        )
    return Verdict(STATUS_WITHIN_NOISE, "no disagreement beyond rounding: " + "; ".join(parts), "noise")


def compare_with_engine(
    a: str | os.PathLike[str] | Capture,
    b: str | os.PathLike[str] | Capture,
    options: CompareOptions,
) -> Comparison:
    """Compare B against A where either is an engine response file; see the module docstring."""
    with ExitStack() as stack:
        captures: list[Capture | None] = []
        for source in (a, b):
            if isinstance(source, Capture):
                captures.append(source)  # the caller opened it and closes it
            elif is_response_file(source):
                captures.append(None)
            else:
                captures.append(stack.enter_context(open_capture(Path(source))))
        known = [_capture_side(c) for c in captures if c is not None]
        sources = [c.manifest.model.source for c in captures if c is not None and c.manifest is not None]
        model_source = next((str(s) for s in sources if s), None)
        mapping = TokenMap(*_tokenizer_loader(options.tokenizer or model_source))
        want = known[0].prompt_ids if known else None
        sides = [
            _capture_side(c) if c is not None else _engine_side(Path(str(source)), mapping, want)
            for c, source in zip(captures, (a, b))
        ]
    side_a, side_b = sides
    differences = _check_prompts(side_a, side_b, options.force)
    notes = list(side_a.notes + side_b.notes)
    tokenizer, why = display_tokenizer(options.tokenizer or model_source)
    engine_texts = side_a.prompt_texts or side_b.prompt_texts
    prompt_ids = side_a.prompt_ids or side_b.prompt_ids
    prompt_tokens = token_texts(tokenizer, prompt_ids or ()) if prompt_ids is not None else None
    if tokenizer is None:
        prompt_tokens = engine_texts
        if why is not None and engine_texts is None:
            notes.append(why)
    logprobs = None
    offset = max(side_a.prompt_start, side_b.prompt_start)
    top_a, top_b = side_a.prompt_logprobs, side_b.prompt_logprobs
    if top_a is not None and top_b is not None:
        top_a, top_b = _common_k(
            _rows_from(top_a, offset - side_a.prompt_start), _rows_from(top_b, offset - side_b.prompt_start)
        )
        rows = top_a.ids.shape[0]
        first = next(
            (int(s.generation.ids[0]) for s in sides if s.generation is not None and s.generation.ids.size),
            None,
        )
        chosen = next_tokens(side_a.prompt_ids or side_b.prompt_ids, first, rows, offset)
        own = tuple(
            None if s.chosen_logprobs is None else _pad(s.chosen_logprobs[offset:], rows) for s in sides
        )
        logprobs = compare_topk(top_a, top_b, chosen, (own[0], own[1]), tokenizer)
        logprobs = replace(logprobs, start_position=offset)
        if logprobs.chosen_tokens is None and engine_texts is not None:
            logprobs = replace(
                logprobs,
                chosen_tokens=tuple(
                    engine_texts[i] if 0 <= i < len(engine_texts) else None
                    for i in range(offset + 1, offset + 1 + rows)
                ),
            )
        if offset:
            notes.append(f"prompt logprobs compared from prompt row {offset}: positions count from there")
    else:
        lacking = " and ".join(s.ref.path for s in sides if s.prompt_logprobs is None)
        notes.append(
            f"prompt logprobs: {lacking} has no top-k candidates for the prompt, so KL, top-k overlap and "
            "Δlogprob are null; only the generation is compared"
        )
    threshold = (
        options.near_tie_nats
        if options.near_tie_nats is not None
        else near_tie_nats(side_a.dtype_code, side_b.dtype_code)
    )
    generation = None
    if side_a.generation is not None and side_b.generation is not None:
        generation = compare_generation(
            side_a.generation, side_b.generation, options.near_tie_nats, (side_a.dtype_code, side_b.dtype_code),
            tokenizer,
        )  # fmt: skip
        if tokenizer is None:
            generation = replace(generation, tokens_a=side_a.generated_texts, tokens_b=side_b.generated_texts)
    flips = _prompt_flips(top_a, top_b, threshold) if top_a is not None and top_b is not None else []
    off_greedy = {
        name: off_greedy_steps(side.generation)
        for name, side, capture in zip("AB", sides, captures)
        if capture is None and side.generation is not None
    }
    for name, steps in off_greedy.items():
        if steps:
            notes.append(
                f"{name} (engine) did not choose its own most likely candidate at step(s) "
                f"{', '.join(map(str, steps[:8]))}: it did not decode greedily there"
            )
    return Comparison(
        a=side_a.ref,
        b=side_b.ref,
        verdict=_verdict(logprobs, generation, flips, offset, off_greedy),
        tensors=(),
        layers=(),
        unmatched_a=(),
        unmatched_b=(),
        differences=differences,
        forced=options.force,
        logprobs=logprobs,
        generation=generation,
        warnings=tuple(notes),
        top=(),
        input_ids=tuple(prompt_ids or ()),
        prompt_tokens=prompt_tokens,
    )


def _pad(values: NDArray[np.float64], rows: int) -> NDArray[np.float64]:
    """``values`` cut or NaN-padded to ``rows`` entries."""
    out = np.full(rows, np.nan)
    out[: min(rows, values.size)] = values[:rows]
    return out
