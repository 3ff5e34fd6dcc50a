"""Calibration files: text lines, chat JSONL, bad lines, the held-out split; the shipped sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CALIB

from precdiff.capture import tiny
from precdiff.errors import InputError
from precdiff.sensitivity.calib import read_prompts, split, tokenize


def test_text_and_chat_lines(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello"}]
    path = tmp_path / "calib.jsonl"
    lines = [
        "plain text",
        "",
        json.dumps({"text": "from json"}),
        json.dumps({"messages": messages}),
        "{not json",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    prompts = read_prompts(path)
    assert prompts == ["plain text", "from json", messages, "{not json"]
    ids = tokenize(prompts, tiny.build_tokenizer("qwen2"), max_tokens=5)
    assert [len(x) for x in ids] == [5, 5, 5, 5]


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_prompts(empty)
    assert str(info.value) == f"--calib {empty} holds no prompt; put one prompt per line (text or chat JSONL)"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"role": "user"}\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_prompts(bad)
    assert str(info.value) == (
        f'{bad} line 1 is JSON but neither {{"text": ...}} nor a message list '
        '({"messages": [{"role": ..., "content": ...}]}); fix the line or make it plain text'
    )
    with pytest.raises(InputError, match="cannot read --calib"):
        read_prompts(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="has no tokenizer"):
        tokenize(["text"], None, 8)


def test_split_holds_out_the_last_prompts() -> None:
    sequences = [[i, i] for i in range(10)]
    calibration, held = split(sequences, verify=True, holdout=3, max_prompts=4)
    assert calibration == sequences[:4] and held == sequences[7:]
    assert split(sequences, verify=False, holdout=3, max_prompts=None) == (sequences, [])
    with pytest.raises(InputError) as info:
        split(sequences[:2], verify=True, holdout=2, max_prompts=None)
    assert str(info.value) == (
        "the calibration file has 2 usable prompt(s) (2+ tokens), and --verify holds out 2: none is left "
        "to calibrate on; add prompts or lower --holdout / holdout="
    )


def test_shipped_sample_is_small_real_text() -> None:
    prompts = read_prompts(CALIB)
    assert len(prompts) >= 200 and all(isinstance(p, str) and len(p) >= 100 for p in prompts)
    assert CALIB.stat().st_size < 200_000
    assert (CALIB.parent / "README.md").is_file()
