"""Response parsing: each format, the recorded llama.cpp server answers, malformed and truncated files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from precdiff.engines import prompt_ids_from, read_responses
from precdiff.errors import EngineResponseError

RECORDED = Path(__file__).parents[1] / "fixtures" / "engines" / "llamacpp"


def write(tmp_path: Path, document: Any, name: str = "r.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_recorded_llamacpp_echo_is_realigned_and_the_chat_parsed() -> None:
    echo = read_responses(RECORDED / "completion_echo.response.json")[0]
    assert echo.format == "openai-completion"
    # 12 prompt tokens (usage); 11 of the 12 generated ones: llama-cpp-python leaves out the last.
    assert echo.prompt is not None and len(echo.prompt) == 12 and len(echo.generated) == 11
    assert len(echo.notes) == 1 and "shifted by one position" in echo.notes[0]
    # After realignment each greedy token is the best candidate of its own position.
    assert all(step.top[0].text == step.token.text for step in echo.generated)
    assert echo.prompt[5].token.text == " Paris" and echo.prompt[5].top[0].text == " Paris"
    chat = read_responses(RECORDED / "chat_logprobs.response.json")[0]
    assert chat.format == "openai-chat" and chat.prompt is None
    assert "".join(s.token.text or "" for s in chat.generated) == "The capital of France is Paris."
    assert all(len(s.top) == 5 for s in chat.generated)


def test_detects_every_documented_format(tmp_path: Path) -> None:
    documents = {
        "sglang": {
            "text": "",
            "meta_info": {
                "output_token_logprobs": [[-0.1, 5, "a"]],
                "output_top_logprobs": [[[-0.1, 5, "a"], [-2.0, 6, "b"]]],
            },
        },
        "llamacpp": {"content": "", "completion_probabilities": []},
        "tgi": {"generated_text": "", "details": {"tokens": []}},
        "openai-chat": {
            "object": "chat.completion",
            "choices": [{"message": {}, "logprobs": {"content": []}}],
        },
        "openai-completion": {
            "object": "text_completion",
            "choices": [{"text": "", "logprobs": {"tokens": [], "token_logprobs": [], "top_logprobs": []}}],
            "usage": {"completion_tokens": 0},
        },
    }
    for fmt, document in documents.items():
        assert read_responses(write(tmp_path, document))[0].format == fmt


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"id": "x", "object": "list"},
            "unknown engine response format (top-level keys: id, object); precdiff reads OpenAI /v1/completions "
            "and /v1/chat/completions, SGLang /generate, llama.cpp /completion and TGI /generate responses "
            "(docs/engines.md)",
        ),
        (
            {"object": "chat.completion", "choices": [{"message": {}, "logprobs": None}]},
            'choices[0].logprobs is null; request "logprobs": true, "top_logprobs": 5; pass the engine\'s raw '
            "JSON response (see docs/engines.md for the request flags each engine needs)",
        ),
        (
            {"object": "chat.completion", "choices": [{"message": {}}, {"message": {}}]},
            'choices holds 2 choices; precdiff compares one: send "n": 1; pass the engine\'s raw JSON response '
            "(see docs/engines.md for the request flags each engine needs)",
        ),
        (
            {"completion_probabilities": [{"id": 1, "prob": 0.5, "top_probs": []}]},
            'completion_probabilities[0] holds probabilities after sampling; send "post_sampling_probs": false; '
            "pass the engine's raw JSON response (see docs/engines.md for the request flags each engine needs)",
        ),
        (
            {"meta_info": {"output_token_logprobs": [["x", 5]]}},
            "meta_info.output_token_logprobs[0][0] should be a logprob; pass the engine's raw JSON response "
            "(see docs/engines.md for the request flags each engine needs)",
        ),
        (
            {"details": {"tokens": [{"id": 3, "text": "a"}]}},
            "details.tokens[0].logprob is missing (truncated response?); pass the engine's raw JSON response "
            "(see docs/engines.md for the request flags each engine needs)",
        ),
        (
            {"error": {"message": "model not found"}},
            "is an error answer of the engine, not a response: {'message': 'model not found'}",
        ),
    ],
)
def test_malformed_responses_give_one_line(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(EngineResponseError) as caught:
        read_responses(path)
    assert str(caught.value) == f"{path}: {message}" or str(caught.value) == f"{path} {message}"
    assert "\n" not in str(caught.value)


def test_truncated_and_empty_files(tmp_path: Path) -> None:
    text = (RECORDED / "chat_logprobs.response.json").read_text()
    truncated = write(tmp_path, text[: len(text) // 2])
    with pytest.raises(
        EngineResponseError, match=r"is not valid JSON \(.*; truncated\?\); save the complete response"
    ):
        read_responses(truncated)
    lines = write(tmp_path, json.dumps({"a": 1}) + "\n" + '{"meta_info": {', "r.jsonl")
    with pytest.raises(EngineResponseError) as caught:
        read_responses(lines)
    assert str(caught.value).startswith(f"engine response {lines} line 2 is not valid JSON (")
    with pytest.raises(EngineResponseError, match="is empty; save the engine's JSON answer into it"):
        read_responses(write(tmp_path, "  \n"))
    with pytest.raises(EngineResponseError, match="holds an empty list"):
        read_responses(write(tmp_path, "[]"))


def test_tokens_from_a_response_needs_prompt_tokens(tmp_path: Path) -> None:
    with pytest.raises(EngineResponseError) as caught:
        prompt_ids_from(RECORDED / "chat_logprobs.response.json", None)
    assert str(caught.value) == (
        f"{RECORDED / 'chat_logprobs.response.json'} (openai-chat) holds no prompt tokens; request "
        '"logprobs": true, "top_logprobs": 5, or give the prompt with --messages / --input-ids'
    )
    ids = {
        "meta_info": {
            "prompt_tokens": 2,
            "input_token_logprobs": [[None, 4, None], [-1.0, 9, None]],
            "output_token_logprobs": [],
        }
    }
    assert prompt_ids_from(write(tmp_path, ids), None) == [4, 9]
    both = write(tmp_path, [ids, ids], "two.json")
    with pytest.raises(
        EngineResponseError, match="holds 2 responses; --tokens-from / tokens_from= needs a file with one"
    ):
        prompt_ids_from(both, None)
