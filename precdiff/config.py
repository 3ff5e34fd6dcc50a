"""Capture options and every capture default, in one place.

The CLI passes ``None`` for options the user did not give; :class:`CaptureOptions` holds the
resolved values ("None means default", as in Polygraphy).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from precdiff.errors import InputError

DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE = "float32"
DEFAULT_SEED = 0
DEFAULT_TOP_K = 20
DEFAULT_MAX_NEW_TOKENS = 16
KERNEL_MODES = ("standard", "batch-invariant")
# What ``capture`` records: every module's output, or also every aten op inside it.
CAPTURE_LEVELS = ("module", "op")
# Upper bounds checked before any model is loaded, so a typo (an extra zero, 10**9) fails at once
# instead of running for hours: greedy decoding is one forward pass per token, and no model precdiff
# targets has a context this long; a seed must fit the 32 bits every seeded generator accepts (the
# probes derive per-run seeds from it by multiplication, which must stay within 64 bits).
MAX_NEW_TOKENS_LIMIT = 8192
SEED_LIMIT = 2**32
# Token ids are stored as int64; no vocabulary comes near 2**32.
TOKEN_ID_LIMIT = 2**32
# Summaries go to the host in batches of this many tensors, and at the end of each forward: every
# batch costs a device synchronisation, which drains the device queue and stalls the forward (a
# module-level 8B forward has ~420 tensors, an op-level one ~1,700). A queued summary holds ~2 KB of
# device memory.
STATS_FLUSH_EVERY = 1024


@dataclass(frozen=True)
class CaptureInput:
    """Exactly one source of input tokens (the CLI's --prompt / --prompt-file / --messages /
    --input-ids / --tokens-from)."""

    prompt: str | None = None
    prompt_file: str | None = None
    messages: str | None = None  # path of an OpenAI-style message list (JSON)
    input_ids: tuple[int, ...] | None = None
    tokens_from: str | None = (
        None  # another capture, or an engine response (.json/.jsonl), whose ids are reused
    )
    template_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureOptions:
    """How to run and what to record. Field names match the CLI options."""

    device: str = DEFAULT_DEVICE
    dtype: str = DEFAULT_DTYPE
    attn_implementation: str | None = None
    kernels: str = "standard"
    deterministic: bool = False
    seed: int = DEFAULT_SEED
    summary: bool = False
    # Tensor-name regexes stored in full while everything else is a summary (implies ``summary``).
    focus: tuple[str, ...] = ()
    save_inputs: bool = False
    level: str = "module"  # one of CAPTURE_LEVELS
    all_ops: bool = False  # op level: also view/metadata ops
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    top_k: int = DEFAULT_TOP_K
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    compression: str | None = None
    trust_remote_code: bool = False
    tp: int = 1  # tensor-parallel ranks (run under torchrun; each rank writes RUN.rankR.h5)
    command_line: tuple[str, ...] = ()

    @classmethod
    def from_cli(cls, **values: Any) -> CaptureOptions:
        """Build from keyword arguments, dropping ``None`` so that defaults apply."""
        return cls(**{key: value for key, value in values.items() if value is not None})


def check_seed(seed: int) -> None:
    """Refuse a seed outside ``[0, 2**32)`` (:data:`SEED_LIMIT`)."""
    if not 0 <= seed < SEED_LIMIT:
        raise InputError(f"--seed / seed= must be in [0, 2**32), got {seed}; e.g. --seed 0")


def check_max_new_tokens(value: int) -> None:
    """Refuse a generation length outside ``[0, MAX_NEW_TOKENS_LIMIT]``."""
    if not 0 <= value <= MAX_NEW_TOKENS_LIMIT:
        raise InputError(
            f"--max-new-tokens / max_new_tokens= must be in [0, {MAX_NEW_TOKENS_LIMIT}], got {value}; "
            "a precision diff needs a few dozen tokens, e.g. --max-new-tokens 32"
        )


def name_filter(include: Sequence[str] | None, exclude: Sequence[str] | None) -> Callable[[str], bool]:
    """The one place a name selection (``--include`` / ``--exclude`` regexes) becomes a predicate.

    A name is kept if it matches any ``include`` regex (all names, when none is given) and no
    ``exclude`` regex. Regexes are searched (``re.search``), not anchored. Used by capture (module
    names) and compare (tensor names).
    """
    includes = _compile_all(include, "--include / include")
    excludes = _compile_all(exclude, "--exclude / exclude")

    def keep(name: str) -> bool:
        if includes and not any(p.search(name) for p in includes):
            return False
        return not any(p.search(name) for p in excludes)

    return keep


def _compile_all(patterns: Sequence[str] | None, flag: str) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns or ():
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise InputError(f"invalid regular expression {pattern!r} for {flag}: {exc}") from None
    return compiled


def parse_key_values(pairs: Sequence[str] | None, flag: str, example: str) -> dict[str, Any]:
    """``["k=v", ...]`` to a dict (``--set``, ``--template-kwarg``, ``--a-kwarg``): ``v`` is JSON when it
    parses (``false``, ``3``, ``{"a": 1}``; Python's ``True``/``False``/``None`` too), else the string.

    Raises:
        InputError: a pair has no ``=`` or an empty key.
    """
    values: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} expects KEY=VALUE (e.g. {flag} {example}), got '{pair}'")
        values[key.strip()] = _parse_value(raw)
    return values


def _parse_value(raw: str) -> Any:
    text = raw.strip()
    python_spellings = {"True": True, "False": False, "None": None}
    if text in python_spellings:
        return python_spellings[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return raw
