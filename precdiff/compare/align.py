"""Pair the tensors of two captures by name, and decide whether the captures are comparable at all.

Pairing is by exact tensor name (the HF module path plus ``[i]``/``:input[...]``/``#n`` suffixes);
names present on one side only are listed, never guessed at. Comparability reads the manifests:
different weights, model config or input tokens make a comparison meaningless (``refuse``; ``force``
turns them into warnings), differences in dtype, device, library versions, attention, kernels,
determinism flags and tokenizer/template hashes explain divergence (``warn``), the rest is ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from precdiff.compare.results import SEVERITY_INFO, SEVERITY_REFUSE, SEVERITY_WARN, CaptureRef, Difference
from precdiff.errors import NotComparableError
from precdiff.store.manifest import RUN_CONFIG_KEYS
from precdiff.store.reader import Capture, TensorInfo


@dataclass(frozen=True)
class Alignment:
    """Tensor pairs in A's forward order, and the names found on one side only."""

    pairs: tuple[tuple[TensorInfo, TensorInfo], ...]
    a_only: tuple[str, ...]
    b_only: tuple[str, ...]


def align(a: Capture, b: Capture, keep: Callable[[str], bool] | None = None) -> Alignment:
    """Pair tensors by name; ``keep`` (a name predicate) restricts which names are considered."""
    selected = keep or (lambda _name: True)
    names_b = {name for name in b.tensor_names() if selected(name)}
    names_a = [name for name in a.tensor_names() if selected(name)]
    set_a = set(names_a)
    pairs = tuple((a.info(name), b.info(name)) for name in names_a if name in names_b)
    a_only = tuple(name for name in names_a if name not in names_b)
    b_only = tuple(name for name in b.tensor_names() if name in names_b and name not in set_a)
    return Alignment(pairs, a_only, b_only)


# Manifest fields by severity: the first matching dotted prefix wins; unlisted fields are "info".
# Every prefix names a field of store.manifest.Manifest (tests/store/test_manifest.py checks it).
_RULES: tuple[tuple[str, str], ...] = (
    ("model.weights_sha256", SEVERITY_REFUSE),
    ("model.architecture", SEVERITY_REFUSE),
    ("model.model_type", SEVERITY_REFUSE),
    ("model.num_layers", SEVERITY_REFUSE),
    ("model.layers_path", SEVERITY_REFUSE),
    # What the device *is* matters; its size (memory, multiprocessors, CPU threads, index) is detail.
    ("device.type", SEVERITY_WARN),
    ("device.name", SEVERITY_WARN),
    ("device.capability", SEVERITY_WARN),
    ("device", SEVERITY_INFO),
    ("dtype", SEVERITY_WARN),
    ("versions", SEVERITY_WARN),
    ("attn_implementation", SEVERITY_WARN),
    ("determinism", SEVERITY_WARN),
    ("kernels", SEVERITY_WARN),
    ("kernel_settings", SEVERITY_WARN),
    ("tokenizer.sha256", SEVERITY_WARN),
    ("tokenizer.chat_template_sha256", SEVERITY_WARN),
    # Tensor parallelism changes reduction order (row-parallel all-reduce sums partial products).
    ("parallel.world_size", SEVERITY_WARN),
)
# Never reported: they differ between any two runs, or are checked more precisely elsewhere
# (the config key by key, the input ids token by token).
_SKIP = (
    "created_utc",
    "command_line",
    "model.config",
    "input",
    "format_version",
    # How a tensor-parallel run was laid out: the world size above says what matters for numerics.
    "parallel.plan",
    "parallel.rank",
    "parallel.merged",
    "parallel.kind",
    "parallel.backend",
)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key in sorted(value):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _severity(field: str) -> str | None:
    if any(field == s or field.startswith(s + ".") for s in _SKIP):
        return None
    for prefix, severity in _RULES:
        if field == prefix or field.startswith(prefix + "."):
            return severity
    return SEVERITY_INFO


def _ids_difference(ids_a: list[int], ids_b: list[int]) -> Difference | None:
    if ids_a == ids_b:
        return None
    if not ids_a or not ids_b:
        return Difference("input.ids", len(ids_a), len(ids_b), SEVERITY_WARN)
    return Difference("input.ids", len(ids_a), len(ids_b), SEVERITY_REFUSE)


