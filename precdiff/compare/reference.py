"""Three-way comparison: which of A and B departs from a float64 (or float32) reference capture R.

Two low-precision runs always differ; the question is which one is *wrong*. For every tensor aligned
between A and B, the error of each side from R is measured (rel-L2, ‖side − R‖ / ‖R‖, streamed block
by block like the A↔B metrics). Each side's error is divided by the error its dtype explains against
this reference, ``expected = noise_floor(side's tensor and run dtypes, R's tensor and run dtypes)``
(:func:`precdiff.compare.tolerances.noise_floor`: 3.1e-02 for bf16, 1.2e-04 for fp32, unless
``--noise-floor`` overrides it). A side *departs* at a tensor where this ratio exceeds 1; the verdict
names the first departing tensor in forward order, its module, layer and (op-level captures) op,
with both sides' ratios there: "B's model.layers.12.mlp.down_proj is 40× further from the float64
reference than bfloat16 rounding explains; A is within its float32 rounding (0.02×)".

R must be float64 or float32 and at least as precise as both sides, and comparable with each side by
the same manifest rules as A↔B (:func:`precdiff.compare.align.resolve_comparability`).
"""

from __future__ import annotations

from collections.abc import Iterable

from precdiff.compare.align import resolve_comparability
from precdiff.compare.metrics import EXACT, PairSums, accumulate, merge, rel_l2
from precdiff.compare.options import CompareOptions
from precdiff.compare.reference_results import (
    REF_A,
    REF_B,
    REF_BOTH,
    REF_NEITHER,
    REF_NOTHING,
    ReferenceComparison,
    ReferenceModule,
    ReferenceTensor,
    ReferenceVerdict,
    SideError,
)
from precdiff.compare.tolerances import less_precise, manifest_dtype_code, noise_floor
from precdiff.errors import InputError
from precdiff.store.dtypes import FLOAT_CODES
from precdiff.store.format import ROLE_OUTPUT, layer_index
from precdiff.store.reader import Capture, TensorInfo

REFERENCE_DTYPES = ("float64", "float32")
_DTYPE_WORDS = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _run_code(cap: Capture) -> str | None:
    return manifest_dtype_code(cap.manifest.dtype) if cap.manifest is not None else None


def _check_reference(ref: Capture, sides: Iterable[Capture]) -> None:
    dtype = ref.manifest.dtype if ref.manifest is not None else None
    if dtype not in REFERENCE_DTYPES:
        raise InputError(
            f"reference {ref.path} was captured in {dtype or 'an unknown dtype'}; a reference must be a "
            "float64 (or float32) capture of the same tokens: capture it with --dtype float64 --device cpu "
            "--tokens-from A.h5, then pass --reference / reference="
        )
    ref_rank = less_precise(manifest_dtype_code(dtype)).rank
    for side in sides:
        code = _run_code(side)
        if code is not None and less_precise(code).rank > ref_rank:
            raise InputError(
                f"reference {ref.path} ({dtype}) is less precise than {side.path} "
                f"({side.manifest.dtype if side.manifest else code}); pass a float64 capture as --reference"
            )


def _side_error(
    ref: Capture,
    side: Capture,
    info_r: TensorInfo,
    info_s: TensorInfo,
    codes: tuple[str, ...],
    options: CompareOptions,
) -> SideError:
    expected = options.noise_floor if options.noise_floor is not None else noise_floor(*codes)
    if info_r.shape != info_s.shape or not (info_r.stored and info_s.stored):
        return SideError(None, expected)
    sums = PairSums()
    blocks = side.iter_blocks(info_s.name, options.block_elements)
    for block_r in ref.iter_blocks(info_r.name, options.block_elements):
        sums = merge(sums, accumulate(block_r, next(blocks), EXACT))  # same shape -> same cut points
    return SideError(rel_l2(sums), expected)


def _word(code: str) -> str:
    return _DTYPE_WORDS.get(code, code)


def _worse(x: SideError, y: SideError) -> SideError:
    rx, ry = x.ratio, y.ratio
    if ry is not None and (rx is None or ry > rx):
        return y
    return x


def _modules(tensors: tuple[ReferenceTensor, ...]) -> tuple[ReferenceModule, ...]:
    rows: dict[str, ReferenceModule] = {}
    for t in tensors:
        if t.role != ROLE_OUTPUT:
            continue
        a = SideError(t.a.rel_l2, t.a.expected, t.name)
        b = SideError(t.b.rel_l2, t.b.expected, t.name)
        row = rows.get(t.module)
        rows[t.module] = (
            ReferenceModule(t.module, t.layer, a, b)
            if row is None
            else ReferenceModule(t.module, row.layer, _worse(row.a, a), _worse(row.b, b))
        )
    return tuple(rows.values())


def _times(error: SideError) -> str:
    ratio = error.ratio
    return "–" if ratio is None else f"{ratio:.2g}×" if ratio < 10 else f"{ratio:.0f}×"


