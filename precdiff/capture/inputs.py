"""Resolving the capture's input into the exact token ids (and text) the model will see."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precdiff.config import TOKEN_ID_LIMIT, CaptureInput
from precdiff.engines import is_response_file, prompt_ids_from
from precdiff.errors import InputError


@dataclass(frozen=True)
class ResolvedInput:
    """Token ids for the model, the text they came from (if any) and how they were produced."""

    ids: list[int]
    text: str | None
    source: str  # "prompt" | "prompt_file" | "messages" | "input_ids" | "tokens_from"
    template_sha256: str | None = None


def parse_input_ids(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` (commas and/or whitespace) to a tuple of non-negative ints."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        ids = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"--input-ids must be integers separated by commas, got {text!r}") from None
    if not ids or any(i < 0 for i in ids):
        raise InputError(f"--input-ids must be a non-empty list of non-negative token ids, got {text!r}")
    too_large = [i for i in ids if i >= TOKEN_ID_LIMIT]
    if too_large:
        raise InputError(
            f"--input-ids holds token id {too_large[0]}, beyond any vocabulary (ids are below 2**32); "
            "pass the ids the model's tokenizer produced"
        )
    return ids


def _require_tokenizer(tokenizer: Any, flag: str) -> Any:
    if tokenizer is None:
        raise InputError(
            f"{flag} needs a tokenizer but the model directory has none; "
            "pass --input-ids / input_ids=, or --tokens-from OTHER.h5"
        )
    return tokenizer


def resolve_input(spec: CaptureInput, tokenizer: Any, vocab_size: int) -> ResolvedInput:
    """Turn exactly one input option into token ids, checking them against ``vocab_size``."""
    given = [
        name
        for name in ("prompt", "prompt_file", "messages", "input_ids", "tokens_from")
        if getattr(spec, name) is not None
    ]
    if len(given) != 1:
        flags = "--prompt, --prompt-file, --messages, --input-ids, --tokens-from"
        detail = (
            "none was given" if not given else "got " + ", ".join("--" + g.replace("_", "-") for g in given)
        )
        raise InputError(f"give exactly one input among {flags}; {detail}")
    source = given[0]
    if spec.template_kwargs and source != "messages":
        raise InputError("--template-kwarg only applies with --messages")
    resolved: ResolvedInput
    if source == "input_ids":
        resolved = ResolvedInput(list(spec.input_ids or ()), None, source)
    elif source == "tokens_from" and is_response_file(spec.tokens_from or ""):
        # A serving engine's response: reuse the prompt ids it reports (strings mapped with our tokenizer).
        resolved = ResolvedInput(prompt_ids_from(spec.tokens_from or "", tokenizer), None, source)
    elif source == "tokens_from":
        from precdiff.store import open_capture

        with open_capture(spec.tokens_from or "") as other:
            ids, text = other.input_ids, other.input_text
            facts = other.manifest.tokenizer if other.manifest is not None else None
            template = facts.chat_template_sha256 if facts is not None else None
        if not ids:
            raise InputError(
                f"{spec.tokens_from} holds no input ids (killed before writing them); capture it again"
            )
        resolved = ResolvedInput(ids, text, source, template)
    elif source == "messages":
        from precdiff.templates import load_messages, render_conversation

        messages = load_messages(spec.messages or "")
        rendering = render_conversation(
            _require_tokenizer(tokenizer, "--messages"),
            messages,
            add_generation_prompt=True,
            template_kwargs=dict(spec.template_kwargs),
        )
        resolved = ResolvedInput(list(rendering.token_ids), rendering.text, source, rendering.template_sha256)
    else:
        if source == "prompt_file":
            path = Path(spec.prompt_file or "")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read --prompt-file {path}: {exc}") from None
        else:
            text = spec.prompt or ""
        if not text:
            raise InputError(
                f"the input from --{source.replace('_', '-')} is empty: nothing to run the model on"
            )
        tok = _require_tokenizer(tokenizer, "--" + source.replace("_", "-"))
        ids = list(tok(text, add_special_tokens=True)["input_ids"])
        resolved = ResolvedInput(ids, text, source)
    if not resolved.ids:
        raise InputError(f"the input from --{source.replace('_', '-')} is empty: nothing to run the model on")
    too_large = [i for i in resolved.ids if i >= vocab_size]
    if too_large:
        raise InputError(
            f"token id {too_large[0]} is outside the model's vocabulary (size {vocab_size}); "
            "check --input-ids, or that --tokens-from came from the same model"
        )
    return resolved