def check_comparability(a: Capture, b: Capture) -> tuple[Difference, ...]:
    """Every manifest difference between A and B, with its severity (before ``force``)."""
    manifest_a, manifest_b = a.manifest, b.manifest
    differences: list[Difference] = []
    if manifest_a is None or manifest_b is None:
        differences.append(
            Difference("manifest", manifest_a is not None, manifest_b is not None, SEVERITY_WARN)
        )
    else:
        flat_a, flat_b = dict(_flatten(manifest_a.to_dict())), dict(_flatten(manifest_b.to_dict()))
        for field in sorted(set(flat_a) | set(flat_b)):
            severity = _severity(field)
            value_a, value_b = flat_a.get(field), flat_b.get(field)
            if severity is not None and value_a != value_b:
                if severity == SEVERITY_REFUSE and (value_a is None or value_b is None):
                    severity = SEVERITY_WARN  # unknown on one side (e.g. an external capture's weights)
                differences.append(Difference(field, value_a, value_b, severity))
        config_a, config_b = manifest_a.model.config, manifest_b.model.config
        for key in sorted((set(config_a) | set(config_b)) - RUN_CONFIG_KEYS):
            if config_a.get(key) != config_b.get(key):
                differences.append(
                    Difference(f"model.config.{key}", config_a.get(key), config_b.get(key), SEVERITY_REFUSE)
                )
    ids = _ids_difference(a.input_ids, b.input_ids)
    if ids is not None:
        differences.append(ids)
    return tuple(differences)


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "…" if len(text) > 16 else text


def _first_difference(ids_a: list[int], ids_b: list[int]) -> str:
    for position, (x, y) in enumerate(zip(ids_a, ids_b)):
        if x != y:
            return f"first difference at position {position}: {x} vs {y}"
    return f"one is a prefix of the other up to position {min(len(ids_a), len(ids_b))}"


def refusal_message(differences: tuple[Difference, ...], a: Capture, b: Capture) -> str:
    """One line saying why A and B cannot be compared and how to fix it."""
    refused = [d for d in differences if d.severity == SEVERITY_REFUSE]
    reasons: list[str] = []
    weights = [d for d in refused if d.field == "model.weights_sha256"]
    if weights:
        reasons.append(
            f"ran different weights (weights_sha256 {_short(weights[0].a)} vs {_short(weights[0].b)})"
        )
    model = [d for d in refused if d.field.startswith("model.") and d.field != "model.weights_sha256"]
    if model:
        listed = ", ".join(
            f"{d.field.removeprefix('model.config.').removeprefix('model.')} {d.a} vs {d.b}"
            for d in model[:3]
        )
        more = f" and {len(model) - 3} more" if len(model) > 3 else ""
        reasons.append(f"ran different models ({listed}{more})")
    ids = any(d.field == "input.ids" for d in refused)
    if ids:
        ids_a, ids_b = a.input_ids, b.input_ids
        reasons.append(
            f"saw different input tokens ({len(ids_a)} vs {len(ids_b)} tokens, "
            f"{_first_difference(ids_a, ids_b)})"
        )
        fix = (
            f"pass --tokens-from {a.path} to capture B with A's exact tokens, "
            "or --force / force=True to compare anyway"
        )
    else:
        fix = "compare two captures of the same model, or pass --force / force=True to compare anyway"
    return f"{a.path} and {b.path} " + "; ".join(reasons) + f"; {fix}"


def resolve_comparability(a: Capture, b: Capture, *, force: bool) -> tuple[Difference, ...]:
    """:func:`check_comparability`, raising unless ``force`` (which turns ``refuse`` into ``warn``).

    Raises:
        NotComparableError: different weights, model config or input tokens, without ``force``.
    """
    differences = check_comparability(a, b)
    if not any(d.severity == SEVERITY_REFUSE for d in differences):
        return differences
    if not force:
        raise NotComparableError(refusal_message(differences, a, b))
    return tuple(
        Difference(d.field, d.a, d.b, SEVERITY_WARN) if d.severity == SEVERITY_REFUSE else d
        for d in differences
    )


def capture_ref(cap: Capture) -> CaptureRef:
    """Path, completeness, dtype and device label of one side, for the result and its header."""
    manifest = cap.manifest
    device = manifest.device if manifest is not None else {}
    label = None
    if device:
        label = str(device.get("type")) + (f":{device['index']}" if device.get("index") is not None else "")
        label += f" ({device['name']})" if device.get("name") else ""
    dtype = manifest.dtype if manifest is not None else None
    kernels = manifest.kernels if manifest is not None else None
    return CaptureRef(path=str(cap.path), complete=cap.complete, dtype=dtype, device=label, kernels=kernels)
