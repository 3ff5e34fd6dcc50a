"""``compare()``: two captures in, one :class:`~precdiff.compare.results.Comparison` out.

Order of work: comparability of the manifests (refuse before touching tensors), pairing by name,
per-tensor metrics streamed block by block (one tensor pair in memory at a time, one block of each
at a time), logprobs and generation, then :func:`precdiff.compare.localize.localize` for the verdict.
"""

from __future__ import annotations

import dataclasses
import os
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Union

from precdiff import _progress
from precdiff.compare.align import Alignment, align, capture_ref, resolve_comparability
from precdiff.compare.engine_side import compare_with_engine, involves_engine
from precdiff.compare.flips import discount_flips
from precdiff.compare.localize import localize
from precdiff.compare.logprobs import CaptureTexts, compare_generation, compare_topk, one_sided_topk
from precdiff.compare.metrics import Tolerance, cosine, frac_beyond, max_abs, mean_abs, rel_l2
from precdiff.compare.noise import numerics_identical
from precdiff.compare.op_align import module_level
from precdiff.compare.op_localize import drill_down, with_op
from precdiff.compare.options import CompareOptions
from precdiff.compare.outputs_verdict import outputs_verdict
from precdiff.compare.per_token import TokenSums, massive_tokens, token_axis_of
from precdiff.compare.reference import compare_reference
from precdiff.compare.results import (
    COMPARED,
    ESTIMATED,
    SHAPE_MISMATCH,
    Comparison,
    TensorComparison,
    Verdict,
)
from precdiff.compare.stream import measure_pair
from precdiff.compare.summary_pairs import compare_summaries
from precdiff.compare.tolerances import manifest_dtype_code, noise_floor, pair_tolerance
from precdiff.errors import InputError
from precdiff.store.dtypes import FLOAT_CODES
from precdiff.store.format import layer_index
from precdiff.store.reader import Capture, TensorInfo, open_capture

CaptureLike = Union[str, "os.PathLike[str]", Capture]

_FIRST_INDEX = re.compile(r"^(.+?)\.(\d+)(?=$|[.\[:#])")


def infer_layers_path(names: list[str]) -> str | None:
    """The ``X`` of the most repeated ``X.<int>`` prefix (first integer of each name), e.g. ``model.layers``."""
    indices: dict[str, set[str]] = {}
    for name in names:
        match = _FIRST_INDEX.match(name)
        if match:
            indices.setdefault(match.group(1), set()).add(match.group(2))
    if not indices:
        return None
    return max(indices, key=lambda prefix: len(indices[prefix]))


def _is_layer_output(name: str, layer: int | None, layers_path: str | None) -> bool:
    return layer is not None and name in (f"{layers_path}.{layer}", f"{layers_path}.{layer}[0]")


def _compare_pair(
    cap_a: Capture,
    cap_b: Capture,
    info_a: TensorInfo,
    info_b: TensorInfo,
    options: CompareOptions,
    layers_path: str | None,
    num_tokens: int,
    run_codes: tuple[str, ...],
    expected_exact: bool,
) -> TensorComparison:
    name = info_a.name
    layer = layer_index(name, layers_path)
    codes = (info_a.dtype, info_b.dtype, *run_codes)
    rtol, atol = pair_tolerance(*codes)
    # Runs that share every numerics setting must agree bitwise: the floor is 0 (precdiff.compare.noise).
    floor = options.noise_floor if options.noise_floor is not None else noise_floor(*codes)
    if options.noise_floor is None and expected_exact:
        floor = 0.0
    axis = token_axis_of(info_a, num_tokens)
    base: dict[str, Any] = dict(
        name=name,
        module=info_a.module,
        role=info_a.role,
        layer=layer,
        dtype_a=info_a.dtype,
        dtype_b=info_b.dtype,
        shape_a=info_a.shape,
        shape_b=info_b.shape,
        rtol=rtol,
        atol=atol,
        noise_floor=floor,
        is_float=info_a.dtype in FLOAT_CODES and info_b.dtype in FLOAT_CODES,
        token_aligned=num_tokens <= 1 or axis is not None,
        layer_output=_is_layer_output(name, layer, layers_path),
    )
    if info_a.shape != info_b.shape:
        return TensorComparison(**base, status=SHAPE_MISMATCH)
    if not (info_a.stored and info_b.stored):
        return compare_summaries(cap_a, cap_b, info_a, info_b, base)
    per_token = TokenSums(info_a.shape, axis, num_tokens) if axis is not None and base["is_float"] else None
    sums = measure_pair(
        cap_a, cap_b, info_a, info_b, Tolerance(rtol, atol), per_token, options.block_elements
    )
    if per_token is not None:
        tokens = per_token.result(rel_l2(sums))
        base.update(
            token_rel_l2=tokens.rel_l2,
            token_norms=tokens.norms,
            massive_tokens=tokens.massive,
            rel_l2_robust=tokens.rel_l2_robust,
        )
    return TensorComparison(
        **base,
        status=COMPARED,
        numel=sums.n,
        rel_l2=rel_l2(sums),
        cosine=cosine(sums),
        max_abs=max_abs(sums),
        mean_abs=mean_abs(sums),
        frac_beyond=frac_beyond(sums),
        n_unequal=sums.n_unequal,
        nan_a=sums.nan_a,
        nan_b=sums.nan_b,
        inf_a=sums.inf_a,
        inf_b=sums.inf_b,
        nonfinite_mismatch=sums.nonfinite_mismatch,
        exact=sums.exact,
    )


