"""``replay()``: re-run one captured module call in isolation from the inputs it received.

The model is loaded once, in float32 on the CPU, from the source the manifest records (or
``options.model``) and its weights hash checked against the manifest. Only the module to replay is
kept, in three copies whose *parameters* are cast (buffers such as RoPE tables keep their dtype, as in
a capture):

- **here**: ``options.dtype`` (default: the capture's dtype) on ``options.device`` (default: this
  machine's accelerator), under ``options.kernels``;
- **reference**: float64 on the CPU, float64 kept through the model's float32 upcasts
  (:func:`precdiff.capture.float64.keep_float64`);
- **baseline** (only when *here* is not the CPU): the captured dtype on the CPU, the rounding a
  correct implementation of that dtype gives.

Inputs are the captured tensors, exactly (bf16 inputs stay bf16 in the captured dtype; the reference
gets them upcast to float64). The verdict divides the captured output's distance from the reference
by the error the captured dtype explains for this call, ``expected = max(u, baseline error)`` with
``u`` the dtype's unit roundoff: above :data:`DEPARTURE_RATIO`, the op *computes differently* in the
captured run; below, it computed what its dtype explains from the inputs it received, so a divergence
in its output came in through those inputs.
"""

from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from precdiff.capture.float64 import keep_float64
from precdiff.capture.models import parse_dtype
from precdiff.capture.names import flatten_tensors
from precdiff.capture.runner import _attn_implementation, kernel_mode
from precdiff.compare.tolerances import manifest_dtype_code
from precdiff.config import CaptureOptions
from precdiff.devices import resolve_device
from precdiff.errors import ReplayError
from precdiff.replay.inputs import CapturedInputs, Target, build_call, load_inputs, resolve_target
from precdiff.replay.options import DTYPE_NAMES, ReplayOptions, load_checked
from precdiff.replay.results import ReplayResult
from precdiff.replay.verdict import Where, judge
from precdiff.store.manifest import Manifest
from precdiff.store.reader import Capture, open_capture


@dataclass
class Replayed:
    """What the reproducer needs besides the result: the module and the inputs it ran on."""

    module: nn.Module  # the float64 reference copy (its parameters hold the source weights exactly)
    config: Any
    inputs: CapturedInputs
    captured: np.ndarray
    here_dtype: torch.dtype


def _manifest(cap: Capture) -> Manifest:
    if cap.manifest is None:
        raise ReplayError(f"{cap.path} has no manifest (interrupted capture): the model to replay is unknown")
    return cap.manifest


def _load_module(
    manifest: Manifest, cap: Capture, target: Target, model: str | None
) -> tuple[nn.Module, Any, str | None]:
    """The module of ``target`` in float32 on the CPU, its model config and the weights hash."""
    whole, weights = load_checked(manifest, cap, model)
    try:
        module = whole.get_submodule(target.module)
    except AttributeError:
        raise ReplayError(
            f"{model or manifest.model.source} has no module {target.module!r}; pass the model {cap.path} "
            "was captured with: --model DIR"
        ) from None
    return module, getattr(whole, "config", None), weights


def _copy(module: nn.Module, dtype: torch.dtype, device: torch.device) -> nn.Module:
    clone = copy.deepcopy(module)
    with torch.no_grad():
        for parameter in clone.parameters():
            if parameter.is_floating_point():
                parameter.data = parameter.data.to(dtype)
    nn.Module.to(clone, device=device)
    return clone.eval()


def _fill_required(module: nn.Module, args: list[Any], kwargs: dict[str, Any]) -> None:
    """``None`` for required parameters the capture did not store (an absent mask, a cache object)."""
    parameters = list(inspect.signature(module.forward).parameters.values())
    for position, parameter in enumerate(parameters):
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        if parameter.default is parameter.empty and position >= len(args) and parameter.name not in kwargs:
            kwargs[parameter.name] = None


def run_call(
    module: nn.Module,
    inputs: CapturedInputs,
    call: str,
    dtype: torch.dtype,
    device: torch.device,
    keep_dtypes: bool,
) -> dict[str, torch.Tensor]:
    """Run ``module`` on the captured inputs; floating inputs cast to ``dtype`` unless ``keep_dtypes``."""

    def make(name: str) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(inputs.arrays[name]))
        if inputs.dtypes[name] == "BF16":
            tensor = tensor.to(torch.bfloat16)  # decoded exactly to float32; back to the captured dtype
        if tensor.is_floating_point() and not keep_dtypes:
            tensor = tensor.to(dtype)
        return tensor.to(device)

    args, kwargs = build_call(inputs, make)
    _fill_required(module, args, kwargs)
    with torch.no_grad(), keep_float64(dtype == torch.float64):
        try:
            output = module(*args, **kwargs)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ReplayError(
                f"replaying {call} ({type(module).__name__}) failed: {str(exc).splitlines()[0]}"
            ) from None
    return dict(flatten_tensors(call, output))


