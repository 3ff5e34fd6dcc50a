"""The recorded answers of llama.cpp's own server (native /completion, n_probs): parsed exactly, and the
ignore_eos recording flagged (llama.cpp masks the end-of-generation tokens with a -inf logit bias)."""

from __future__ import annotations

import json
from pathlib import Path

from precdiff.engines import read_responses
from precdiff.engines.request import _body

RECORDED = Path(__file__).parents[1] / "fixtures" / "engines" / "llamacpp"


def test_native_completion_reads_with_ids_and_candidates() -> None:
    (response,) = read_responses(RECORDED / "completion_native.response.json")
    raw = json.loads((RECORDED / "completion_native.response.json").read_text())
    assert response.format == "llamacpp"
    assert [step.token.token_id for step in response.generated] == [
        p["id"] for p in raw["completion_probabilities"]
    ]
    assert "".join(step.token.text or "" for step in response.generated) == raw["content"]
    for step in response.generated:
        assert len(step.top) == 5
        logprobs = [t.logprob for t in step.top]
        assert logprobs == sorted(logprobs, reverse=True)  # best first
    assert response.notes == ()  # recorded without ignore_eos: nothing masked


def test_ignore_eos_recording_names_the_masked_tokens() -> None:
    (response,) = read_responses(RECORDED / "completion_native_ignore_eos.response.json")
    (note,) = response.notes
    assert "masked token ids 0, 2, 4" in note and "ignore_eos" in note
    # The candidates are the logits' before the bias: at step 7 EOS (id 2) is the best candidate, yet
    # the masked sampler chose the second one (" I", id 339).
    step = response.generated[7]
    assert step.top[0].token_id == 2 and step.token.token_id == 339 == step.top[1].token_id


def test_engine_request_for_llamacpp_sends_no_ignore_eos() -> None:
    route, body = _body("llamacpp", [1, 2, 3], 4, 5, 0, "m")
    assert route == "/completion" and "ignore_eos" not in body and body["n_probs"] == 5
