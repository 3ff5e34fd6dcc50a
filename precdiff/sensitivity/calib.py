"""Calibration prompts: a file of text lines or chat JSONL, tokenized and truncated.

One prompt per non-empty line. A line that parses as JSON is ``{"text": "..."}``, ``{"messages": [...]}``
or a bare list of ``{"role", "content"}`` messages (rendered with the tokenizer's chat template); any
other line is plain text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from precdiff.errors import InputError

Prompt = str | list[dict[str, Any]]


def read_prompts(path: str | Path) -> list[Prompt]:
    """The prompts in ``path`` in file order.

    Raises:
        InputError: the file cannot be read, holds no prompt, or a JSON line has another shape.
    """
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --calib {source}: {exc}; pass a UTF-8 text or JSONL file") from None
    prompts: list[Prompt] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        prompts.append(_parse_line(text, source, number))
    if not prompts:
        raise InputError(f"--calib {source} holds no prompt; put one prompt per line (text or chat JSONL)")
    return prompts


def _parse_line(text: str, source: Path, number: int) -> Prompt:
    if text[0] not in "[{":
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text  # text that merely starts with a bracket
    messages = value.get("messages") if isinstance(value, dict) else value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    if isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        return list(messages)
    raise InputError(
        f'{source} line {number} is JSON but neither {{"text": ...}} nor a message list '
        '({"messages": [{"role": ..., "content": ...}]}); fix the line or make it plain text'
    )


def tokenize(prompts: list[Prompt], tokenizer: Any, max_tokens: int) -> list[list[int]]:
    """Token ids of each prompt, truncated to ``max_tokens``; prompts shorter than 2 tokens are dropped
    (they predict nothing)."""
    if tokenizer is None:
        raise InputError(
            "the model has no tokenizer, so the calibration text cannot be tokenized; use a model "
            "directory with tokenizer files, or pass tokenizer= to find_sensitive_layers"
        )
    sequences = []
    for prompt in prompts:
        if isinstance(prompt, str):
            ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        else:
            if not getattr(tokenizer, "chat_template", None):
                raise InputError(
                    "the calibration file holds chat messages but the tokenizer has no chat template; "
                    "use plain text lines in --calib"
                )
            rendered = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=False)
            ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        if len(ids) >= 2:
            sequences.append(ids[:max_tokens])
    return sequences


def split(
    sequences: list[list[int]], *, verify: bool, holdout: int, max_prompts: int | None
) -> tuple[list[list[int]], list[list[int]]]:
    """Calibration and held-out sequences: with ``verify`` the last ``holdout`` go to verification
    only; calibration takes the first ``max_prompts`` of the rest.

    Raises:
        InputError: no calibration prompt would be left.
    """
    held = sequences[-holdout:] if verify else []
    pool = sequences[: len(sequences) - len(held)]
    calibration = pool[:max_prompts] if max_prompts is not None else pool
    if not calibration:
        raise InputError(
            f"the calibration file has {len(sequences)} usable prompt(s) (2+ tokens), and --verify holds "
            f"out {holdout}: none is left to calibrate on; add prompts or lower --holdout / holdout="
        )
    return calibration, held
