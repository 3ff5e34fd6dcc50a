"""Capture options and every capture default, in one place.

The CLI passes ``None`` for options the user did not give; :class:`CaptureOptions` holds the
resolved values ("None means default", as in Polygraphy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE = "float32"
DEFAULT_SEED = 0
DEFAULT_TOP_K = 20
DEFAULT_MAX_NEW_TOKENS = 16
KERNEL_MODES = ("standard", "batch-invariant")
# Flushing summary statistics to the host in batches costs one device synchronisation per batch.
STATS_FLUSH_EVERY = 64


@dataclass(frozen=True)
class CaptureInput:
    """Exactly one source of input tokens (the CLI's --prompt / --prompt-file / --messages /
    --input-ids / --tokens-from)."""

    prompt: str | None = None
    prompt_file: str | None = None
    messages: str | None = None  # path of an OpenAI-style message list (JSON)
    input_ids: tuple[int, ...] | None = None
    tokens_from: str | None = None  # path of another capture whose exact ids are reused
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
    save_inputs: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    top_k: int = DEFAULT_TOP_K
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    compression: str | None = None
    trust_remote_code: bool = False
    command_line: tuple[str, ...] = ()

    @classmethod
    def from_cli(cls, **values: Any) -> CaptureOptions:
        """Build from keyword arguments, dropping ``None`` so that defaults apply."""
        return cls(**{key: value for key, value in values.items() if value is not None})
