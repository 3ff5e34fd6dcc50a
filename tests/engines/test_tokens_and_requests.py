"""``capture --tokens-from RESPONSE.json`` and ``precdiff engine-request``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import engine_builders as builders
import pytest
from typer.testing import CliRunner

from precdiff.capture import capture
from precdiff.capture.tiny import build_tokenizer
from precdiff.cli._app import register_commands
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.engines import engine_request
from precdiff.errors import InputError
from precdiff.store import open_capture


def test_capture_reuses_the_engines_prompt_tokens_given_as_text(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    response = tmp_path / "echo.json"
    # Prompt tokens by their text (ASCII prompt): mapped with the capture's own tokenizer.
    response.write_text(json.dumps(builders.openai_completion(n, build_tokenizer("llama"))))
    out = tmp_path / "again.h5"
    capture(
        "tiny:llama",
        out,
        CaptureInput(tokens_from=str(response)),
        CaptureOptions(device="cpu", max_new_tokens=4),
    )
    with open_capture(out) as again:
        assert again.input_ids == n.prompt
        assert again.manifest is not None and again.manifest.input.source == "tokens_from"
    ids_response = tmp_path / "ids.json"
    ids_response.write_text(json.dumps(builders.sglang(n)))
    assert compare(out, ids_response).verdict.status in ("match", "within_noise")


def test_engine_request_bodies(tiny_dir: Callable[[str], Path], tmp_path: Path) -> None:
    messages = tmp_path / "chat.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Hi"}]))
    model = str(tiny_dir("llama"))
    requests = {
        e: engine_request(model, messages=str(messages), engine=e, max_new_tokens=8)
        for e in ("vllm", "sglang", "llamacpp", "openai")
    }
    ids = list(requests["vllm"].token_ids)
    assert ids and all(list(r.token_ids) == ids for r in requests.values())
    vllm = requests["vllm"].body
    assert (requests["vllm"].route, vllm["prompt"], vllm["temperature"], vllm["max_tokens"]) == (
        "/v1/completions",
        ids,
        0.0,
        8,
    )
    assert vllm["prompt_logprobs"] == vllm["logprobs"] == 5 and vllm["return_tokens_as_token_ids"] is True
    sglang = requests["sglang"].body
    assert (
        sglang["input_ids"] == ids and sglang["logprob_start_len"] == 0 and sglang["return_logprob"] is True
    )
    assert sglang["sampling_params"]["temperature"] == 0.0
    llamacpp = requests["llamacpp"].body
    assert (requests["llamacpp"].route, llamacpp["prompt"], llamacpp["n_probs"]) == ("/completion", ids, 5)
    assert requests["llamacpp"].notes and requests["openai"].body["echo"] is True
    with pytest.raises(
        InputError, match="--engine / engine= must be one of vllm, sglang, llamacpp, openai, got 'tgi'"
    ):
        engine_request(model, messages=str(messages), engine="tgi")
    result = CliRunner().invoke(
        register_commands(), ["engine-request", model, "--messages", str(messages), "--engine", "sglang"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["input_ids"] == ids
