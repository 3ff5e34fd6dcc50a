"""Replay of one aten op of an op-level capture (``replay RUN --tensor <call>/<aten op>#k``).

The op's call is recorded at ``capture --level op`` (:mod:`precdiff.capture.op_call`, docs/format.md
"Op calls"). Its inputs are rebuilt from their references: an op output of the capture (stored in
full: a capture without ``--summary``, or a ``--focus`` capture whose regexes cover it), a parameter or
buffer of the model (loaded and checked as for module replay, in the dtype the run had), or a small
constant written into the call. Then :mod:`precdiff.replay.aten_call` lays each input out in its
producer's strides, applies the recorded view ops and calls ``torch.ops.aten.<op>.<overload>``:

- **reference**: on the CPU with every floating input and dtype argument in float64;
- **here**: on ``--device`` under ``--kernels``, in the captured dtypes, or with ``--dtype`` the run's
  dtype replaced by that one (explicit float32 upcasts of a bf16 run stay float32);
- **baseline**: the captured dtypes on the CPU, when *here* is not that.

and the verdict is module replay's (:mod:`precdiff.replay.verdict`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from precdiff.capture.models import parse_dtype
from precdiff.capture.op_call import CONSTANT
from precdiff.capture.op_trace import BUFFER_PREFIX, PARAMETER_PREFIX
from precdiff.capture.runner import kernel_mode
from precdiff.compare.tolerances import manifest_dtype_code
from precdiff.config import CaptureOptions
from precdiff.devices import resolve_device
from precdiff.errors import ReplayError
from precdiff.replay import aten_call
from precdiff.replay.options import DTYPE_NAMES, ReplayOptions, load_checked
from precdiff.replay.results import ReplayResult
from precdiff.replay.verdict import Where, judge
from precdiff.store.format import KIND_OP_OUTPUT
from precdiff.store.manifest import Manifest
from precdiff.store.reader import Capture, TensorInfo, open_capture

_OUTPUT = re.compile(r"^(?P<call>.*#\d+)(?P<path>(?:\[\d+\])*)$")


@dataclass
class OpReplayed:
    """What the op reproducer needs: the call, its inputs' bases and the captured output."""

    call: dict[str, Any]
    refs: tuple[str, ...]
    bases: list[torch.Tensor]  # in the captured run's dtypes, on the CPU
    path: list[int]  # the replayed output inside the op's outputs
    captured: torch.Tensor  # the captured output, in its captured dtype


def _op_info(cap: Capture, name: str) -> tuple[TensorInfo, str, list[int]]:
    infos = {info.name: info for info in cap.tensor_infos()}
    info = infos.get(name)
    match = _OUTPUT.match(name)
    if info is None or info.kind != KIND_OP_OUTPUT or match is None:
        raise ReplayError(
            f"{cap.path} has no op output named {name!r}; `precdiff inspect {cap.path} --all` lists them "
            "(e.g. --tensor 'model.layers.0.mlp.down_proj/aten.mm.default#0')"
        )
    return info, match["call"], [int(i) for i in re.findall(r"\[(\d+)\]", match["path"])]


def _focus(names: list[str]) -> str:
    return "^(?:" + "|".join(re.escape(n) for n in names) + ")$"


def _random(func: Any, call: dict[str, Any]) -> bool:
    """A seeded random op, unless its randomness is switched off in this call (SDPA's ``dropout_p=0``,
    ``native_dropout(train=False)``): torch tags both kinds alike."""
    if torch.Tag.nondeterministic_seeded not in func.tags:
        return False
    for position, argument in enumerate(func._schema.arguments):
        if argument.name in ("dropout_p", "train"):
            if argument.name in call["kwargs"]:
                value = call["kwargs"][argument.name]
            elif position < len(call["args"]):
                value = call["args"][position]
            else:
                value = argument.default_value
            return bool(value)
    return True


def _load_call(cap: Capture, info: TensorInfo, call_name: str) -> dict[str, Any]:
    text = cap.op_call(info.name)
    if text is None:
        raise ReplayError(
            f"{cap.path} records no call for {call_name} (it was captured by a precdiff that did not record "
            "op calls); capture again with this precdiff (capture --level op) to replay the op, or replay its "
            f"module call: --tensor {info.module}"
        )
    call: dict[str, Any] = json.loads(text)
    try:
        func = aten_call.aten_op(call["op"])
    except aten_call.CallError as exc:
        raise ReplayError(f"{call_name} cannot be replayed here: {exc}") from None
    if _random(func, call):
        raise ReplayError(
            f"{call_name} is a random op ({call['op']}): its output depends on the random generator's state, "
            f"which replay does not reproduce; replay a deterministic op, or its module call: --tensor {info.module}"
        )
    bad = aten_call.unreplayable([call["args"], call["kwargs"], call["inputs"]])
    if bad is not None or len(call["inputs"]) != len(info.inputs or ()):
        raise ReplayError(
            f"{call_name} cannot be replayed: its call holds an argument the capture could not record "
            f"({bad or 'nested tensors'}); replay its module call instead: --tensor {info.module}"
        )
    return call


