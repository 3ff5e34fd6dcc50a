"""GGUF input: a ``.gguf`` file (or a directory holding exactly one) loaded as a plain float model.

transformers reads GGUF files itself (``from_pretrained(dir, gguf_file=name)``) and dequantizes every
tensor to float; it needs the ``gguf`` package (and ``accelerate``), the optional extra
``precdiff[gguf]``. It then marks the model as quantized (``hf_quantizer``, ``quantization_config``),
which makes ``save_pretrained`` refuse it and names a quantization that no longer exists: the weights
*are* plain floats. :func:`load_gguf` clears those marks. The tokenizer and chat template come from
the GGUF's metadata. Reusable by any side that accepts a model (capture, invariance, tokens).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from precdiff.errors import ModelLoadError

GGUF_SUFFIX = ".gguf"
MISSING_EXTRA = "reading a GGUF file needs the gguf and accelerate packages: pip install 'precdiff[gguf]'"


@dataclass
class GgufModel:
    """A dequantized GGUF model with its tokenizer and what the manifest records about the file."""

    model: transformers.PreTrainedModel
    tokenizer: Any
    sha256: str
    quantization: str | None  # e.g. "Q4_1" (the file's general.file_type), None if not recorded


def find_gguf(path: Path) -> Path | None:
    """The GGUF file ``path`` names: the file itself, or the one ``*.gguf`` of a directory without
    ``config.json`` (a Hugging Face directory is loaded as such). None when it is neither."""
    if path.is_file() and path.suffix.lower() == GGUF_SUFFIX:
        return path
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == GGUF_SUFFIX)
    if len(found) > 1:
        raise ModelLoadError(
            f"{path} holds {len(found)} GGUF files ({', '.join(p.name for p in found)}); "
            "pass the one to load as MODEL / model="
        )
    return found[0] if found else None


def _require_extra() -> None:
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError(MISSING_EXTRA)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metadata(path: Path) -> tuple[str | None, bool]:
    """The GGUF's ``general.file_type`` as a name (``MOSTLY_Q4_1`` -> ``"Q4_1"``) and whether it holds a
    tokenizer (``tokenizer.ggml.model``)."""
    import gguf

    fields = gguf.GGUFReader(str(path)).fields
    has_tokenizer = "tokenizer.ggml.model" in fields
    field = fields.get("general.file_type")
    if field is None or not field.data:
        return None, has_tokenizer
    code = int(field.parts[field.data[0]][0])
    try:
        name = gguf.LlamaFileType(code).name
    except ValueError:
        return str(code), has_tokenizer
    return name.removeprefix("MOSTLY_"), has_tokenizer


def _clear_quantizer_marks(model: transformers.PreTrainedModel) -> None:
    """The weights are dequantized floats: drop what says otherwise (save_pretrained refuses it)."""
    marks: Any = model  # plain attributes that nn.Module's typed __setattr__ does not know
    marks.hf_quantizer = None
    for owner in (model, model.config):
        if hasattr(owner, "quantization_config"):
            delattr(owner, "quantization_config")
    if getattr(model, "is_quantized", False):
        marks.is_quantized = False
    if hasattr(model, "quantization_method"):
        marks.quantization_method = None


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """transformers' GGUF reader draws a tqdm bar of its own, outside its logging switches."""
    from transformers import modeling_gguf_pytorch_utils

    reader: Any = modeling_gguf_pytorch_utils
    original = reader.tqdm
    reader.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        reader.tqdm = original


def load_gguf(path: Path, *, dtype: torch.dtype, attn_implementation: str | None = None) -> GgufModel:
    """Load a GGUF file as a float model in ``dtype`` with its tokenizer (offline)."""
    _require_extra()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kwargs: dict[str, Any] = dict(gguf_file=path.name, local_files_only=True, dtype=dtype)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        with _no_progress_bar():
            model: transformers.PreTrainedModel = transformers.AutoModelForCausalLM.from_pretrained(
                str(path.parent), **kwargs
            )
        quantization, has_tokenizer = _metadata(path)
        tokenizer = (  # like a model directory without tokenizer files: ids only (--input-ids)
            transformers.AutoTokenizer.from_pretrained(
                str(path.parent), gguf_file=path.name, local_files_only=True
            )
            if has_tokenizer
            else None
        )
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load the GGUF file {path}: {first_line}") from None
    _clear_quantizer_marks(model)
    return GgufModel(model, tokenizer, sha256_of_file(path), quantization)
