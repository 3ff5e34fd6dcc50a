"""``compare`` with an engine response as a side: every format, built from the capture's own numbers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine_builders as builders
import pytest
from typer.testing import CliRunner

from precdiff.capture.tiny import build_tokenizer
from precdiff.cli._app import register_commands
from precdiff.compare.compare import compare
from precdiff.compare.options import CompareOptions
from precdiff.errors import EngineResponseError, NotComparableError

TOKENIZER = build_tokenizer("llama")
FORMATS: dict[str, Callable[[builders.Numbers], dict[str, Any]]] = {
    "openai-completion-ids": lambda n: builders.openai_completion(n, as_ids=True),
    "vllm-prompt-logprobs": builders.vllm_prompt_logprobs,
    "openai-chat": lambda n: builders.openai_chat(n, TOKENIZER),
    "sglang": builders.sglang,
    "llamacpp": builders.llamacpp,
    "tgi": builders.tgi,
}
HAS_PROMPT_LOGPROBS = {"openai-completion-ids", "vllm-prompt-logprobs", "sglang"}


def write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_engine_with_the_captures_own_numbers_matches(fmt: str, llama_capture: Path, tmp_path: Path) -> None:
    response = write(tmp_path, fmt, FORMATS[fmt](builders.numbers(llama_capture)))
    result = compare(llama_capture, response)
    assert result.verdict.status in ("match", "within_noise"), result.verdict.message
    assert result.generation is not None and result.generation.first_divergent_step is None
    if fmt in HAS_PROMPT_LOGPROBS:
        assert result.logprobs is not None
        assert result.logprobs.top1_agreement == 1.0
        assert result.logprobs.max_abs_delta < 1e-6
        assert result.logprobs.kl_max < 1e-6
    else:  # only TGI has a prompt (prefill ids) without candidates: the first step's row is compared
        assert result.logprobs is None or (fmt == "tgi" and result.logprobs.positions == 1)
    assert result.b.device is not None and result.b.device.startswith("engine:")
    assert bool(result)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_engine_as_side_a_and_a_flip_that_is_not_a_near_tie(
    fmt: str, llama_capture: Path, tmp_path: Path
) -> None:
    n = builders.numbers(llama_capture)
    step = builders.largest_margin_step(n)
    response = write(tmp_path, fmt, FORMATS[fmt](builders.flip(n, step)))
    result = compare(response, llama_capture, options=CompareOptions(near_tie_nats=0.0))
    g = result.generation
    assert g is not None and g.first_divergent_step == step and g.near_tie is False
    assert result.verdict.status == "diverged" and result.verdict.reason == "generation_flip"
    assert not bool(result)


def test_a_flip_below_the_near_tie_threshold_is_within_noise(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    step = builders.largest_margin_step(n)
    response = write(tmp_path, "sglang", builders.sglang(builders.flip(n, step)))
    result = compare(llama_capture, response, options=CompareOptions(near_tie_nats=1e9))
    assert result.generation is not None and result.generation.near_tie is True
    assert result.verdict.status == "within_noise"


def test_different_prompt_ids_are_refused_with_the_fix(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    n.prompt = [n.prompt[0] + 1, *n.prompt[1:]]
    response = write(tmp_path, "sglang", builders.sglang(n))
    with pytest.raises(NotComparableError) as caught:
        compare(llama_capture, response)
    assert str(caught.value) == (
        f"{llama_capture} and {response} saw different prompt tokens ({len(n.prompt)} vs {len(n.prompt)} tokens, "
        f"first difference at position 0: {builders.numbers(llama_capture).prompt[:3]} vs "
        f"{n.prompt[:3]}); capture with --tokens-from {response} to run the engine's exact ids, or pass "
        "--force / force=True to compare anyway"
    ).replace("[", "(").replace("]", ")")
    forced = compare(llama_capture, response, options=CompareOptions(force=True))
    assert [d.field for d in forced.differences] == ["input.ids"]


def test_ambiguous_token_string_is_refused(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    document = builders.openai_completion(n, TOKENIZER)
    # Two byte tokens that are partial UTF-8 both decode to U+FFFD: a chosen token named so is ambiguous.
    document["choices"][0]["logprobs"]["tokens"][-1] = "\ufffd"
    response = write(tmp_path, "ambiguous", document)
    with pytest.raises(EngineResponseError, match=r"decodes from \d+ ids of the tokenizer of tiny:llama"):
        compare(llama_capture, response)


def test_jsonl_of_several_requests_picks_the_one_with_the_captures_prompt(
    llama_capture: Path, tmp_path: Path
) -> None:
    n = builders.numbers(llama_capture)
    other = builders.numbers(llama_capture)
    other.prompt = [7, *other.prompt[1:]]
    path = tmp_path / "several.jsonl"
    path.write_text("\n".join(json.dumps(builders.sglang(x)) for x in (other, n)) + "\n")
    result = compare(llama_capture, path)
    assert result.logprobs is not None and result.logprobs.top1_agreement == 1.0


def test_cli_compare_engine_json_and_exit_codes(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    good = write(tmp_path, "good", builders.llamacpp(n))
    bad = write(tmp_path, "bad", builders.llamacpp(builders.flip(n, builders.largest_margin_step(n))))
    runner = CliRunner()
    app = register_commands()
    ok = runner.invoke(app, ["compare", str(llama_capture), str(good), "--json", str(tmp_path / "r.json")])
    assert ok.exit_code == 0, ok.output
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["captures"]["b"]["device"] == "engine: llamacpp"
    assert document["tensors"] == [] and document["generation"]["first_divergent_step"] is None
    diverged = runner.invoke(app, ["compare", str(llama_capture), str(bad), "--near-tie", "0"])
    assert diverged.exit_code == 1, diverged.output
    truncated = tmp_path / "truncated.json"
    truncated.write_text(good.read_text()[:-40])
    broken = runner.invoke(app, ["compare", str(llama_capture), str(truncated)])
    assert broken.exit_code == 2
    assert broken.output.startswith("EngineResponseError: ") and broken.output.count("\n") == 1


def test_an_engine_step_that_is_not_its_own_best_candidate_is_named_not_a_numerical_flip(
    llama_capture: Path, tmp_path: Path
) -> None:
    """llama.cpp's ignore_eos masks EOS with a -inf bias: the engine then picks its runner-up. The flip is
    the request's, and the verdict says so rather than "not a near-tie"."""
    n = builders.numbers(llama_capture)
    step = builders.largest_margin_step(n)
    response = write(tmp_path, "masked", builders.llamacpp(builders.off_greedy(n, step)))
    result = compare(llama_capture, response)
    assert result.generation is not None and result.generation.first_divergent_step == step
    assert result.verdict.reason == "engine_not_greedy"
    assert "B did not choose its own most likely candidate" in result.verdict.message
    assert any(
        f"B (engine) did not choose its own most likely candidate at step(s) {step}" in w
        for w in result.warnings
    )
    honest = compare(llama_capture, write(tmp_path, "flip", builders.llamacpp(builders.flip(n, step))))
    assert honest.verdict.reason != "engine_not_greedy"
