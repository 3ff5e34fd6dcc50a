"""``replay --emit-repro DIR``: a standalone reproducer of one module call, for a vendor bug report.

``DIR`` receives ``repro.py`` (plain torch code, see :mod:`precdiff.replay.repro_script`),
``weights.safetensors`` (the module's parameters, float32 where that is exact, else float64) and
``inputs.safetensors`` (the captured inputs in their captured dtypes, plus the captured output as
``captured``). Never pickle. Each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from precdiff.errors import InputError, ReplayError
from precdiff.replay.inputs import CapturedInputs, build_call
from precdiff.replay.repro_script import SCRIPT
from precdiff.replay.results import ReplayResult

SUPPORTED = "Linear, LayerNorm, Llama-style RMSNorm, gate/up/down MLPs and q/k/v/o attention"
_ACTIVATIONS = ("silu", "swish", "relu", "gelu", "gelu_pytorch_tanh", "gelu_new")


def _eps(module: nn.Module) -> float:
    value = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    return float(value) if value is not None else 1e-6


def _kind(module: nn.Module, config: Any) -> tuple[str, dict[str, Any]]:
    """The plain-torch form of ``module`` and its hyper-parameters; ReplayError when there is none."""
    name = type(module).__name__
    if isinstance(module, nn.Linear):
        return "linear", {}
    if isinstance(module, nn.LayerNorm):
        return "layernorm", {"eps": module.eps, "normalized_shape": list(module.normalized_shape)}
    if (
        name.endswith("RMSNorm")
        and "Gemma" not in name
        and isinstance(getattr(module, "weight", None), torch.Tensor)
    ):
        return "rmsnorm", {"eps": _eps(module)}
    if all(isinstance(getattr(module, p, None), nn.Linear) for p in ("gate_proj", "up_proj", "down_proj")):
        act = getattr(config, "hidden_act", None) or getattr(config, "hidden_activation", None)
        if act in _ACTIVATIONS:
            return "mlp", {"act": act}
    projections = ("q_proj", "k_proj", "v_proj", "o_proj")
    is_attention = all(isinstance(getattr(module, p, None), nn.Linear) for p in projections)
    # Sliding-window attention masks more than the causal mask the script builds: not written out.
    if is_attention and getattr(module, "sliding_window", None) is None and hasattr(module, "head_dim"):
        meta: dict[str, Any] = {
            "head_dim": int(getattr(module, "head_dim")),  # noqa: B009  (nn.Module's __getattr__ types it badly)
            "scaling": float(getattr(module, "scaling")),  # noqa: B009
        }
        q_norm = getattr(module, "q_norm", None)
        if q_norm is not None:
            meta["qk_eps"] = _eps(q_norm)
        return "attention", meta
    raise ReplayError(
        f"--emit-repro cannot write {name} as plain torch code (it supports {SUPPORTED}); replay it without "
        "--emit-repro, or emit the reproducer of one of its submodules"
    )


def _exact_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in module.state_dict().items():
        as32 = value.to(torch.float32)
        exact = value.dtype != torch.float64 or bool(torch.equal(as32.to(torch.float64), value))
        out[key] = (as32 if exact else value).contiguous()
    return out


def _captured_tensor(inputs: CapturedInputs, name: str) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(inputs.arrays[name]))
    return tensor.to(torch.bfloat16) if inputs.dtypes[name] == "BF16" else tensor


def _script_inputs(kind: str, inputs: CapturedInputs) -> dict[str, torch.Tensor]:
    args, kwargs = build_call(inputs, lambda name: _captured_tensor(inputs, name))
    x = args[0] if args and args[0] is not None else kwargs.get("hidden_states", kwargs.get("x"))
    if not isinstance(x, torch.Tensor):
        raise ReplayError(f"--emit-repro found no captured tensor input among {', '.join(inputs.names)}")
    out = {"x": x}
    if kind == "attention":
        positions = args[1] if len(args) > 1 else kwargs.get("position_embeddings")
        if not (isinstance(positions, tuple) and len(positions) == 2):
            raise ReplayError("--emit-repro needs the attention's captured position_embeddings (cos, sin)")
        out["cos"], out["sin"] = positions
        mask = args[2] if len(args) > 2 else kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            out["attention_mask"] = mask
    return out


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    temporary = path.with_name(path.name + ".partial")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary))
    os.replace(temporary, path)


def write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def result_fields(result: ReplayResult) -> dict[str, Any]:
    """What every reproducer's metadata records of the replay: the run, dtypes, device and errors."""
    return {
        "run": Path(result.run).name,
        "dtype": result.captured_dtype,
        "device": result.device,
        "replay_dtype": result.dtype,
        "captured_vs_reference": result.captured_vs_reference,
        "here_vs_reference": result.here_vs_reference,
    }


def emit_repro(directory: str | os.PathLike[str], result: ReplayResult, replayed: Any) -> Path:
    """Write the reproducer of ``result``'s module call into ``directory`` (created if needed).

    Raises:
        InputError: ``directory`` is an existing file.
        ReplayError: the module has no plain-torch form here (see :data:`SUPPORTED`).
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise InputError(f"--emit-repro {target} is a file; give a directory (created if missing)")
    kind, params = _kind(replayed.module, replayed.config)
    tensors = _script_inputs(kind, replayed.inputs)
    tensors["captured"] = torch.from_numpy(replayed.captured)
    target.mkdir(parents=True, exist_ok=True)
    meta = {
        "kind": kind,
        **params,
        "module": result.call,
        **result_fields(result),
    }
    _save(_exact_weights(replayed.module), target / "weights.safetensors")
    _save(tensors, target / "inputs.safetensors")
    script = SCRIPT.format(
        module=result.call,
        module_class=result.module_class,
        kind=kind,
        run=Path(result.run).name,
        dtype=result.captured_dtype,
        meta=json.dumps(meta, indent=1),
    )
    write_text(script, target / "repro.py")
    return target