def _verdict(
    tensors: tuple[ReferenceTensor, ...], words: dict[str, str], reference_word: str
) -> ReferenceVerdict:
    compared = [
        t for t in tensors if t.role == ROLE_OUTPUT and (t.a.rel_l2 is not None or t.b.rel_l2 is not None)
    ]
    if not compared:
        return ReferenceVerdict(REF_NOTHING, "no tensor could be compared with the reference", None)
    first_a = next((t for t in compared if t.a.departs), None)
    first_b = next((t for t in compared if t.b.departs), None)
    if first_a is None and first_b is None:
        worst_a = max(compared, key=lambda t: t.a.ratio or 0.0)
        worst_b = max(compared, key=lambda t: t.b.ratio or 0.0)
        return ReferenceVerdict(
            REF_NEITHER,
            f"neither side departs from the {reference_word} reference beyond its rounding: A at most "
            f"{_times(worst_a.a)} its {words['A']} expected error, B at most {_times(worst_b.b)} its "
            f"{words['B']} expected error",
            None,
        )
    if first_a is not None and first_b is not None:
        at = first_a if compared.index(first_a) <= compared.index(first_b) else first_b
        return ReferenceVerdict(
            REF_BOTH,
            f"both sides depart from the {reference_word} reference: A first at {first_a.name} "
            f"({_times(first_a.a)} its {words['A']} rounding), B first at {first_b.name} "
            f"({_times(first_b.b)} its {words['B']} rounding)",
            "both",
            at.name,
            at.module,
            at.layer,
            at.op,
            at.a,
            at.b,
        )
    side, other = ("A", "B") if first_a is not None else ("B", "A")
    departing = first_a if first_a is not None else first_b
    assert departing is not None
    at = departing
    mine, theirs = (at.a, at.b) if side == "A" else (at.b, at.a)
    if mine.rel_l2 is not None and mine.rel_l2 != mine.rel_l2:
        what = f"holds NaN/Inf where the {reference_word} reference does not"
    else:
        what = (
            f"is {_times(mine)} further from the {reference_word} reference than {words[side]} rounding "
            f"explains (rel-L2 {mine.rel_l2:.2e})"
        )
    status = REF_A if side == "A" else REF_B
    message = f"{side}'s {at.name} {what}; {other} is within {_times(theirs)} of its {words[other]} rounding"
    return ReferenceVerdict(status, message, side, at.name, at.module, at.layer, at.op, at.a, at.b)


def compare_reference(
    ref: Capture,
    cap_a: Capture,
    cap_b: Capture,
    pairs: tuple[tuple[TensorInfo, TensorInfo], ...],
    options: CompareOptions,
    layers_path: str | None,
) -> ReferenceComparison:
    """Errors of A and of B from the reference ``ref`` for every aligned pair, and the verdict.

    Raises:
        InputError: ``ref`` is not a float64/float32 capture, or is less precise than a side.
        NotComparableError: ``ref`` ran other weights, model config or tokens than A or B (unless
            ``options.force``).
    """
    _check_reference(ref, (cap_a, cap_b))
    differences = resolve_comparability(ref, cap_a, force=options.force) + resolve_comparability(
        ref, cap_b, force=options.force
    )
    ref_code = _run_code(ref) or "F64"
    run_a, run_b = _run_code(cap_a) or "F32", _run_code(cap_b) or "F32"
    ref_names = set(ref.tensor_names())
    tensors: list[ReferenceTensor] = []
    missing: list[str] = []
    for info_a, info_b in pairs:
        if info_a.name not in ref_names:
            missing.append(info_a.name)
            continue
        info_r = ref.info(info_a.name)
        if not (info_a.dtype in FLOAT_CODES and info_b.dtype in FLOAT_CODES and info_r.dtype in FLOAT_CODES):
            continue  # token ids, positions, routing choices: exact, compared by A↔B already
        err_a = _side_error(
            ref, cap_a, info_r, info_a, (info_a.dtype, run_a, info_r.dtype, ref_code), options
        )
        err_b = _side_error(
            ref, cap_b, info_r, info_b, (info_b.dtype, run_b, info_r.dtype, ref_code), options
        )
        name = info_a.name
        op = name if "/" in name else None
        tensors.append(
            ReferenceTensor(
                name, info_a.module, info_a.role, layer_index(name, layers_path), op, err_a, err_b
            )
        )
    result = tuple(tensors)
    words = {"A": _word(less_precise(run_a).code), "B": _word(less_precise(run_b).code)}
    manifest = ref.manifest
    device = manifest.device if manifest is not None else {}
    return ReferenceComparison(
        path=str(ref.path),
        dtype=manifest.dtype if manifest is not None else None,
        device=str(device.get("type")) if device else None,
        dtype_a=words["A"],
        dtype_b=words["B"],
        verdict=_verdict(result, words, _word(ref_code)),
        modules=_modules(result),
        tensors=result,
        missing=tuple(missing),
        differences=differences,
    )