def _check_stored(cap: Capture, info: TensorInfo, call_name: str) -> None:
    """Every op output the replay reads (the inputs' producers and the output) must be stored in full."""
    infos = {i.name: i for i in cap.tensor_infos()}
    refs = [
        r for r in info.inputs or () if r != CONSTANT and not r.startswith((PARAMETER_PREFIX, BUFFER_PREFIX))
    ]
    absent = [r for r in refs if r not in infos]
    if absent:
        raise ReplayError(
            f"input {absent[0]!r} of {call_name} is not in {cap.path} (its module was left out by --include / "
            "--exclude); capture again with its module included to replay the op"
        )
    summary = [r for r in [*refs, info.name] if not infos[r].stored]
    if summary:
        focus = _focus(summary)
        raise ReplayError(
            f"{call_name} needs {', '.join(summary)} in full, which {cap.path} holds as statistics only "
            f"(--summary); capture again with --focus '{focus}' / focus=('{focus}',) to store them"
        )


def _bases(
    cap: Capture,
    manifest: Manifest,
    info: TensorInfo,
    call: dict[str, Any],
    call_name: str,
    model: str | None,
) -> tuple[list[torch.Tensor], str | None]:
    """Each input's base tensor as it was in the run (captured dtype, CPU), and the weights hash."""
    refs = info.inputs or ()
    weights: str | None = None
    whole = None
    if any(r.startswith((PARAMETER_PREFIX, BUFFER_PREFIX)) for r in refs):
        whole, weights = load_checked(manifest, cap, model)
    bases = []
    for index, (ref, spec) in enumerate(zip(refs, call["inputs"], strict=True)):
        if ref == CONSTANT:
            if not spec or "value" not in spec:
                raise ReplayError(
                    f"input {index} of {call_name} is a tensor made outside the traced forward (e.g. a mask "
                    f"built before it) whose value {cap.path} does not hold; replay its module call instead: "
                    f"--tensor {info.module}"
                )
            bases.append(torch.tensor(spec["value"], dtype=getattr(torch, spec["dtype"])))
        elif ref.startswith((PARAMETER_PREFIX, BUFFER_PREFIX)):
            assert whole is not None
            bases.append(_weight(whole, ref, spec, cap))
        else:
            bases.append(_stored(cap, ref))
    return bases, weights


def _weight(whole: torch.nn.Module, ref: str, spec: dict[str, Any], cap: Capture) -> torch.Tensor:
    parameter = ref.startswith(PARAMETER_PREFIX)
    fqn = ref.removeprefix(PARAMETER_PREFIX if parameter else BUFFER_PREFIX)
    try:
        tensor = whole.get_parameter(fqn) if parameter else whole.get_buffer(fqn)
    except AttributeError:
        raise ReplayError(
            f"the model has no {ref}; pass the model {cap.path} was captured with: --model DIR"
        ) from None
    return tensor.detach().to(getattr(torch, spec["dtype"]))


def _stored(cap: Capture, name: str) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(cap.tensor(name)))
    return tensor.to(torch.bfloat16) if cap.info(name).dtype == "BF16" else tensor


def _run(
    call: dict[str, Any],
    bases: list[torch.Tensor],
    path: list[int],
    cast: aten_call.Cast,
    device: torch.device,
) -> torch.Tensor:
    with torch.no_grad():
        try:
            return aten_call.pick(aten_call.run_call(call, bases, cast, device), path)
        except aten_call.CallError as exc:
            raise ReplayError(f"replaying {call['op']} failed: {exc}") from None


def _as64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def replay_op(run: str | os.PathLike[str], options: ReplayOptions) -> tuple[ReplayResult, OpReplayed]:
    """:func:`~precdiff.replay.runner.replay` of an op output, also returning what the reproducer needs."""
    device = resolve_device(options.device)
    with open_capture(run) as cap:
        if cap.manifest is None:
            raise ReplayError(f"{cap.path} has no manifest (interrupted capture): the run's dtype is unknown")
        manifest = cap.manifest
        info, call_name, path = _op_info(cap, options.tensor)
        _check_stored(cap, info, call_name)
        call = _load_call(cap, info, call_name)
        bases, weights = _bases(cap, manifest, info, call, call_name, options.model)
        captured_tensor = _stored(cap, info.name)
    captured_dtype = parse_dtype(manifest.dtype)
    here_dtype = parse_dtype(options.dtype) if options.dtype is not None else captured_dtype
    same_dtype = here_dtype == captured_dtype
    cpu = torch.device("cpu")

    def to_here(dtype: torch.dtype) -> torch.dtype:
        return here_dtype if dtype == captured_dtype else dtype

    reference = _as64(_run(call, bases, path, aten_call.to_float64, cpu))
    with kernel_mode(CaptureOptions(kernels=options.kernels), device):
        here = _as64(_run(call, bases, path, to_here, device))
    baseline = None
    if device.type != "cpu" or not same_dtype:
        baseline = _as64(_run(call, bases, path, lambda dtype: dtype, cpu))
    where = Where(
        call=call_name,
        codes=(info.dtype, manifest_dtype_code(manifest.dtype)),
        captured_dtype=DTYPE_NAMES[captured_dtype],
        device=str(device),
        here_dtype=DTYPE_NAMES[here_dtype],
        same_dtype=same_dtype,
    )
    verdict = judge(where, reference, here, _as64(captured_tensor), baseline)
    result = ReplayResult(
        run=str(run),
        tensor=info.name,
        module=info.module,
        call=call_name,
        module_class=call["op"],
        inputs=info.inputs or (),
        device=str(device),
        dtype=DTYPE_NAMES[here_dtype],
        captured_dtype=DTYPE_NAMES[captured_dtype],
        kernels=options.kernels,
        weights_sha256=weights,
        **verdict.__dict__,
    )
    return result, OpReplayed(call, info.inputs or (), bases, path, captured_tensor)
