"""End to end on real tiny models: planted weight faults are named exactly; bf16 rounding is noise.

A copy of a tiny model gets one module's weights perturbed; the original is captured in fp32, the
copy in fp32 and in bf16; ``compare`` must name the perturbed module's layer and module. Also
checks the noise-floor calibration: unperturbed bf16-vs-fp32 captures are ``within_noise``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers

from precdiff.capture import capture
from precdiff.compare.compare import compare
from precdiff.compare.options import CompareOptions
from precdiff.config import CaptureInput, CaptureOptions

PROMPT = "The quick brown fox jumps over the lazy dog."
FORCE = CompareOptions(force=True)  # the perturbed copy has other weights by construction


def run(model: Path, out: Path, dtype: str) -> Path:
    capture(
        str(model),
        out,
        CaptureInput(prompt=PROMPT),
        CaptureOptions(device="cpu", dtype=dtype, max_new_tokens=2),
    )
    return out


def perturbed_copy(
    source: Path, target: Path, parameter: str, scale: float, expert: int | None = None
) -> Path:
    shutil.copytree(source, target)
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    weight = dict(model.named_parameters())[parameter]
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        view = weight[expert] if expert is not None else weight
        view += scale * view.std() * torch.randn(view.shape, generator=generator)
    model.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def reference(
    tiny_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = run(tiny_dir(arch), tmp_path_factory.mktemp(arch) / "ref_fp32.h5", "float32")
        return cache[arch]

    return make


@pytest.mark.parametrize(
    ("arch", "parameter", "scale", "expert", "module"),
    [
        ("llama", "model.layers.1.self_attn.k_proj.weight", 0.3, None, "model.layers.1.self_attn.k_proj"),
        ("llama", "model.layers.2.mlp.down_proj.weight", 0.3, None, "model.layers.2.mlp.down_proj"),
        (
            "llama",
            "model.layers.0.post_attention_layernorm.weight",
            5.0,
            None,
            "model.layers.0.post_attention_layernorm",
        ),
        (
            "qwen2_moe",
            "model.layers.2.mlp.experts.down_proj",
            1.0,
            0,
            "model.layers.2.mlp.experts",
        ),  # expert 0: routed to
    ],
)
def test_planted_fault_is_named(
    tiny_dir: Callable[[str], Path],
    reference: Callable[[str], Path],
    tmp_path: Path,
    arch: str,
    parameter: str,
    scale: float,
    expert: int | None,
    module: str,
) -> None:
    bad = perturbed_copy(tiny_dir(arch), tmp_path / "bad", parameter, scale, expert)
    layer = int(parameter.split(".")[2])
    for dtype in ("float32", "bfloat16"):
        result = compare(reference(arch), run(bad, tmp_path / f"{dtype}.h5", dtype), options=FORCE)
        v = result.verdict
        assert (v.status, v.layer, v.module) == ("diverged", layer, module), (dtype, v.message)
        assert v.message.startswith(f"divergence jumps at layer {layer} in {module}: rel-L2 ")


@pytest.mark.parametrize("arch", ["llama", "qwen2_moe"])
def test_bf16_rounding_is_within_noise(
    tiny_dir: Callable[[str], Path], reference: Callable[[str], Path], tmp_path: Path, arch: str
) -> None:
    result = compare(reference(arch), run(tiny_dir(arch), tmp_path / "bf16.h5", "bfloat16"))
    assert result.verdict.status == "within_noise", result.verdict.message
    assert [d.field for d in result.differences if d.severity != "info"] == ["dtype"]
    assert result.logprobs is not None and result.logprobs.top1_agreement > 0.9
