"""The capture manifest, typed: written by capture, read by compare, inspect and tokens, in one place.

On disk the manifest is one JSON object (``/manifest``, see docs/format.md); :meth:`Manifest.to_dict`
and :meth:`Manifest.from_dict` are the only code that maps between the two. Reading is tolerant: a
field that an older precdiff or an external capture (``hooks/``) did not write reads as ``None`` (or
empty), never as an error, so version-1 files keep reading.

Comparability rules (compare/align.py) name fields by dotted path; :func:`field_paths` lists every
path this module defines, and a test checks that every rule resolves to one, so renaming a field here
cannot silently turn a "refuse" rule into "info". Fields typed ``dict`` hold free-form facts (device
properties, library versions, determinism switches, kernel settings, the model config): a rule may
name any key below them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Config entries that describe how a model was *run*, not what it is: two captures of one checkpoint
# in different dtypes or attention backends must still have equal configs. capture drops them from
# the recorded config and compare ignores them in older captures that still hold them.
RUN_CONFIG_KEYS = frozenset(
    {
        "dtype",
        "torch_dtype",
        "_attn_implementation",
        "attn_implementation",
        "_attn_implementation_autoset",
        "transformers_version",
        "_name_or_path",
        "name_or_path",
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "_commit_hash",
        # save_pretrained fills it in, an in-memory model may not have it; model.architecture (the
        # class that ran) is compared on its own.
        "architectures",
    }
)


@dataclass(frozen=True)
class HostFacts:
    hostname: str | None = None
    platform: str | None = None
    python: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    source: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # architecture config, RUN_CONFIG_KEYS removed
    weights_sha256: str | None = None  # None where unknown (external captures)
    num_parameters: int | None = None
    layers_path: str | None = None  # e.g. "model.layers"
    num_layers: int | None = None
    gguf_sha256: str | None = None  # the GGUF file the weights were dequantized from, if any
    gguf_quantization: str | None = None


@dataclass(frozen=True)
class TokenizerFacts:
    class_name: str | None = None
    sha256: str | None = None  # the full serialised tokenizer (tokenizer.json, or the sorted vocabulary)
    chat_template_sha256: str | None = None  # of the template that rendered the input, if one did
    bos_token: str | None = None
    eos_token: str | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None


@dataclass(frozen=True)
class InputFacts:
    source: str | None = None
    num_tokens: int | None = None
    ids_sha256: str | None = None


@dataclass(frozen=True)
class CaptureSettings:
    summary: bool | None = None
    focus: tuple[str, ...] = ()  # tensor-name regexes stored in full in a summary capture
    save_inputs: bool | None = None
    level: str | None = None  # "module" | "op"; None in captures made before op level existed (module)
    all_ops: bool | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    top_k: int | None = None
    max_new_tokens: int | None = None
    compression: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Everything about a run that can change its numerics, plus what identifies model and input."""

    precdiff_version: str | None = None
    format_version: int | None = None
    command_line: tuple[str, ...] = ()
    created_utc: str | None = None
    host: HostFacts = field(default_factory=HostFacts)
    device: dict[str, Any] = field(default_factory=dict)  # type, name, index, capability, memory …
    versions: dict[str, Any] = field(default_factory=dict)  # torch, cuda, cann, transformers …
    dtype: str | None = None  # the run's parameter dtype, e.g. "bfloat16"
    attn_implementation: str | None = None
    kernels: str | None = None  # "standard" | "batch-invariant"
    kernel_settings: dict[str, Any] | None = None
    determinism: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    model: ModelFacts = field(default_factory=ModelFacts)
    tokenizer: TokenizerFacts | None = None
    input: InputFacts = field(default_factory=InputFacts)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    # Tensor-parallel captures: kind, rank, world_size, backend and the plan (module pattern -> style);
    # None for a single-process capture. A merged capture keeps it with "merged": true.
    parallel: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the capture (keys as in docs/format.md)."""
        return _to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Read a stored manifest; unknown keys are ignored, missing ones take their defaults."""
        return _from_json(cls, data)  # type: ignore[no-any-return]

    @property
    def device_type(self) -> str | None:
        value = self.device.get("type")
        return value if isinstance(value, str) else None


# Field names whose JSON key differs (``class`` is a Python keyword).
_JSON_KEYS = {"class_name": "class"}


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _JSON_KEYS.get(f.name, f.name): _to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
        }
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    return value


def _from_json(cls: type[Any], data: Any) -> Any:
    if not isinstance(data, Mapping):
        return cls()
    hints = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, spec in hints.items():
        key = _JSON_KEYS.get(name, name)
        if key not in data:
            continue
        raw = data[key]
        nested = _NESTED.get((cls.__name__, name))
        if nested is not None:
            values[name] = None if raw is None and name == "tokenizer" else _from_json(nested, raw)
        elif spec.type.startswith("tuple"):
            values[name] = tuple(raw) if isinstance(raw, (list, tuple)) else ()
        elif spec.type.startswith("dict"):
            values[name] = (
                dict(raw) if isinstance(raw, Mapping) else ({} if "None" not in spec.type else None)
            )
        else:
            values[name] = raw
    return cls(**values)


_NESTED: dict[tuple[str, str], type[Any]] = {
    ("Manifest", "host"): HostFacts,
    ("Manifest", "model"): ModelFacts,
    ("Manifest", "tokenizer"): TokenizerFacts,
    ("Manifest", "input"): InputFacts,
    ("Manifest", "capture"): CaptureSettings,
}


def field_paths() -> dict[str, bool]:
    """Every dotted manifest path this module defines -> whether free-form keys may follow it."""
    paths: dict[str, bool] = {}

    def walk(cls: type[Any], prefix: str) -> None:
        for spec in dataclasses.fields(cls):
            path = prefix + _JSON_KEYS.get(spec.name, spec.name)
            nested = _NESTED.get((cls.__name__, spec.name))
            paths[path] = nested is None and spec.type.startswith("dict")
            if nested is not None:
                walk(nested, path + ".")

    walk(Manifest, "")
    return paths


def resolves(path: str) -> bool:
    """Whether a dotted path names a typed field (or a key inside a free-form one)."""
    paths = field_paths()
    if path in paths:
        return True
    return any(path.startswith(prefix + ".") and free for prefix, free in paths.items())