def _pick(outputs: dict[str, torch.Tensor], target: Target) -> np.ndarray:
    if target.tensor not in outputs:
        raise ReplayError(
            f"the replayed {target.call} returned no tensor {target.tensor!r} (it returned {sorted(outputs)})"
        )
    return outputs[target.tensor].detach().to("cpu", torch.float64).numpy()


def replay_call(run: str | os.PathLike[str], options: ReplayOptions) -> tuple[ReplayResult, Replayed]:
    """:func:`replay`, also returning the module and inputs (for the reproducer)."""
    device = resolve_device(options.device)
    with open_capture(run) as cap:
        manifest = _manifest(cap)
        target = resolve_target(cap, options.tensor)
        inputs = load_inputs(cap, target)
        captured = np.asarray(cap.tensor(target.tensor), dtype=np.float64)
    captured_dtype = parse_dtype(manifest.dtype)
    here_dtype = parse_dtype(options.dtype) if options.dtype is not None else captured_dtype
    same_dtype = here_dtype == captured_dtype
    module, config, weights = _load_module(manifest, cap, target, options.model)
    cpu = torch.device("cpu")
    reference_module = _copy(module, torch.float64, cpu)
    reference = _pick(run_call(reference_module, inputs, target.call, torch.float64, cpu, False), target)
    kernels = CaptureOptions(kernels=options.kernels)
    with kernel_mode(kernels, device):
        here_module = _copy(module, here_dtype, device)
        # Batch-invariant kernels bring their own attention (registered by kernel_mode): as in capture.
        attention = _attn_implementation(kernels)
        here_config: Any = getattr(here_module, "config", None)
        if attention is not None and here_config is not None:
            here_config._attn_implementation = attention
        here_out = run_call(here_module, inputs, target.call, here_dtype, device, same_dtype)
    here = _pick(here_out, target)
    baseline = None
    if device.type != "cpu" or not same_dtype:
        baseline_out = run_call(
            _copy(module, captured_dtype, cpu), inputs, target.call, captured_dtype, cpu, True
        )
        baseline = _pick(baseline_out, target)
    where = Where(
        call=target.call,
        codes=(target.info.dtype, manifest_dtype_code(manifest.dtype)),
        captured_dtype=DTYPE_NAMES[captured_dtype],
        device=str(device),
        here_dtype=DTYPE_NAMES[here_dtype],
        same_dtype=same_dtype,
    )
    verdict = judge(where, reference, here, captured, baseline)
    result = ReplayResult(
        run=str(run),
        tensor=target.tensor,
        module=target.module,
        call=target.call,
        module_class=type(module).__name__,
        inputs=inputs.names,
        device=str(device),
        dtype=DTYPE_NAMES[here_dtype],
        captured_dtype=DTYPE_NAMES[captured_dtype],
        kernels=options.kernels,
        weights_sha256=weights,
        **verdict.__dict__,
    )
    return result, Replayed(reference_module, config, inputs, captured, here_dtype)


def replay(run: str | os.PathLike[str], options: ReplayOptions) -> ReplayResult:
    """Replay one captured module call or aten op in isolation, here and in float64, and judge the
    captured output. An op output (``<module call>/<aten op>#k``) is replayed by
    :func:`precdiff.replay.op_replay.replay_op` from the call an op-level capture recorded.

    Args:
        run: a capture written with ``--save-inputs`` (``save_inputs=True``), or at ``--level op``
            (``level="op"``) for an op, with its inputs' producers stored in full.
        options: the tensor to replay, device, dtype, kernels, model directory, reproducer directory.

    Returns:
        A :class:`ReplayResult`; ``bool(result)`` is False when the op computes differently.

    Raises:
        ReplayError: no inputs captured, unknown or input tensor, other weights; for an op: no call
            recorded, a producer not stored in full, an unreplayable argument, a random op.
        InputError, ModelLoadError, DeviceUnavailableError, CaptureFormatError.

    Example:
        >>> replay("gpu_bf16.h5", ReplayOptions(tensor="model.layers.3.mlp.down_proj"))  # doctest: +SKIP
    """
    if "/" in options.tensor:  # <module call>/<aten op>#k: an op of an op-level capture
        from precdiff.replay.op_replay import replay_op

        result, op_replayed = replay_op(run, options)
        if options.emit_repro is None:
            return result
        from precdiff.replay.op_repro import emit_op_repro

        directory = emit_op_repro(options.emit_repro, result, op_replayed)
        return ReplayResult(**{**result.__dict__, "repro": str(directory)})
    result, replayed = replay_call(run, options)
    if options.emit_repro is None:
        return result
    from precdiff.replay.repro import emit_repro

    directory = emit_repro(options.emit_repro, result, replayed)
    return ReplayResult(**{**result.__dict__, "repro": str(directory)})
