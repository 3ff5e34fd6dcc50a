"""``summarize_capture()``: what one capture holds, for ``precdiff inspect``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precdiff._json import json_float
from precdiff.store.manifest import Manifest
from precdiff.store.reader import open_capture


@dataclass(frozen=True)
class TensorRow:
    """One captured tensor's metadata and statistics (no values)."""

    name: str
    role: str
    dtype: str
    shape: tuple[int, ...]
    stored: bool
    stats: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "stored": self.stored,
            "stats": {k: json_float(v) for k, v in self.stats.items()},
        }


@dataclass(frozen=True)
class CaptureSummary:
    """Manifest, input, generation and tensor table of one capture."""

    path: str
    complete: bool
    format_version: int
    manifest: Manifest | None  # None: the capture was interrupted before writing it
    input_ids: tuple[int, ...]
    input_text: str | None
    generated_ids: tuple[int, ...]
    generated_margins: tuple[float, ...]
    prompt_topk: int  # k of the stored prompt top-k logprobs (0: none)
    tensors: tuple[TensorRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "complete": self.complete,
            "format_version": self.format_version,
            "manifest": self.manifest.to_dict() if self.manifest is not None else None,
            "input_ids": list(self.input_ids),
            "input_text": self.input_text,
            "generated_ids": list(self.generated_ids),
            "generated_margins": [json_float(m) for m in self.generated_margins],
            "prompt_topk": self.prompt_topk,
            "tensors": [t.to_dict() for t in self.tensors],
        }


def summarize_capture(path: str | os.PathLike[str]) -> CaptureSummary:
    """Read everything ``precdiff inspect`` shows, without loading any tensor's values.

    Raises:
        InputError, CaptureFormatError: as :func:`precdiff.store.open_capture`.

    Example:
        >>> summarize_capture("run.h5").tensors[0].name  # doctest: +SKIP
        'model.embed_tokens'
    """
    with open_capture(Path(path)) as cap:
        generation = cap.generation
        topk = cap.prompt_logprobs
        return CaptureSummary(
            path=str(cap.path),
            complete=cap.complete,
            format_version=cap.format_version,
            manifest=cap.manifest,
            input_ids=tuple(cap.input_ids),
            input_text=cap.input_text,
            generated_ids=tuple(int(i) for i in generation.ids) if generation is not None else (),
            generated_margins=tuple(float(m) for m in generation.margin) if generation is not None else (),
            prompt_topk=int(topk.ids.shape[1]) if topk is not None and topk.ids.ndim == 2 else 0,
            tensors=tuple(
                TensorRow(i.name, i.role, i.dtype, i.shape, i.stored, dict(i.stats))
                for i in cap.tensor_infos()
            ),
        )
