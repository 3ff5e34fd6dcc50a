"""``capture()``: load the model, run the prompt under hooks, stream everything to one HDF5 file."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from precdiff import _progress
from precdiff.capture.environment import build_manifest, deterministic_mode
from precdiff.capture.float64 import check_float64_device, keep_float64
from precdiff.capture.focus import focus_filter
from precdiff.capture.hooks import attach
from precdiff.capture.inputs import ResolvedInput, resolve_input
from precdiff.capture.kv_cache import returned_cache
from precdiff.capture.logits import greedy_generate, topk_logprobs
from precdiff.capture.models import LoadedModel, load_model, parse_dtype
from precdiff.capture.names import NameFilter, name_filter
from precdiff.capture.op_trace import CallTree, OpTracer
from precdiff.capture.parallel import load_sharded, tensor_parallel
from precdiff.capture.sink import TensorSink
from precdiff.config import (
    CAPTURE_LEVELS,
    KERNEL_MODES,
    CaptureInput,
    CaptureOptions,
    check_max_new_tokens,
    check_seed,
)
from precdiff.devices import device_condition, first_line, resolve_device
from precdiff.errors import CaptureError, InputError
from precdiff.store import CaptureWriter
from precdiff.store.format import OP_INDEX_BATCH


@dataclass(frozen=True)
class CaptureResult:
    """What a capture wrote."""

    path: Path
    tensor_count: int
    input_ids: list[int]
    input_text: str | None
    generated_ids: list[int]
    generated_text: str | None
    device: str
    dtype: str
    skipped: tuple[str, ...] = ()  # tensors the format cannot hold (unsupported dtype or rank)


@contextmanager
def hooked_forward(
    model: nn.Module, keep: NameFilter, sink: TensorSink, options: CaptureOptions
) -> Iterator[int]:
    """Module hooks, and at ``--level op`` the op tracer: ops are scoped under the running module call
    and kept when that module passes ``keep``. Yields the number of modules hooked."""
    if options.level not in CAPTURE_LEVELS:
        raise InputError(
            f"unknown --level {options.level!r}; use --level / level= one of: {', '.join(CAPTURE_LEVELS)}"
        )
    if options.level == "module":
        with attach(model, keep, sink, save_inputs=options.save_inputs) as hooked:
            yield hooked
        return
    tree = CallTree()
    launch_waiting = sink.defer_summaries()
    tracer = OpTracer(
        tree, sink.op, all_ops=options.all_ops, references=True, model=model, before_write=launch_waiting
    )
    sink.keep_op = keep
    # Thousands of tensors per forward, whose host time bounds the capture: append index rows in
    # large batches (each append is three HDF5 writes and a file flush).
    sink.writer.index_batch = sink.index_every = OP_INDEX_BATCH

    def module_sink(name: str, module: str, role: str, tensor: torch.Tensor) -> None:
        with tracer.paused():  # the sink's own statistics and copies are not model ops
            sink(name, module, role, tensor)

    try:
        with (
            tree.hooked(model),
            attach(model, keep, module_sink, save_inputs=options.save_inputs) as hooked,
            tracer,
        ):
            yield hooked
    finally:
        launch_waiting()  # what the caller does with the outputs next is not traced


@contextmanager
def kernel_mode(options: CaptureOptions, device: torch.device) -> Iterator[dict[str, Any] | None]:
    """Batch-invariant kernels when asked for; yields their settings record for the manifest."""
    if options.kernels not in KERNEL_MODES:
        raise InputError(f"unknown --kernels {options.kernels!r}; use one of: {', '.join(KERNEL_MODES)}")
    if options.kernels == "standard":
        yield None
        return
    from precdiff.kernels import batch_invariant_mode

    with batch_invariant_mode(device) as settings:
        yield settings.to_dict()


def _attn_implementation(options: CaptureOptions) -> str | None:
    if options.kernels != "batch-invariant":
        return options.attn_implementation
    from precdiff.kernels import ATTENTION_IMPLEMENTATION

    if options.attn_implementation not in (None, ATTENTION_IMPLEMENTATION):
        raise InputError(
            f"--kernels batch-invariant uses its own attention ({ATTENTION_IMPLEMENTATION}); "
            f"drop --attn-impl {options.attn_implementation}"
        )
    return ATTENTION_IMPLEMENTATION


def capture(
    model: str,
    out: str | os.PathLike[str],
    inputs: CaptureInput,
    options: CaptureOptions | None = None,
) -> CaptureResult:
    """Capture every module's output, logprobs and a greedy generation of ``model`` to ``out``.

    Args:
        model: a local Hugging Face model directory, or ``tiny:<arch>`` (see ``precdiff tiny list``).
        out: the capture file to write (``out.partial`` until complete).
        inputs: exactly one input source (prompt, prompt file, messages, ids, or another capture).
        options: device, dtype, kernels, what to record; defaults from :mod:`precdiff.config`.

    Returns:
        A :class:`CaptureResult` describing the file written.

    Raises:
        InputError, ModelLoadError, DeviceUnavailableError, TemplateError, CaptureError.

    Example:
        >>> capture("tiny:llama", "a.h5", CaptureInput(prompt="Hello"))  # doctest: +SKIP
    """
    options = options or CaptureOptions()
    if options.top_k < 1:
        raise InputError(f"--top-k / top_k= must be ≥ 1, got {options.top_k}")
    check_max_new_tokens(options.max_new_tokens)
    check_seed(options.seed)
    device = resolve_device(options.device)
    dtype = parse_dtype(options.dtype)
    parallel = tensor_parallel(options.tp, device)
    if dtype == torch.float64:
        check_float64_device(device)
    torch.manual_seed(options.seed)
    with ExitStack() as stack:
        stack.enter_context(_progress.task(f"capture {model}"))
        stack.enter_context(deterministic_mode(options.deterministic))
        stack.enter_context(keep_float64(dtype == torch.float64))
        attn = _attn_implementation(options)
        kernel_settings = stack.enter_context(kernel_mode(options, device))
        if parallel is None:
            loaded = load_model(
                model,
                dtype=dtype,
                device=device,
                attn_implementation=attn,
                trust_remote_code=options.trust_remote_code,
                seed=options.seed,
            )
        else:
            loaded = load_sharded(
                model, dtype=dtype, device=device, attn_implementation=attn, seed=options.seed
            )
            out = parallel.out_path(out)
        vocab_size = int(cast(torch.Tensor, loaded.model.get_input_embeddings().weight).shape[0])
        resolved = resolve_input(inputs, loaded.tokenizer, vocab_size)
        writer = stack.enter_context(CaptureWriter(out, compression=options.compression))
        manifest = build_manifest(
            loaded,
            options,
            device,
            input_source=resolved.source,
            input_ids=resolved.ids,
            kernel_settings=kernel_settings,
            template_sha256=resolved.template_sha256,
        )
        if parallel is not None:
            manifest = dataclasses.replace(manifest, parallel=parallel.facts(loaded.model))
        writer.write_manifest(manifest)
        writer.write_input(resolved.ids, resolved.text)
        generated = _run(loaded, resolved, options, device, writer)
        path = writer.finish()
        tokenizer = loaded.tokenizer
        return CaptureResult(
            path=path,
            tensor_count=writer.tensor_count,
            input_ids=resolved.ids,
            input_text=resolved.text,
            generated_ids=generated,
            generated_text=tokenizer.decode(generated) if tokenizer is not None else None,
            device=str(device),
            dtype=str(dtype).replace("torch.", ""),
            skipped=tuple(f"{entry['name']} ({entry['reason']})" for entry in writer.skipped),
        )
    raise AssertionError("unreachable")  # ExitStack does not swallow exceptions


def _run(
    loaded: LoadedModel,
    resolved: ResolvedInput,
    options: CaptureOptions,
    device: torch.device,
    writer: CaptureWriter,
) -> list[int]:
    """Prefill under hooks, then logprobs and greedy generation; returns the generated ids."""
    model = loaded.model
    ids = torch.tensor([resolved.ids], device=device)
    focus = focus_filter(options.focus)
    sink = TensorSink(
        writer,
        summary=options.summary or focus is not None,
        device=device,
        num_tokens=len(resolved.ids),
        full=(lambda name: focus.search(name) is not None) if focus is not None else None,
    )
    keep = name_filter(options.include, options.exclude)
    try:
        with torch.no_grad(), hooked_forward(model, keep, sink, options) as hooked:
            if hooked == 0:
                raise InputError(
                    "--include / --exclude selected no module of the model; `precdiff capture` needs "
                    "at least one (module names look like model.layers.0.mlp.down_proj)"
                )
            out = model(input_ids=ids, use_cache=True)
        sink.flush()
        logits = out.logits[0]  # [seq, vocab]
        prompt_ids, prompt_logprobs = topk_logprobs(logits, options.top_k)
        writer.write_prompt_logprobs(prompt_ids, prompt_logprobs)
        if options.max_new_tokens == 0:
            return []
        record = greedy_generate(
            model, logits[-1], returned_cache(out), len(resolved.ids), options.max_new_tokens, options.top_k
        )
    except (RuntimeError, NotImplementedError) as exc:
        condition = device_condition(exc)
        if condition is None:  # anything else is a bug: it keeps its traceback (exit 3)
            raise
        with contextlib.suppress(RuntimeError):  # a sticky device error may refuse even this flush
            sink.flush()  # keep what was computed
        raise CaptureError(
            f"{condition} ({first_line(exc)}); lower --max-new-tokens / max_new_tokens= or the prompt "
            f"length, or pass --summary / summary=True; the tensors captured before the failure are in "
            f"{writer.partial_path}"
        ) from None
    writer.write_generation(
        record.ids, record.topk_ids, record.topk_logprobs, record.margin, record.top_logit
    )
    return [int(i) for i in np.asarray(record.ids)]
