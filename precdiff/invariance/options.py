"""Options of ``check_invariance`` / ``check_determinism`` and every default, in one place.

The CLI passes ``None`` for options the user did not give; ``from_cli`` drops them so the defaults
here apply ("None means default").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from typing_extensions import Self

from precdiff.config import KERNEL_MODES, MAX_NEW_TOKENS_LIMIT, check_seed
from precdiff.errors import InputError

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog, and then it"
DEFAULT_BATCH_SIZES = (1, 2, 8, 32)
PADDINGS = ("none", "left", "right")
LEVELS = ("module", "op")
# Prefill-vs-decode: how many trailing positions are recomputed as decode steps.
DEFAULT_DECODE_POSITIONS = 4
DEFAULT_RUNS = 100
DEFAULT_MAX_NEW_TOKENS = 32
# Determinism runs draw 0..max companions, so the batch holds 1..max+1 sequences.
DEFAULT_MAX_COMPANIONS = 31
# Bounds checked up front: a batch holds the probe's activations once per sequence, and a run count
# is a number of full generations; beyond these a typo runs out of memory or for days.
MAX_BATCH_SIZE = 4096
MAX_RUNS = 100_000
# Without a tokenizer and without --input-ids the probe is this many seeded random ids.
FALLBACK_PROBE_LENGTH = 16

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    """What both commands share. Field names match the CLI options."""

    device: str = "auto"
    dtype: str = "float32"
    kernels: str = "standard"
    seed: int = 0
    prompt: str | None = None
    messages: str | None = None  # path of an OpenAI-style message list, rendered with the chat template
    input_ids: tuple[int, ...] | None = None
    trust_remote_code: bool = False

    @classmethod
    def from_cli(cls, **values: Any) -> Self:
        """Build from keyword arguments, dropping ``None`` so that defaults apply."""
        return cls(**{key: value for key, value in values.items() if value is not None})

    def validate(self) -> None:
        if self.kernels not in KERNEL_MODES:
            raise InputError(
                f"unknown --kernels {self.kernels!r}; use one of: {', '.join(KERNEL_MODES)} (kernels=...)"
            )
        check_seed(self.seed)
        given = [x for x in (self.prompt, self.messages, self.input_ids) if x is not None]
        if len(given) > 1:
            raise InputError(
                "give at most one of --prompt / prompt=, --messages / messages= and --input-ids / input_ids="
            )


@dataclass(frozen=True)
class InvarianceOptions(RunOptions):
    """``precdiff invariance``: batch sizes to try, padding layout, granularity, decode positions."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    padding: str = "none"
    level: str = "module"
    decode_positions: int = DEFAULT_DECODE_POSITIONS

    def validate(self) -> None:
        super().validate()
        if self.padding not in PADDINGS:
            raise InputError(
                f"unknown --padding {self.padding!r}; use one of: {', '.join(PADDINGS)} (padding=...)"
            )
        if self.level not in LEVELS:
            raise InputError(f"unknown --level {self.level!r}; use one of: {', '.join(LEVELS)} (level=...)")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes) or max(self.batch_sizes) < 2:
            raise InputError(
                f"--batch-sizes / batch_sizes= needs positive sizes and at least one above 1, "
                f"got {','.join(map(str, self.batch_sizes)) or 'nothing'}; e.g. --batch-sizes 1,2,8,32"
            )
        if max(self.batch_sizes) > MAX_BATCH_SIZE:
            raise InputError(
                f"--batch-sizes / batch_sizes= holds {max(self.batch_sizes)}, above the limit of "
                f"{MAX_BATCH_SIZE} sequences per batch; lower it, e.g. --batch-sizes 1,2,8,32"
            )
        if self.decode_positions < 0:
            raise InputError(f"decode_positions must be >= 0, got {self.decode_positions}")

    @property
    def compared_sizes(self) -> tuple[int, ...]:
        """Batch sizes compared with the probe alone (the reference is batch size 1)."""
        return tuple(sorted({b for b in self.batch_sizes if b > 1}))


@dataclass(frozen=True)
class DeterminismOptions(RunOptions):
    """``precdiff determinism``: number of runs, tokens per run, companions per run."""

    runs: int = DEFAULT_RUNS
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_companions: int = DEFAULT_MAX_COMPANIONS

    def validate(self) -> None:
        super().validate()
        if self.runs < 1:
            raise InputError(f"--runs / runs= must be >= 1, got {self.runs}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise InputError(
                f"--max-new-tokens / max_new_tokens= must be in [1, {MAX_NEW_TOKENS_LIMIT}], "
                f"got {self.max_new_tokens}"
            )
        if self.runs > MAX_RUNS:
            raise InputError(f"--runs / runs= must be at most {MAX_RUNS}, got {self.runs}")
        if self.max_companions > MAX_BATCH_SIZE - 1:
            raise InputError(
                f"--max-companions / max_companions= must be at most {MAX_BATCH_SIZE - 1}, got "
                f"{self.max_companions}"
            )
        if self.max_companions < 0:
            raise InputError(f"--max-companions / max_companions= must be >= 0, got {self.max_companions}")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,2,8,32"`` to ``(1, 2, 8, 32)`` (sorted, duplicates dropped)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        sizes = tuple(sorted({int(p) for p in parts}))
    except ValueError:
        raise InputError(
            f"--batch-sizes takes positive integers separated by commas, got {text!r}; "
            "e.g. --batch-sizes 1,2,8,32"
        ) from None
    if not sizes or sizes[0] < 1:
        raise InputError(
            f"--batch-sizes takes positive integers separated by commas, got {text!r}; "
            "e.g. --batch-sizes 1,2,8,32"
        )
    return sizes
