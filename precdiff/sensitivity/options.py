"""Options of ``find_sensitive_layers`` and every default, in one place.

The CLI passes ``None`` for options the user did not give; :meth:`SensitivityOptions.from_cli` drops them
so the defaults here apply ("None means default").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from typing_extensions import Self

from precdiff.errors import InputError
from precdiff.sensitivity.quantizers import QuantScheme, parse_granularity

# Flag thresholds of the practice this command comes from (issue 15): about 8-10 % of layers.
DEFAULT_KL_THRESHOLD = 0.02
DEFAULT_R_THRESHOLD = 15.0
DEFAULT_ENERGY_THRESHOLD = 0.42
# Regular histogram bins per output channel (plus one underflow and one overflow bin).
DEFAULT_BINS = 64
# Bins of the pooled histogram of a layer's float output that its activation quartiles come from.
QUARTILE_BINS = 4096
# Pseudo-count added to every histogram bin before the KL (Laplace smoothing).
DEFAULT_SMOOTHING = 1.0
DEFAULT_MAX_TOKENS = 128
DEFAULT_HOLDOUT = 16
DEFAULT_NEW_TOKENS = 16


@dataclass(frozen=True)
class SensitivityOptions:
    """How to quantize, what to measure, when to flag and how to verify. Field names match the CLI."""

    device: str = "auto"
    dtype: str = "float32"
    bits: int = 8
    granularity: str = "channel"  # tensor | channel | group:N
    symmetric: bool = True
    kl_threshold: float = DEFAULT_KL_THRESHOLD
    r_threshold: float = DEFAULT_R_THRESHOLD
    energy_threshold: float = DEFAULT_ENERGY_THRESHOLD
    budget: float | None = None  # fraction of layers to flag by combined rank, instead of thresholds
    bins: int = DEFAULT_BINS
    smoothing: float = DEFAULT_SMOOTHING
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_prompts: int | None = None  # calibration prompts used (default: all not held out)
    verify: bool = False
    holdout: int = DEFAULT_HOLDOUT  # prompts from the end of the file kept for --verify only
    new_tokens: int = DEFAULT_NEW_TOKENS
    seed: int = 0
    trust_remote_code: bool = False

    @classmethod
    def from_cli(cls, **values: Any) -> Self:
        """Build from keyword arguments, dropping ``None`` so that defaults apply."""
        return cls(**{key: value for key, value in values.items() if value is not None})

    @property
    def scheme(self) -> QuantScheme:
        granularity, group_size = parse_granularity(self.granularity)
        return QuantScheme(self.bits, granularity, group_size, self.symmetric)

    def validate(self) -> None:
        """Raises InputError naming the flag and keyword of the first invalid value."""
        self.scheme.validate()
        for flag, value in (
            ("--kl-threshold / kl_threshold=", self.kl_threshold),
            ("--r-threshold / r_threshold=", self.r_threshold),
            ("--energy-threshold / energy_threshold=", self.energy_threshold),
        ):
            if math.isnan(value) or value < 0:
                raise InputError(f"{flag} must be a number >= 0, got {value}")
        if self.budget is not None and not 0.0 < self.budget <= 1.0:
            raise InputError(
                f"--budget / budget= is a fraction of layers in (0, 1], got {self.budget}; e.g. 0.1"
            )
        if self.bins < 2:
            raise InputError(f"--bins / bins= must be >= 2, got {self.bins}")
        if math.isnan(self.smoothing) or self.smoothing <= 0:
            raise InputError(f"--smoothing / smoothing= must be > 0 (a pseudo-count), got {self.smoothing}")
        if self.max_tokens < 2:
            raise InputError(f"--max-tokens / max_tokens= must be >= 2, got {self.max_tokens}")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise InputError(f"--max-prompts / max_prompts= must be >= 1, got {self.max_prompts}")
        if self.holdout < 1:
            raise InputError(f"--holdout / holdout= must be >= 1, got {self.holdout}")
        if self.new_tokens < 1:
            raise InputError(f"--new-tokens / new_tokens= must be >= 1, got {self.new_tokens}")

    def thresholds(self) -> dict[str, float]:
        return {"kl": self.kl_threshold, "R": self.r_threshold, "energy": self.energy_threshold}
