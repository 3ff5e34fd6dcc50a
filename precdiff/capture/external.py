"""Capture inside a program precdiff does not launch (an engine, a user's script).

:func:`install` registers one global forward pre-hook. The first time a Hugging Face causal LM
(a ``PreTrainedModel`` with output embeddings) is called, it hooks that model's modules for this one
call, writes every module output (and the input ids, prompt logprobs and a manifest) to the capture
file, and removes its hooks when the call returns. ``hooks/sitecustomize.py`` calls it when
``PRECDIFF_CAPTURE=out.h5`` is set, so nothing in the host program changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from precdiff.capture.environment import build_manifest
from precdiff.capture.hooks import attach
from precdiff.capture.logits import topk_logprobs
from precdiff.capture.models import LoadedModel
from precdiff.capture.names import decoder_layers, name_filter
from precdiff.capture.parallel import running_rank
from precdiff.capture.sink import TensorSink
from precdiff.config import CaptureOptions
from precdiff.store import CaptureWriter

ENV_PATH = "PRECDIFF_CAPTURE"
ENV_SUMMARY = "PRECDIFF_CAPTURE_SUMMARY"  # "1": statistics only
ENV_INCLUDE = "PRECDIFF_CAPTURE_INCLUDE"  # regex, as --include


def _is_causal_lm(module: nn.Module) -> bool:
    get_output = getattr(module, "get_output_embeddings", None)
    return hasattr(module, "config") and callable(get_output) and get_output() is not None


def install(out: str, options: CaptureOptions | None = None) -> Callable[[], None]:
    """Capture the next forward call of a causal LM to ``out``; returns a function that uninstalls.

    torch's global pre-hooks see positional inputs only, and HF models are called with keywords, so the
    input ids are taken where they are always positional: the input-embedding module's call.
    """
    options = options or CaptureOptions()
    done = False

    def on_call(module: nn.Module, args: tuple[Any, ...]) -> None:
        nonlocal done
        if done or not _is_causal_lm(module):
            return
        done = True
        handle.remove()
        _Session(module, out, options).start()

    handle = torch.nn.modules.module.register_module_forward_pre_hook(on_call)
    return handle.remove


class _Session:
    """One capture of one forward call: hooks in at the root's call, file finished at its return."""

    def __init__(self, model: nn.Module, out: str, options: CaptureOptions):
        self.model, self.out, self.options = model, out, options
        self.stack = ExitStack()
        self.writer: CaptureWriter | None = None
        self.batch = 1
        self.sink: TensorSink | None = None

    def start(self) -> None:
        embeddings = self.model.get_input_embeddings()  # type: ignore[operator]
        self.stack.callback(embeddings.register_forward_pre_hook(self._on_ids).remove)
        # always_call: the hook also runs when the forward raises, so hooks never outlive this call.
        self.stack.callback(self.model.register_forward_hook(self._finish, always_call=True).remove)
        keep = name_filter(self.options.include, self.options.exclude)
        self.stack.enter_context(attach(self.model, keep, self._on_tensor))

    def _on_ids(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self.writer is not None or not args or not isinstance(args[0], torch.Tensor):
            return
        ids = args[0]
        layers_path, num_layers = decoder_layers(self.model)
        source = str(getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__)
        # No weights hash: the files are out of reach here, and hashing the loaded tensors would copy the
        # whole model to the host and differ from `precdiff capture`'s file hash anyway. compare warns on
        # a missing hash instead of refusing.
        loaded = LoadedModel(self.model, None, source, None, layers_path, num_layers)  # type: ignore[arg-type]  # model typed as PreTrainedModel
        self.batch = int(ids.shape[0])
        parallel = running_rank()  # inside a tensor-parallel engine: one file per rank
        if parallel is not None:
            self.out = str(parallel.out_path(self.out))
        self.writer = self.stack.enter_context(CaptureWriter(self.out, compression=self.options.compression))
        id_list = [int(i) for i in ids[0].tolist()]  # the first sequence of the batch
        manifest = build_manifest(
            loaded,
            self.options,
            ids.device,
            input_source="external",
            input_ids=id_list,
            kernel_settings=None,
            template_sha256=None,
        )
        if parallel is not None:
            manifest = dataclasses.replace(manifest, parallel=parallel.facts(self.model))
        self.writer.write_manifest(manifest)
        self.writer.write_input(id_list, None)
        self.sink = TensorSink(
            self.writer, summary=self.options.summary, device=ids.device, num_tokens=len(id_list)
        )

    def _on_tensor(self, name: str, module: str, role: str, tensor: torch.Tensor) -> None:
        if self.sink is None:
            return
        # Batched calls: keep the first sequence of tensors laid out [batch, …]; other layouts (MoE
        # [tokens, …] buffers) are stored whole.
        if self.batch > 1 and tensor.ndim and tensor.shape[0] == self.batch:
            tensor = tensor[:1]
        self.sink(name, module, role, tensor)

    def _finish(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        try:
            if self.writer is None or self.sink is None:
                return
            if sys.exc_info()[0] is not None or output is None:  # the forward raised: keep the .partial
                print(
                    f"precdiff: the captured forward failed; partial capture in {self.writer.partial_path}",
                    file=sys.stderr,
                )
                with contextlib.suppress(
                    Exception
                ):  # keep what was computed; the forward's error is the one to report
                    self.sink.flush()
                self.writer.abort()
                return
            self.sink.flush()
            logits = getattr(output, "logits", None)
            if isinstance(logits, torch.Tensor):
                prompt_ids, prompt_logprobs = topk_logprobs(logits[0].detach(), self.options.top_k)
                self.writer.write_prompt_logprobs(prompt_ids, prompt_logprobs)
            self.writer.finish()
            print(f"precdiff: captured {self.writer.tensor_count} tensors to {self.out}", file=sys.stderr)
        finally:
            self.stack.close()  # every hook removed; a finished writer closes as a no-op


def install_from_environment() -> Callable[[], None] | None:
    """:func:`install` configured by ``PRECDIFF_CAPTURE*`` variables; ``None`` when unset."""
    out = os.environ.get(ENV_PATH)
    if not out:
        return None
    include = os.environ.get(ENV_INCLUDE)
    options = CaptureOptions(
        summary=os.environ.get(ENV_SUMMARY) == "1",
        include=(include,) if include else (),
        command_line=tuple(sys.argv),
    )
    return install(out, options)
