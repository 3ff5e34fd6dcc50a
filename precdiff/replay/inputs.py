"""The tensor to replay and its call's captured inputs, rebuilt into ``(args, kwargs)``.

``capture --save-inputs`` stores every tensor a module call receives under
``<call>:input[<key>]<suffix>`` (capture/names.py): ``<call>`` is the module name, with ``#k`` for its
k-th repeated call; ``<key>`` is a positional index or a keyword name; ``<suffix>`` is the path inside a
tuple/list (``[0]``) or dict (``[key]``) argument, e.g. ``model.layers.0.self_attn:input[position_embeddings][1]``.
Arguments that were ``None`` or not tensors (a KV cache object) are not stored; the replay passes
``None`` for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from precdiff.errors import ReplayError
from precdiff.store.format import ROLE_INPUT
from precdiff.store.reader import Capture, TensorInfo

_KEY = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class Target:
    """The captured output tensor to replay and the module call that produced it."""

    tensor: str  # e.g. "model.layers.0.self_attn[0]"
    module: str  # e.g. "model.layers.0.self_attn"
    call: str  # the module call, "<module>" or "<module>#k"
    info: TensorInfo


@dataclass(frozen=True)
class CapturedInputs:
    """A call's inputs as stored: flattened by name, and the tree to rebuild (args, kwargs) from."""

    names: tuple[str, ...]
    arrays: dict[str, np.ndarray]  # decoded exactly (bf16 -> float32 values)
    dtypes: dict[str, str]  # dtype codes as captured ("BF16", "F32", "I64", …)
    args: dict[int, Any]  # positional index -> tree of names
    kwargs: dict[str, Any]  # keyword -> tree of names


def resolve_target(cap: Capture, name: str) -> Target:
    """The output tensor ``name`` (or the first output of the module call named ``name``).

    Raises:
        ReplayError: unknown name, or an input tensor.
    """
    infos = {info.name: info for info in cap.tensor_infos()}
    info = infos.get(name)
    if info is None:  # a module name whose outputs are tuples: model.layers.0.self_attn -> ...[0]
        info = next(
            (i for i in infos.values() if i.role != ROLE_INPUT and i.name.split("[", 1)[0] == name),
            None,
        )
    if info is None:
        raise ReplayError(
            f"{cap.path} has no tensor or module call named {name!r}; `precdiff inspect {cap.path} --all` "
            "lists them (pass an output, e.g. --tensor model.layers.0.mlp.down_proj)"
        )
    if info.role == ROLE_INPUT:
        call = info.name.split(":input[", 1)[0]
        raise ReplayError(
            f"{info.name!r} is an input of {call}; replay the module's output instead: --tensor {call}"
        )
    call = info.name.split("[", 1)[0]
    return Target(tensor=info.name, module=info.module, call=call, info=info)


def _parse_keys(suffix: str) -> list[int | str]:
    return [int(k) if k.isdigit() else k for k in _KEY.findall(suffix)]


def _insert(tree: dict[Any, Any], keys: list[int | str], name: str) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = name


def load_inputs(cap: Capture, target: Target) -> CapturedInputs:
    """Every stored input tensor of ``target``'s module call.

    Raises:
        ReplayError: the capture holds no (stored) inputs for this call.
    """
    prefix = f"{target.call}:input"
    infos = [i for i in cap.tensor_infos() if i.role == ROLE_INPUT and i.name.startswith(prefix + "[")]
    saved = cap.manifest is not None and cap.manifest.capture.save_inputs
    if not infos:
        reason = (
            f"{cap.path} was captured without --save-inputs"
            if not saved
            else f"{cap.path} holds no tensor input of {target.call}"
        )
        raise ReplayError(
            f"{reason}; replay needs the inputs the module received: capture again with --save-inputs / "
            "save_inputs=True (--include can limit it to the modules of interest)"
        )
    summary = [i.name for i in infos if not i.stored]
    if summary:
        raise ReplayError(
            f"the inputs of {target.call} in {cap.path} hold statistics only (--summary); capture again "
            "without --summary to replay it"
        )
    args: dict[int, Any] = {}
    kwargs: dict[str, Any] = {}
    for info in infos:
        keys = _parse_keys(info.name[len(prefix) :])
        _insert(args if isinstance(keys[0], int) else kwargs, keys, info.name)
    return CapturedInputs(
        names=tuple(i.name for i in infos),
        arrays={i.name: cap.tensor(i.name) for i in infos},
        dtypes={i.name: i.dtype for i in infos},
        args=args,
        kwargs=kwargs,
    )


def build_call(inputs: CapturedInputs, make: Any) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` with every stored name replaced by ``make(name)`` (a tensor).

    Nested integer keys become tuples (gaps, where a ``None`` was not stored, become ``None``), string
    keys dicts; missing leading positional arguments become ``None``.
    """

    def rebuild(node: Any) -> Any:
        if isinstance(node, str):
            return make(node)
        if all(isinstance(k, int) for k in node):
            return tuple(rebuild(node[i]) if i in node else None for i in range(max(node) + 1))
        return {k: rebuild(v) for k, v in node.items()}

    count = max(inputs.args) + 1 if inputs.args else 0
    args = [rebuild(inputs.args[i]) if i in inputs.args else None for i in range(count)]
    kwargs = {key: rebuild(value) for key, value in inputs.kwargs.items()}
    return args, kwargs
