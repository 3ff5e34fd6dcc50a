"""A model's config without its weights: for commands that need shapes only (``kernels tune --shapes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from precdiff.capture import tiny
from precdiff.capture.models import TINY_PREFIX, _parse_tiny
from precdiff.errors import ModelLoadError


def load_config(source: str) -> Any:
    """The HF config of ``tiny:<arch>`` or of a local model directory (``config.json``), never weights."""
    if source.startswith(TINY_PREFIX):
        return tiny.build_config(_parse_tiny(source))
    path = Path(source)
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{source!r} is neither K×N shapes (e.g. 4096x4096,4096x14336), tiny:<arch>, nor a model "
            "directory with a config.json"
        )
    import transformers

    try:
        return transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"cannot read {path / 'config.json'}: {str(exc).strip() or type(exc).__name__}"
        ) from None
