"""``compare A B --reference R``: which side departs from the float64 reference, and by how much."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reference_runs import PLANTED_MODULE
from typer.testing import CliRunner

import precdiff.cli.compare  # noqa: F401  (registers the commands)
from precdiff.cli._app import app
from precdiff.compare.compare import compare
from precdiff.compare.reference_results import REF_A, REF_B, REF_NEITHER, ReferenceComparison
from precdiff.compare.tolerances import DTYPES, noise_floor
from precdiff.errors import InputError, NotComparableError

BF16_U = DTYPES["BF16"].unit_roundoff


def three_way(a: Path, b: Path, r: Path) -> ReferenceComparison:
    result = compare(a, b, reference=r).reference
    assert result is not None
    return result


def test_planted_fault_on_b_only_is_attributed_to_b(runs: dict[str, Path]) -> None:
    ref = three_way(runs["fp32"], runs["planted"], runs["fp64"])
    verdict = ref.verdict
    assert (verdict.status, verdict.side, verdict.tensor) == (REF_B, "B", PLANTED_MODULE)
    assert verdict.a is not None and verdict.b is not None
    assert verdict.b.rel_l2 == pytest.approx(0.02, rel=1e-3)  # the planted error, measured exactly
    assert (verdict.b.ratio or 0) > 100 and (verdict.a.ratio or 0) < 0.05
    assert verdict.message.startswith(
        f"B's {PLANTED_MODULE} is {verdict.b.ratio:.0f}× further from the float64 reference than float32 "
        "rounding explains (rel-L2 2.00e-02); A is within "
    )
    assert not any(m.a.departs for m in ref.modules)  # A stays within its float32 error everywhere
    upstream = [m for m in ref.modules if m.module.startswith("model.layers.0.")]
    assert upstream and not any(m.b.departs for m in upstream)


def test_planted_fault_on_a_only_is_attributed_to_a(runs: dict[str, Path]) -> None:
    verdict = three_way(runs["planted"], runs["fp32"], runs["fp64"]).verdict
    assert (verdict.status, verdict.tensor) == (REF_A, PLANTED_MODULE)


def test_bf16_side_departs_by_what_bf16_explains(runs: dict[str, Path]) -> None:
    ref = three_way(runs["fp32"], runs["bf16"], runs["fp64"])
    assert ref.verdict.status == REF_NEITHER
    outputs = [t for t in ref.tensors if t.role == "output"]
    worst_a = max(t.a.rel_l2 or 0.0 for t in outputs)
    worst_b = max(t.b.rel_l2 or 0.0 for t in outputs)
    # bf16: a few unit roundoffs, below the bf16 noise floor; fp32: orders of magnitude closer.
    assert BF16_U / 2 < worst_b < noise_floor("BF16")
    assert worst_a < 1e-5 and worst_b > 1000 * worst_a
    assert all((t.b.rel_l2 or 0.0) >= (t.a.rel_l2 or 0.0) for t in outputs)
    assert {t.a.expected for t in outputs} == {noise_floor("F32")}
    assert {t.b.expected for t in outputs} == {noise_floor("BF16")}


def test_cli_reference_json_and_exit_code(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = ["compare", str(runs["fp32"]), str(runs["planted"]), "--reference", str(runs["fp64"])]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 1, result.output  # A↔B diverged, as without --reference
    assert "B's model.layers.1.mlp.down_proj is" in " ".join(result.stdout.split())
    section = json.loads(out.read_text())["reference"]
    assert section["verdict"]["status"] == "b_departs"
    assert section["capture"]["dtype"] == "float64"
    assert {"module", "layer", "a", "b"} <= set(section["modules"][0])


def test_reference_less_precise_than_a_side_is_refused(runs: dict[str, Path]) -> None:
    with pytest.raises(InputError) as error:
        compare(runs["fp32"], runs["fp32"], reference=runs["bf16"])
    assert str(error.value) == (
        f"reference {runs['bf16']} was captured in bfloat16; a reference must be a float64 (or float32) "
        "capture of the same tokens: capture it with --dtype float64 --device cpu --tokens-from A.h5, then "
        "pass --reference / reference="
    )


def _layers(shift: float = 0.0, fault: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    names = ["model.layers.0.mlp/aten.mm#0", "model.layers.0.mlp/aten.silu#0", "model.layers.1.mlp/aten.mm#0"]
    out = {}
    for name in names:
        value = rng.standard_normal((1, 4, 8))
        out[name] = value * (1 + shift) + (fault * value[..., ::-1] if name.endswith("silu#0") else 0.0)
    return out


def test_op_level_names_are_judged_and_named(write_capture: Callable[..., Path]) -> None:
    """Whatever the tensor names: op-level tensors ``<module>/<aten op>#k`` are judged, the op is named."""
    r = write_capture("r.h5", "float64", _layers())
    a = write_capture("a.h5", "float32", {k: v.astype(np.float32) for k, v in _layers(1e-6).items()})
    b = write_capture("b.h5", "float32", {k: v.astype(np.float32) for k, v in _layers(1e-6, 0.1).items()})
    verdict = three_way(a, b, r).verdict
    assert (verdict.status, verdict.op, verdict.module, verdict.layer) == (
        REF_B,
        "model.layers.0.mlp/aten.silu#0",
        "model.layers.0.mlp",
        0,
    )
    assert verdict.b is not None and math.isclose(verdict.b.rel_l2 or 0.0, 0.1, rel_tol=0.05)


def test_reference_of_other_tokens_is_not_comparable(write_capture: Callable[..., Path]) -> None:
    r = write_capture("r.h5", "float64", _layers(), ids=(1, 2, 3, 5))
    a = write_capture("a.h5", "float32", {k: v.astype(np.float32) for k, v in _layers().items()})
    with pytest.raises(NotComparableError, match="saw different input tokens"):
        compare(a, a, reference=r)