def _as_alias(target: TensorComparison, info: TensorInfo, layers_path: str | None) -> TensorComparison:
    """The comparison of a tensor that is ``target`` again in both captures, under its own name."""
    layer = layer_index(info.name, layers_path)
    return dataclasses.replace(
        target,
        name=info.name,
        module=info.module,
        role=info.role,
        layer=layer,
        layer_output=_is_layer_output(info.name, layer, layers_path),
        alias_of=target.alias_of or target.name,
    )


def _note_estimate(verdict: Verdict, tensors: dict[str, TensorComparison]) -> Verdict:
    """Say so in the message when the verdict's numbers are sketch estimates."""
    named = tensors.get(verdict.tensor or "")
    if named is None or named.status != ESTIMATED or named.exact:
        return verdict
    spread = 100.0 * (named.estimate_rel_std or 0.0)
    note = f" (rel-L2 estimated from summary sketches, ±{spread:.1f} % relative std)"
    return dataclasses.replace(verdict, message=verdict.message + note)


def _warnings(cap_a: Capture, cap_b: Capture) -> tuple[str, ...]:
    notes = []
    for side, cap in (("A", cap_a), ("B", cap_b)):
        if not cap.complete:
            notes.append(
                f"{side} ({cap.path}) is an incomplete capture (interrupted); compared the "
                f"{len(cap.tensor_names())} tensors it holds"
            )
        if cap.newer_partial is not None:
            notes.append(
                f"{side}: a newer incomplete capture {cap.newer_partial} sits beside {cap.path}; "
                f"{cap.path} is the older, complete one (a later capture to it was interrupted)"
            )
        if cap.manifest is None:
            notes.append(f"{side} ({cap.path}) has no manifest: comparability could not be checked")
    return tuple(notes)


def _summary_flips(tensors: tuple[TensorComparison, ...]) -> tuple[str, ...]:
    """A warning when discrete choices differ in tensors compared from summaries only.

    A full comparison discounts a discrete flip (MoE routing) per token (precdiff.compare.flips);
    summaries hold no per-token values, so the errors after the flip are judged as they are.
    """
    layers = sorted(
        {
            t.layer
            for t in tensors
            if t.status == ESTIMATED and not t.is_float and not t.exact and t.layer is not None
        }
    )
    if not layers:
        return ()
    return (
        f"integer tensors (e.g. MoE router choices) differ in layer(s) {', '.join(map(str, layers))} and were "
        "compared from summaries, which cannot separate what a flipped choice does from a fault; capture "
        "those layers in full (--focus / focus=) to tell them apart",
    )


def _top(tensors: tuple[TensorComparison, ...], n: int) -> tuple[str, ...]:
    def key(t: TensorComparison) -> tuple[int, float]:
        err = t.rel_l2 if t.rel_l2 is not None and t.rel_l2 == t.rel_l2 else 0.0
        return (1 if t.nonfinite_mismatch else 0, err)

    # An alias is its target again: listing both would show one finding twice.
    ranked = sorted(
        (t for t in tensors if t.rel_l2 is not None and t.alias_of is None), key=key, reverse=True
    )
    return tuple(t.name for t in ranked[:n])


def _require_something(cap_a: Capture, cap_b: Capture, alignment: Alignment, options: CompareOptions) -> None:
    """Refuse a comparison that would compare nothing: an empty result must not read as a match."""
    if alignment.pairs:
        return
    if options.include or options.exclude:
        selection = " ".join(
            [*(f"--include {p!r}" for p in options.include), *(f"--exclude {p!r}" for p in options.exclude)]
        )
        raise InputError(
            f"{selection} selected no tensor present in both {cap_a.path} and {cap_b.path}; "
            "`precdiff inspect` lists the names (include= / exclude= in Python)"
        )
    if cap_a.prompt_logprobs is None or cap_b.prompt_logprobs is None:
        raise InputError(
            f"{cap_a.path} and {cap_b.path} share no tensor name and lack logprobs, so there is nothing "
            "to compare; capture both with the same model and --include / --exclude selection"
        )


def _open(source: CaptureLike, stack: ExitStack) -> Capture:
    if isinstance(source, Capture):
        return source  # the caller opened it and closes it
    return stack.enter_context(open_capture(Path(source)))


