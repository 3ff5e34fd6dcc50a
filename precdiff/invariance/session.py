"""The run both checks share: device, dtype, kernel mode, the loaded model and the probe ids.

A session is a ``with`` block: batch-invariant kernels (when asked for) stay registered for exactly
its duration, and a caller's own model gets its attention implementation back afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from torch import nn

from precdiff.capture.inputs import resolve_input
from precdiff.capture.models import load_model, parse_dtype
from precdiff.config import CaptureInput
from precdiff.devices import backend_versions, resolve_device
from precdiff.errors import InputError
from precdiff.invariance.options import DEFAULT_PROMPT, FALLBACK_PROBE_LENGTH, RunOptions
from precdiff.invariance.results import Probe, RunInfo


@dataclass
class Session:
    """A model ready to probe, under the requested kernels."""

    model: nn.Module
    tokenizer: Any
    source: str
    device: torch.device
    dtype: torch.dtype
    kernels: str
    kernel_settings: dict[str, Any] | None
    probe: Probe
    vocab_size: int
    pad_id: int
    started: float

    def run_info(self, seed: int) -> RunInfo:
        versions = dict(backend_versions())
        versions["transformers"] = transformers.__version__
        return RunInfo(
            model=self.source,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            kernels=self.kernels,
            kernel_settings=self.kernel_settings,
            seed=seed,
            versions=versions,
            runtime_s=round(time.perf_counter() - self.started, 3),
        )

    def decode(self, ids: tuple[int, ...]) -> str | None:
        """Text of ``ids`` (None without a tokenizer, or for ids the tokenizer does not know)."""
        if self.tokenizer is None:
            return None
        try:
            return str(self.tokenizer.decode(list(ids)))
        except (KeyError, ValueError, IndexError, TypeError, OverflowError):
            return None


def _probe_ids(options: RunOptions, tokenizer: Any, vocab_size: int) -> tuple[int, ...]:
    if options.input_ids is not None:
        spec = CaptureInput(input_ids=tuple(options.input_ids))
    elif options.messages is not None:
        spec = CaptureInput(messages=options.messages)
    elif options.prompt is not None or tokenizer is not None:
        spec = CaptureInput(prompt=options.prompt if options.prompt is not None else DEFAULT_PROMPT)
    else:
        # A model directory without a tokenizer and no ids given: a fixed, seeded id sequence.
        generator = torch.Generator().manual_seed(options.seed)
        return tuple(
            int(i) for i in torch.randint(0, vocab_size, (FALLBACK_PROBE_LENGTH,), generator=generator)
        )
    ids = tuple(resolve_input(spec, tokenizer, vocab_size).ids)
    if len(ids) < 2:
        raise InputError(
            f"the probe needs at least 2 tokens, got {len(ids)}; pass a longer --prompt / prompt= "
            "or --input-ids / input_ids="
        )
    return ids


@contextmanager
def open_session(model: str | nn.Module, options: RunOptions, tokenizer: Any = None) -> Iterator[Session]:
    """Load ``model`` (a source string for ``load_model``, or a module already on its device) under the
    requested kernels, and resolve the probe ids.

    Raises:
        InputError, ModelLoadError, DeviceUnavailableError, KernelError.
    """
    options.validate()
    started = time.perf_counter()
    invariant = options.kernels == "batch-invariant"
    with ExitStack() as stack:
        if isinstance(model, nn.Module):
            first = next(model.parameters())
            device, dtype, source = first.device, first.dtype, type(model).__name__
        else:
            device, dtype, source = resolve_device(options.device), parse_dtype(options.dtype), model
        settings: dict[str, Any] | None = None
        attn: str | None = None
        if invariant:
            from precdiff.kernels import ATTENTION_IMPLEMENTATION, batch_invariant_mode

            settings = stack.enter_context(batch_invariant_mode(device)).to_dict()
            attn = ATTENTION_IMPLEMENTATION
        if isinstance(model, nn.Module):
            module = model
            if attn is not None:
                stack.enter_context(_attention(module, attn))
        else:
            torch.manual_seed(options.seed)
            loaded = load_model(
                model,
                dtype=dtype,
                device=device,
                attn_implementation=attn,
                trust_remote_code=options.trust_remote_code,
                seed=options.seed,
            )
            module, tokenizer = loaded.model, loaded.tokenizer
        module.eval()
        vocab_size = int(module.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
        ids = _probe_ids(options, tokenizer, vocab_size)
        pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
        session = Session(
            model=module,
            tokenizer=tokenizer,
            source=source,
            device=device,
            dtype=dtype,
            kernels=options.kernels,
            kernel_settings=settings,
            probe=Probe(ids, None),
            vocab_size=vocab_size,
            pad_id=int(pad) if pad is not None else 0,
            started=started,
        )
        session.probe = Probe(ids, session.decode(ids))
        with torch.no_grad():
            yield session


@contextmanager
def _attention(model: nn.Module, implementation: str) -> Iterator[None]:
    """Switch a caller's model to ``implementation`` and back (the kernels need their own attention)."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    model.set_attn_implementation(implementation)  # type: ignore[operator]
    try:
        yield
    finally:
        if previous is not None:
            model.set_attn_implementation(previous)  # type: ignore[operator]
