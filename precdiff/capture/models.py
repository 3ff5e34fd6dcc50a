"""Loading the model and tokenizer to capture: a local Hugging Face directory, a GGUF file (or a
directory holding one) or ``tiny:<arch>``.

Directories are read offline and only from safetensors: precdiff never unpickles a ``*.bin`` file a
user hands it. ``trust_remote_code`` stays off unless asked for. GGUF files go through transformers'
GGUF support (:mod:`precdiff.capture.gguf_model`), dequantized to a plain float model.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from precdiff.capture import tiny
from precdiff.capture.gguf_model import find_gguf, load_gguf
from precdiff.capture.names import decoder_layers
from precdiff.config import check_seed
from precdiff.devices import first_line
from precdiff.errors import InputError, ModelLoadError

TINY_PREFIX = "tiny:"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,  # the reference run (``precdiff compare --reference``), CPU or CUDA
}


@dataclass
class LoadedModel:
    """A model ready to capture, with what the manifest needs to know about it."""

    model: transformers.PreTrainedModel
    tokenizer: Any  # transformers tokenizer, or None for a directory without one
    source: str
    weights_sha256: str | None  # None where the weights cannot be hashed (external captures)
    layers_path: str
    num_layers: int
    gguf_sha256: str | None = None  # the GGUF file the weights were dequantized from, if any
    gguf_quantization: str | None = None  # its quantization type, e.g. "Q4_1"


def parse_dtype(name: str | None) -> torch.dtype:
    """``float32|bfloat16|float16|float64`` (also ``fp32``/``bf16``/``fp16``/``fp64``) to a torch dtype."""
    aliases = {
        "fp32": "float32",
        "bf16": "bfloat16",
        "fp16": "float16",
        "half": "float16",
        "fp64": "float64",
        "double": "float64",
    }
    key = aliases.get((name or "float32").lower(), (name or "float32").lower())
    if key not in DTYPES:
        raise InputError(
            f"unknown dtype {name!r}; use --dtype float32|bfloat16|float16|float64 / dtype='bfloat16'"
        )
    return DTYPES[key]


def sha256_of_tensors(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _sha256_of_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(16 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _cast_parameters(model: nn.Module, dtype: torch.dtype) -> None:
    """Cast floating parameters (not buffers) to ``dtype``, as ``from_pretrained(dtype=...)`` does,
    honouring the model's ``_keep_in_fp32_modules_strict``."""
    keep = tuple(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.is_floating_point() and not any(f".{k}." in f".{name}" for k in keep):
                parameter.data = parameter.data.to(dtype)


def _parse_tiny(source: str) -> str:
    arch = source[len(TINY_PREFIX) :]
    if arch not in tiny.TINY_ARCHS:
        raise ModelLoadError(
            f"unknown tiny model {source!r}; choose one of: "
            + ", ".join(TINY_PREFIX + a for a in tiny.TINY_ARCHS)
        )
    return arch


def _quiet_transformers() -> None:
    """No progress bars or advisory logging from transformers on a precdiff command's terminal."""
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def load_model(
    source: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    seed: int = tiny.DEFAULT_SEED,
) -> LoadedModel:
    """Load ``source`` (a local HF directory, a ``.gguf`` file or a directory holding one, or
    ``tiny:<arch>``) onto ``device`` in ``dtype``.

    The weights hash identifies the *source* weights whatever ``dtype`` they are loaded in, so a
    float32 and a bfloat16 capture of one model agree on it (for a GGUF: the file's SHA-256).
    """
    _quiet_transformers()
    gguf = None if source.startswith(TINY_PREFIX) else find_gguf(Path(source))
    tokenizer: Any
    if gguf is not None:
        loaded_gguf = load_gguf(gguf, dtype=dtype, attn_implementation=attn_implementation)
        model, tokenizer = loaded_gguf.model, loaded_gguf.tokenizer
        weights_sha256 = loaded_gguf.sha256
    elif source.startswith(TINY_PREFIX):
        arch = _parse_tiny(source)
        model = tiny.build_model(arch, seed=seed)
        weights_sha256 = sha256_of_tensors(model)
        tokenizer = tiny.build_tokenizer(arch)
        if attn_implementation:
            try:
                model.set_attn_implementation(attn_implementation)
            except (ValueError, ImportError) as exc:
                raise InputError(
                    f"--attn-impl {attn_implementation!r} cannot be used: {first_line(exc)}"
                ) from None
        _cast_parameters(model, dtype)
    else:
        model, tokenizer, weights_sha256 = _load_directory(
            Path(source),
            dtype=dtype,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        )
    # Device only: a dtype cast here would also round float32 buffers (RoPE inv_freq) that transformers
    # keeps in float32 whatever the weights' dtype, and the capture would no longer be what HF computes.
    nn.Module.to(model, device=device)  # in place; PreTrainedModel.to's wrapper confuses mypy
    model.eval()
    layers_path, num_layers = decoder_layers(model)
    return LoadedModel(
        model,
        tokenizer,
        source,
        weights_sha256,
        layers_path,
        num_layers,
        gguf_sha256=weights_sha256 if gguf is not None else None,
        gguf_quantization=loaded_gguf.quantization if gguf is not None else None,
    )


def _load_directory(
    path: Path, *, dtype: torch.dtype, attn_implementation: str | None, trust_remote_code: bool
) -> tuple[transformers.PreTrainedModel, Any, str]:
    if not path.is_dir():
        raise ModelLoadError(
            f"model {str(path)!r} is neither a local directory nor tiny:<arch>; "
            "pass a Hugging Face model directory (config.json + *.safetensors) or e.g. tiny:llama"
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json; pass a Hugging Face model directory")
    weight_files = _weight_files(path)
    if not weight_files:
        pickled = sorted(p.name for p in path.glob("*.bin"))
        hint = (
            (
                f" (found {', '.join(pickled)}: precdiff does not unpickle weight files; convert them to "
                "safetensors first)"
            )
            if pickled
            else ""
        )
        raise ModelLoadError(f"{path} has no *.safetensors weights{hint}")
    _check_config(path, trust_remote_code)
    for weights in weight_files:
        _check_safetensors(weights)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kwargs: dict[str, Any] = dict(
        local_files_only=True, trust_remote_code=trust_remote_code, use_safetensors=True, dtype=dtype
    )
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        # output_loading_info=True returns (model, info); the stubs only know the model alone.
        loaded: Any = transformers.AutoModelForCausalLM.from_pretrained(
            str(path), output_loading_info=True, **kwargs
        )
        model: transformers.PreTrainedModel = loaded[0]
        info: dict[str, Any] = loaded[1]
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the model in {path}: {first_line(exc)}") from None
    except RuntimeError as exc:
        if not any(marker in str(exc) for marker in _SHAPE_MISMATCH):
            raise
        detail = f" ({first_line(exc)})" if "size mismatch" in first_line(exc) else ""
        raise ModelLoadError(
            f"the weights in {path} do not have the shapes its config.json implies{detail}; the weights "
            "and config.json come from different models: restore the matching pair"
        ) from None
    _check_loading_info(path, info)
    tokenizer = None
    if any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ModelLoadError(f"cannot load the tokenizer in {path}: {first_line(exc)}") from None
    return model, tokenizer, _sha256_of_files(weight_files)


# Messages of transformers / torch when a weight's shape disagrees with the config.
_SHAPE_MISMATCH = ("size mismatch", "ignore_mismatched_sizes", "Error(s) in loading state_dict")
# Config entries that must be positive integers for any decoder; checked before building the model,
# whose own checks are asserts (tracebacks) or missing.
_POSITIVE_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")


def _check_config(path: Path, trust_remote_code: bool) -> None:
    import json

    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{config_file} is not valid JSON ({first_line(exc)}); repair it") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_file} must hold a JSON object; repair it")
    for key in _POSITIVE_CONFIG_KEYS:
        value = config.get(key)
        if key in config and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ModelLoadError(f"{config_file}: {key} must be a positive integer, got {value!r}; repair it")
    if config.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(
            f"{config_file} has an auto_map: the model runs Python code shipped in {path}; if you trust "
            "that code, pass --trust-remote-code / trust_remote_code=True"
        )


def _check_safetensors(weights: Path) -> None:
    """Read the file's header, so that a truncated or corrupt file is named before transformers fails."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(
            f"{weights} is not a readable safetensors file ({first_line(exc)}); it is truncated or "
            "damaged: download or save it again"
        ) from None


def _check_loading_info(path: Path, info: dict[str, Any]) -> None:
    """Refuse weights that are missing (they would be randomly initialised) or unexpected (they
    belong to another model); tied weights (lm_head tied to embed_tokens) are not reported missing."""
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(info.get("unexpected_keys") or ())
    mismatched = [str(entry[0]) for entry in info.get("mismatched_keys") or ()]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            problems.append(f"{len(names)} {label} weight(s): {', '.join(names[:3])}{more}")
    if problems:
        raise ModelLoadError(
            f"the safetensors in {path} do not match its config.json ({'; '.join(problems)}); a capture "
            "needs every weight loaded from the files (a missing one would be random): restore the "
            "model's full weight files"
        )


def _weight_files(path: Path) -> list[Path]:
    """The safetensors files the model loads: the shards named by ``model.safetensors.index.json``, or
    ``model.safetensors``; other ``*.safetensors`` (e.g. a ``consolidated.safetensors`` copy) are not
    weights of this model and must not change its hash."""
    import json

    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"{index} is not a valid safetensors index ({exc}); repair or remove it"
            ) from None
        missing = [name for name in shards if not (path / name).is_file()]
        if missing:
            raise ModelLoadError(f"{path} lacks shard(s) {', '.join(missing)} named by {index.name}")
        return [path / name for name in shards]
    single = path / "model.safetensors"
    return [single] if single.is_file() else sorted(path.glob("*.safetensors"))


def save_tiny(
    arch: str,
    directory: str | os.PathLike[str],
    *,
    seed: int = tiny.DEFAULT_SEED,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write ``tiny:<arch>`` (optionally reshaped by config ``overrides``) as a normal HF directory."""
    if arch.startswith(TINY_PREFIX):
        arch = arch[len(TINY_PREFIX) :]
    _parse_tiny(TINY_PREFIX + arch)
    check_seed(seed)
    for key, value in (overrides or {}).items():
        if key in _POSITIVE_CONFIG_KEYS and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InputError(f"--set {key}={value!r}: {key} must be a positive integer, e.g. --set {key}=64")
    _quiet_transformers()
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the model folder {target}: {exc.strerror}; pick another path"
        ) from None
    from huggingface_hub.errors import StrictDataclassError

    try:
        model = tiny.build_model(arch, seed=seed, overrides=overrides)
    except (TypeError, ValueError, StrictDataclassError) as exc:
        raise InputError(f"invalid config override (--set) for tiny:{arch}: {first_line(exc)}") from None
    model.save_pretrained(target, safe_serialization=True)
    tiny.build_tokenizer(arch).save_pretrained(target)
    return target
