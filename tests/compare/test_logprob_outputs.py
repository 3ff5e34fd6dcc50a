"""The per-position outputs of a comparison: chosen-token Δlogprob, top-k overlap, token texts, the two
continuations with the near-tie rule, and the JSON bound on long prompts."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from precdiff.capture.tiny import build_tokenizer
from precdiff.compare.compare import compare
from precdiff.compare.logprobs import compare_generation, compare_topk, next_tokens
from precdiff.compare.results import MAX_LISTED, LogprobComparison
from precdiff.compare.token_text import display_tokenizer, token_text, token_texts
from precdiff.store.reader import Generation, TopK

TOKENIZER = build_tokenizer("llama")
MakeCapture = Callable[..., Path]


def topk(ids: list[list[int]], logprobs: list[list[float]]) -> TopK:
    return TopK(np.asarray(ids, dtype=np.int64), np.asarray(logprobs, dtype=np.float64))


def test_next_tokens_are_the_following_prompt_token_then_the_first_generated() -> None:
    assert next_tokens([5, 6, 7], 9, 3).tolist() == [6, 7, 9]
    assert next_tokens([5, 6, 7], None, 3).tolist() == [6, 7, -1]
    assert next_tokens([5, 6, 7], 9, 2, start=1).tolist() == [7, 9]
    assert next_tokens(None, 9, 2).tolist() == [-1, -1]


def test_chosen_delta_where_both_sides_know_the_token() -> None:
    a = topk([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[-0.1, -2.0, -3.0]] * 3)
    b = topk([[1, 2, 3], [4, 6, 5], [7, 8, 10]], [[-0.3, -2.0, -3.5]] * 3)
    chosen = np.array([2, 5, 9], dtype=np.int64)
    result = compare_topk(a, b, chosen)
    # Row 0: id 2 at -2.0 on both; row 1: id 5 is A's -2.0 and B's -3.5; row 2: id 9 is not in B's top-k.
    assert result.chosen_delta == (0.0, -1.5, None)
    assert result.chosen_ids == (2, 5, 9) and result.chosen_tokens is None
    # A side's own logprob of the token (an engine's echo) fills in where its top-k does not hold it.
    known_b = np.array([np.nan, np.nan, -4.25])
    assert compare_topk(a, b, chosen, (None, known_b)).chosen_delta == (0.0, -1.5, -1.25)
    assert compare_topk(a, b).chosen_delta == (None, None, None)


def test_topk_overlap_uses_the_smaller_k_and_lossy_ids_match_nothing() -> None:
    a = topk([[1, 2, 3], [1, 2, 3], [-1, 2, 3]], [[-0.1, -1.0, -2.0]] * 3)
    b = topk([[2, 1], [1, 9], [-1, 2]], [[-0.2, -0.5]] * 3)
    result = compare_topk(a, b)
    # k = 2: A's best two {1, 2}; row 1 shares id 1 only; row 2: -1 names no token, only id 2 is shared.
    assert result.topk_overlap == (1.0, 0.5, 0.5)
    assert result.topk_overlap_mean == pytest.approx(2 / 3) and result.topk_overlap_min == 0.5
    assert result.to_dict()["topk_overlap_k"] == 2


def test_token_texts_keep_byte_pieces_and_special_tokens_visible() -> None:
    ids = TOKENIZER("é—<|eot_id|>", add_special_tokens=False)["input_ids"]
    assert token_texts(TOKENIZER, ids) == ("<0xC3>", "<0xA9>", "<0xE2>", "<0x80>", "<0x94>", "<|eot_id|>")
    (space,) = TOKENIZER(" ", add_special_tokens=False)["input_ids"]
    assert token_text(TOKENIZER, space) == " "
    assert token_texts(None, ids) is None
    assert token_texts(TOKENIZER, [-1, 10**6]) == ("<id -1>", "<id 1000000>")


def test_a_tokenizer_is_loaded_only_from_local_files(tmp_path: Path) -> None:
    assert display_tokenizer(None) == (None, None)
    missing = tmp_path / "elsewhere"
    assert display_tokenizer(str(missing)) == (
        None,
        f"token texts: the tokenizer source {missing} does not exist here (pass --tokenizer DIR)",
    )
    # A directory whose tokenizer needs its own code: refused (never trust_remote_code), said why.
    (tmp_path / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "Custom", "auto_map": {"AutoTokenizer": ["tok.Custom", null]}}'
    )
    (tmp_path / "vocab.json").write_text('{"a": 0}')
    (tmp_path / "tok.py").write_text("raise SystemExit('remote code ran')\n")
    tokenizer, why = display_tokenizer(str(tmp_path))
    assert tokenizer is None and why is not None
    assert why.startswith(f"token texts: cannot load the tokenizer of {tmp_path} from local files (")


def generation(ids: list[int], margins: list[float], top: list[float] | None = None) -> Generation:
    array = np.asarray(ids, dtype=np.int64)
    rows = TopK(array[:, None], np.zeros((len(ids), 1)))
    return Generation(array, rows, np.asarray(margins), None if top is None else np.asarray(top))


def test_generation_keeps_both_continuations_and_states_the_near_tie_rule() -> None:
    h, i, o, bang = TOKENIZER("Hio!", add_special_tokens=False)["input_ids"]
    a = generation([h, i, bang], [1.0, 0.3, 1.0], [20.0, 20.0, 20.0])
    b = generation([h, o, bang], [1.0, 0.2, 1.0], [20.0, 20.0, 20.0])
    result = compare_generation(a, b, None, ("F32", "BF16"), TOKENIZER)
    assert result.first_divergent_step == 1 and result.near_tie is True
    assert result.ids_a == (h, i, bang) and result.ids_b == (h, o, bang)
    assert result.tokens_a == ("H", "i", "!") and result.tokens_b == ("H", "o", "!")
    assert result.near_tie_rule == "both margins ≤ max(0.01, 4·ulp(20) in BF16) = 0.5 nats"
    given = compare_generation(a, b, 0.25, ("F32", "BF16"))
    assert given.near_tie is False and given.tokens_a is None
    assert given.near_tie_rule == "both margins ≤ 0.25 nats (given: --near-tie / near_tie_nats=)"
    old = compare_generation(generation([1], [0.5]), generation([2], [0.5]), None, ("BF16",))
    assert old.near_tie_rule == "both margins ≤ max(0.01, 16·u(BF16)) = 0.0625 nats (no top logit stored)"
    same = compare_generation(a, a, None, ("F32",))
    assert same.near_tie_rule.startswith("no differing step; a flip would be a near-tie when both margins")
    document = result.to_dict()
    assert (document["ids_b"], document["tokens_b"]) == ([h, o, bang], ["H", "o", "!"])


def test_per_position_lists_are_bounded_in_the_json() -> None:
    n = MAX_LISTED + 10
    result = LogprobComparison(
        positions=n, k_a=5, k_b=5, kl_mean=0.0, kl_max=1.0, kl_max_position=n - 1, top1_agreement=1.0,
        max_abs_delta=0.0, max_abs_delta_position=0, exact=False, kl=(0.0,) * (n - 1) + (1.0,),
        chosen_ids=(3,) * n, chosen_delta=(0.0,) * (n - 1) + (-2.0,), topk_overlap=(1.0,) * n,
    )  # fmt: skip
    document = result.to_dict()
    assert document["listed_positions"] == MAX_LISTED == 4096
    for key in ("kl", "chosen_ids", "chosen_delta", "topk_overlap"):
        assert len(document[key]) == MAX_LISTED
    # Summaries still cover every position.
    assert (document["kl_max_position"], document["chosen_delta_max_abs"]) == (n - 1, 2.0)


def test_a_capture_comparison_names_the_tokens(llama_capture: Path, tmp_path: Path) -> None:
    result = compare(llama_capture, llama_capture)
    lp, gen = result.logprobs, result.generation
    assert lp is not None and gen is not None and result.prompt_tokens is not None
    prompt = TOKENIZER("Hello, world")["input_ids"]
    assert result.prompt_tokens == token_texts(TOKENIZER, prompt)
    assert result.prompt_tokens[:3] == ("<|begin_of_text|>", "H", "e")
    # Row r predicted prompt token r + 1; the last row the first generated token.
    assert lp.chosen_ids == (*prompt[1:], gen.ids_a[0])
    assert lp.chosen_tokens is not None and lp.chosen_tokens[:2] == ("H", "e")
    assert all(v == 0.0 for v in lp.chosen_delta if v is not None)
    assert lp.topk_overlap == (1.0,) * lp.positions and lp.topk_overlap_min == 1.0
    assert gen.tokens_a == gen.tokens_b == token_texts(TOKENIZER, gen.ids_a)
    assert not any(math.isnan(v) for v in lp.kl)


def test_one_side_without_top_k_leaves_logprobs_null_and_says_so(make_capture: MakeCapture) -> None:
    x = {"model.embed_tokens": np.ones((1, 4, 8), dtype=np.float32)}
    logprobs = (np.tile(np.arange(3), (4, 1)).astype(np.int64), np.full((4, 3), -1.0, dtype=np.float32))
    a = make_capture("a.h5", x, logprobs=logprobs)
    b = make_capture("b.h5", x)
    result = compare(a, b)
    assert result.logprobs is None and result.to_dict()["logprobs"] is None
    assert result.warnings == (
        f"prompt logprobs: {b} has no top-k candidates for the prompt, so KL, top-k overlap and Δlogprob are null",
    )
    assert compare(b, make_capture("c.h5", x)).warnings == ()  # neither side: nothing to say
