"""``check_invariance`` / ``check_determinism`` on CUDA, bf16 (run with the device tool, never in CI).

Run: ``python -m pytest tests/gpu/test_invariance_gpu.py -q -rA``. The full ~1B-model evidence comes from
``tests/gpu/run_invariance_h100.sh``; these are the quick checks of the same paths on a 2-layer model of
the same width (hidden 2048, 16 heads, 8 kv heads).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

WIDE = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "num_hidden_layers": 2,
    "vocab_size": 32000,
}


def _wide_model():  # type: ignore[no-untyped-def]
    from precdiff.capture import tiny

    model = tiny.build_model("llama", overrides=WIDE).to(device="cuda", dtype=torch.bfloat16)
    return model, tiny.build_tokenizer("llama")


@pytest.mark.parametrize("level", ["module", "op"])
@pytest.mark.parametrize("padding", ["none", "left"])
def test_batch_invariant_kernels_are_invariant_on_cuda(level: str, padding: str) -> None:
    from precdiff.invariance import InvarianceOptions, check_invariance

    model, tokenizer = _wide_model()
    options = InvarianceOptions(
        kernels="batch-invariant", level=level, padding=padding, batch_sizes=(1, 2, 8, 32)
    )
    report = check_invariance(model, options, tokenizer=tokenizer)
    first = report.first_non_invariant
    assert report, f"first non-invariant: {first.name if first else None}; decode {report.decode}"
    assert report.run.kernel_settings is not None and report.run.kernel_settings["backend"] == "triton"


def test_standard_kernels_are_not_invariant_on_cuda() -> None:
    """cuBLAS picks its GEMM kernel by M: a 57-token probe alone vs inside 32 sequences differs."""
    from precdiff.invariance import InvarianceOptions, check_invariance

    model, tokenizer = _wide_model()
    report = check_invariance(
        model, InvarianceOptions(level="op", batch_sizes=(1, 2, 8, 32)), tokenizer=tokenizer
    )
    first = report.first_non_invariant
    print(
        f"standard: first non-invariant {first.name if first else None}, "
        f"max ulp {max((t.max_ulp for t in report.tensors), default=0)}"
    )
    assert not report.batch_invariant and first is not None


def test_batch_invariant_generation_is_deterministic_on_cuda() -> None:
    from precdiff.invariance import DeterminismOptions, check_determinism

    model, tokenizer = _wide_model()
    report = check_determinism(
        model, DeterminismOptions(kernels="batch-invariant", runs=10, max_new_tokens=16), tokenizer=tokenizer
    )
    assert report.unique_completions == 1, [c.count for c in report.completions]
    standard = check_determinism(model, DeterminismOptions(runs=10, max_new_tokens=16), tokenizer=tokenizer)
    print(
        f"standard: {standard.unique_completions} unique completions in 10 runs "
        f"(first divergence step {standard.first_divergence_step})"
    )
