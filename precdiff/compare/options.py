"""Options of :func:`precdiff.compare.compare.compare` and every compare default, in one place.

The CLI passes ``None`` for options the user did not give; :meth:`CompareOptions.from_cli` drops
them so the defaults here apply ("None means default").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from precdiff.config import name_filter
from precdiff.errors import InputError

# Values read from the file per block and per side (8 MiB of float64): large reads keep HDF5's
# per-call overhead small; metrics.accumulate slices them further to stay in the CPU cache.
DEFAULT_BLOCK_ELEMENTS = 1 << 20
DEFAULT_TOP = 10


@dataclass(frozen=True)
class CompareOptions:
    """How to compare two captures. Field names match the CLI options (``--noise-floor`` ...).

    Attributes:
        force: compare even when weights, model config or input tokens differ (``--force``).
        include: regexes; only tensor names matching one of them are compared (``--include``).
        exclude: regexes; tensor names matching one are skipped (``--exclude``).
        noise_floor: rel-L2 below which an error is rounding noise, for every dtype pair
            (``--noise-floor``); ``None`` derives it per pair (``precdiff.compare.tolerances``).
        near_tie_nats: top-1/top-2 margin under which a greedy flip is a near-tie
            (``--near-tie``); ``None`` derives it from the captures' dtypes.
        block_elements: values per side read from the file at a time (memory: ~16 bytes each).
        top: how many tensors the report lists by largest error (``--top``).
        tokenizer: tokenizer directory that maps an engine response's token strings to ids
            (``--tokenizer``); ``None`` uses the capture side's model (see ``compare/engine_side.py``).
    """

    force: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    noise_floor: float | None = None
    near_tie_nats: float | None = None
    block_elements: int = DEFAULT_BLOCK_ELEMENTS
    top: int = DEFAULT_TOP
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.noise_floor is not None and not self.noise_floor >= 0.0:
            raise InputError(f"--noise-floor / noise_floor must be ≥ 0, got {self.noise_floor}")
        if self.near_tie_nats is not None and not self.near_tie_nats >= 0.0:
            raise InputError(f"--near-tie / near_tie_nats must be ≥ 0, got {self.near_tie_nats}")
        if self.block_elements < 1:
            raise InputError(f"block_elements must be ≥ 1, got {self.block_elements}")
        if self.top < 0:
            raise InputError(f"--top / top must be ≥ 0, got {self.top}")
        self.name_filter()  # invalid regexes fail when the options are built, not mid-comparison

    @classmethod
    def from_cli(cls, **values: Any) -> CompareOptions:
        """Build from keyword arguments, dropping ``None`` so that defaults apply."""
        return cls(**{key: value for key, value in values.items() if value is not None})

    def name_filter(self) -> Callable[[str], bool]:
        """The tensor-name predicate of ``include``/``exclude`` (regexes are searched, not anchored)."""
        return name_filter(self.include, self.exclude)
