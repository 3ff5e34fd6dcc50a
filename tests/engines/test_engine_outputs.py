"""An engine side's per-position outputs: top-k overlap, the chosen token's Δlogprob (from the engine's
own echo where its top-k lacks the token), token texts, and what is null when a side has no top-k."""

from __future__ import annotations

import json
from pathlib import Path

import engine_builders as builders

from precdiff.capture.tiny import build_tokenizer
from precdiff.compare.compare import compare
from precdiff.compare.token_text import token_texts
from precdiff.store import open_capture

TOKENIZER = build_tokenizer("llama")


def write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def test_overlap_and_chosen_delta_against_an_engine(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    with open_capture(llama_capture) as cap:
        full = cap.prompt_logprobs
        assert full is not None
    # The engine echoes each prompt token's own logprob, also where its top-5 lacks the token: take it
    # from the capture's top-20, so the chosen-token Δlogprob is known (and 0) at those rows too.
    for position in range(1, len(n.prompt)):
        row = dict(zip(full.ids[position - 1].tolist(), full.logprobs[position - 1].astype(float).tolist()))
        n.own[position] = row.get(n.prompt[position])
    planted = 3  # capture row 3: the engine's 5th candidate becomes an id the capture never ranked
    n.tops[planted + 1][4] = (270, n.tops[planted + 1][4][1])
    result = compare(llama_capture, write(tmp_path, "sglang", builders.sglang(n)))
    lp = result.logprobs
    assert lp is not None and (lp.k_a, lp.k_b) == (5, 5)
    assert lp.topk_overlap[planted] == 0.8
    assert all(v == 1.0 for r, v in enumerate(lp.topk_overlap) if r != planted)
    assert (lp.topk_overlap_min, lp.to_dict()["topk_overlap_k"]) == (0.8, 5)
    outside = [r for r in range(len(n.prompt) - 1) if n.prompt[r + 1] not in dict(n.tops[r + 1])]
    assert outside, "the prompt should hold a token outside the engine's top-5"
    known = [r for r in range(len(n.prompt) - 1) if n.own[r + 1] is not None]
    assert [r for r, v in enumerate(lp.chosen_delta) if v is not None][: len(known)] == known
    assert all(abs(lp.chosen_delta[r] or 0.0) < 1e-6 for r in known)
    assert lp.chosen_ids[: len(n.prompt) - 1] == tuple(n.prompt[1:])
    # Texts from the capture's tokenizer, for the prompt and both continuations.
    assert result.prompt_tokens == token_texts(TOKENIZER, n.prompt)
    assert result.generation is not None and result.generation.tokens_b == token_texts(TOKENIZER, n.generated)


def test_two_engine_sides_show_the_engines_own_texts(llama_capture: Path, tmp_path: Path) -> None:
    n = builders.numbers(llama_capture)
    document = builders.sglang(n)
    # SGLang's return_text_in_logprobs: [logprob, id, text]; no capture, so no tokenizer is known.
    for key in ("input_token_logprobs", "output_token_logprobs"):
        for triple in document["meta_info"][key]:
            triple[2] = TOKENIZER.decode([triple[1]])
    result = compare(write(tmp_path, "a", document), write(tmp_path, "b", document))
    assert result.prompt_tokens == tuple(TOKENIZER.decode([i]) for i in n.prompt)
    assert result.generation is not None
    assert result.generation.tokens_a == tuple(TOKENIZER.decode([i]) for i in n.generated)


def test_a_side_without_prompt_candidates_has_no_logprobs_and_says_so(
    llama_capture: Path, tmp_path: Path
) -> None:
    response = write(tmp_path, "llamacpp", builders.llamacpp(builders.numbers(llama_capture)))
    result = compare(llama_capture, response)
    assert result.logprobs is None
    assert (
        f"prompt logprobs: {response} has no top-k candidates for the prompt, so KL, top-k overlap and "
        "Δlogprob are null; only the generation is compared"
    ) in result.warnings
    assert result.to_dict()["logprobs"] is None