def compare(
    a: CaptureLike,
    b: CaptureLike,
    *,
    options: CompareOptions | None = None,
    reference: CaptureLike | None = None,
) -> Comparison:
    """Compare capture B against reference capture A.

    Args:
        a: the reference capture: a path (opened and closed here) or an open :class:`Capture`, or
            a serving engine's response file (``.json``/``.jsonl``; see ``docs/engines.md``).
        b: the capture under test, same forms.
        options: what to compare and the thresholds; defaults from :mod:`precdiff.compare.options`.
        reference: a float64 (or float32) capture of the same tokens: also measure A and B against it
            and say which side departs (``Comparison.reference``, see :mod:`precdiff.compare.reference`).

    Returns:
        A :class:`~precdiff.compare.results.Comparison`; ``bool(result)`` is False when B diverged.

    Raises:
        InputError: a file is missing or an option is invalid.
        CaptureFormatError: a file is not a capture or is damaged.
        NotComparableError: different weights, model config or input tokens (unless ``force``).
        EngineResponseError: an engine response is malformed or its tokens map to no single id.

    Example:
        >>> result = compare("cpu.h5", "cuda.h5")  # doctest: +SKIP
        >>> print(result.verdict.message)  # doctest: +SKIP
        divergence jumps at layer 12 in model.layers.12.mlp.down_proj: rel-L2 3.1e-05 → 2.4e-02, growth ×770 over the error it received
    """
    options = options or CompareOptions()
    if involves_engine(a, b):
        return compare_with_engine(a, b, options)
    with ExitStack() as stack:
        cap_a, cap_b = _open(a, stack), _open(b, stack)
        differences = resolve_comparability(cap_a, cap_b, force=options.force)
        expected_exact = numerics_identical(
            differences, cap_a.manifest is not None and cap_b.manifest is not None
        )
        alignment = align(cap_a, cap_b, module_level(cap_a, cap_b, options.name_filter()))
        _require_something(cap_a, cap_b, alignment, options)
        manifest_a = cap_a.manifest
        layers_path = (manifest_a.model.layers_path if manifest_a else None) or infer_layers_path(
            cap_a.tensor_names()
        )
        num_tokens = len(cap_a.input_ids) or int((manifest_a.input.num_tokens if manifest_a else 0) or 0)
        run_codes = tuple(
            manifest_dtype_code(c.manifest.dtype) for c in (cap_a, cap_b) if c.manifest is not None
        )
        done: dict[str, TensorComparison] = {}
        for ia, ib in _progress.iterate(alignment.pairs, "compare: tensors"):
            target = done.get(ia.alias_of or "") if ia.alias_of == ib.alias_of else None
            done[ia.name] = (
                _as_alias(target, ia, layers_path)
                if target is not None
                else _compare_pair(
                    cap_a, cap_b, ia, ib, options, layers_path, num_tokens, run_codes, expected_exact
                )
            )
        tensors = tuple(done.values())
        tensors = discount_flips(cap_a, cap_b, tensors, num_tokens)
        top_a, top_b = cap_a.prompt_logprobs, cap_b.prompt_logprobs
        gen_a, gen_b = cap_a.generation, cap_b.generation
        texts = CaptureTexts.of(cap_a, cap_b, options.tokenizer)
        logprobs = (
            compare_topk(top_a, top_b, texts.chosen(cap_a, top_a), tokenizer=texts.tokenizer)
            if top_a is not None and top_b is not None
            else None
        )
        generation = (
            compare_generation(gen_a, gen_b, options.near_tie_nats, run_codes, texts.tokenizer)
            if gen_a is not None and gen_b is not None
            else None
        )
        others_exact = (logprobs is None or logprobs.exact) and (generation is None or generation.exact)
        located = localize(
            tensors,
            num_layers=manifest_a.model.num_layers if manifest_a is not None else None,
            others_exact=others_exact and not alignment.a_only and not alignment.b_only,
        )
        verdict = _note_estimate(located.verdict, done)
        if not tensors and (logprobs is not None or generation is not None):
            topk = (top_a, top_b) if top_a is not None and top_b is not None else None
            verdict = outputs_verdict(logprobs, generation, topk, run_codes, expected_exact)
        ops = drill_down(
            cap_a,
            cap_b,
            verdict,
            layers_path=layers_path,
            run_codes=run_codes,
            block_elements=options.block_elements,
            noise_floor_override=options.noise_floor,
        )
        three_way = (
            compare_reference(_open(reference, stack), cap_a, cap_b, alignment.pairs, options, layers_path)
            if reference is not None
            else None
        )
        return Comparison(
            a=capture_ref(cap_a),
            b=capture_ref(cap_b),
            verdict=with_op(verdict, ops),
            tensors=tensors,
            layers=located.layers,
            unmatched_a=alignment.a_only,
            unmatched_b=alignment.b_only,
            differences=differences,
            forced=options.force,
            logprobs=logprobs,
            generation=generation,
            warnings=_warnings(cap_a, cap_b)
            + one_sided_topk(cap_a, cap_b)
            + texts.notes
            + _summary_flips(tensors),
            top=_top(tensors, options.top),
            reference=three_way,
            ops=ops,
            massive_tokens=massive_tokens(tensors, located.layers, cap_a.input_ids),
            input_ids=tuple(cap_a.input_ids),
            expected_exact=expected_exact,
            prompt_tokens=texts.prompt(cap_a),
        )
    raise AssertionError("unreachable")  # ExitStack does not swallow exceptions
