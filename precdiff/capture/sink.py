"""``TensorSink``: where hooked tensors go, shared by ``capture()`` and the external (hooks/) capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from precdiff.capture.background import BackgroundCalls
from precdiff.capture.stats import SummaryBatch
from precdiff.capture.token_axis import token_axis
from precdiff.config import STATS_FLUSH_EVERY
from precdiff.store import CaptureWriter
from precdiff.store.dtypes import to_storage
from precdiff.store.format import (
    KIND_MODULE_INPUT,
    KIND_MODULE_OUTPUT,
    KIND_OP_OUTPUT,
    ROLE_INPUT,
    ROLE_OUTPUT,
)


class _Pending(NamedTuple):
    name: str
    module: str
    role: str
    kind: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    token_axis: int | None
    inputs: tuple[str, ...] | None


class TensorSink:
    """Receives hooked tensors in forward order and streams them to the writer.

    Summaries are computed on the device. With full tensors, each is copied to the host and written
    at once; with ``summary`` only, summaries stay on the device and a batch of
    :data:`~precdiff.config.STATS_FLUSH_EVERY` is copied and written at once (one synchronisation
    and one index append per batch), and at the end of each forward (:meth:`flush`).
    """

    def __init__(
        self,
        writer: CaptureWriter,
        *,
        summary: bool,
        device: torch.device,
        num_tokens: int = 0,
        full: Callable[[str], bool] | None = None,
        sketches: bool = True,
    ):
        self.writer = writer
        self.summary = summary
        self.device = device
        self.num_tokens = num_tokens  # the prompt length, for each tensor's token axis
        self.full = full  # summary captures: names stored in full anyway (focus capture)
        self.keep_op: Callable[[str], bool] = lambda scope: True  # op level: which module scopes
        self.flush_every = STATS_FLUSH_EVERY
        self._kept_scopes: dict[str, bool] = {}  # keep_op per module call, memoised (regexes per op cost µs)
        self._pending: list[_Pending] = []
        self._summaries = SummaryBatch(sketches=sketches)  # in step with _pending
        self._background: BackgroundCalls | None = None  # full tensors: writes overlap the forward

    def __call__(self, name: str, module: str, role: str, tensor: torch.Tensor) -> None:
        """A module's output or input (``role``), from :func:`~precdiff.capture.hooks.attach`."""
        kind = KIND_MODULE_INPUT if role == ROLE_INPUT else KIND_MODULE_OUTPUT
        self._write(name, module, role, kind, tensor, None)

    def op(self, name: str, scope: str, op: str, tensor: torch.Tensor, inputs: tuple[str, ...]) -> None:
        """An op output with its input references, from :class:`~precdiff.capture.op_trace.OpTracer`."""
        kept = self._kept_scopes.get(scope)
        if kept is None:
            kept = self._kept_scopes[scope] = self.keep_op(scope)
        if kept:
            self._write(name, scope, ROLE_OUTPUT, KIND_OP_OUTPUT, tensor, inputs)

    def _write(
        self,
        name: str,
        module: str,
        role: str,
        kind: str,
        tensor: torch.Tensor,
        inputs: tuple[str, ...] | None,
    ) -> None:
        reason = self.writer.accepts(tensor.dtype, tensor.shape)
        if reason is not None:  # e.g. complex rotary tables: recorded, and the capture goes on
            self._call(self.writer.skip, name, reason)
            return
        shape = tuple(tensor.shape)
        entry = _Pending(
            name, module, role, kind, tensor.dtype, shape, token_axis(shape, self.num_tokens), inputs
        )
        if self.summary and not (self.full is not None and self.full(name)):
            self._pending.append(entry)
            self._summaries.add(tensor)
            if len(self._pending) >= self.flush_every:
                self.flush()
            return
        self._flush_summaries()  # keep the file in forward order
        single = SummaryBatch(slots=1)
        single.add(tensor)
        stats = single.resolve()[0].stats
        data = to_storage(tensor)  # synchronous device-to-host copy
        if self._background is None:
            self._background = BackgroundCalls()
        self._emit(entry, stats, data)

    def _call(self, call: Callable[..., object], /, *args: object, **kwargs: object) -> None:
        """A writer call, on the background thread while it runs (one order for every write)."""
        if self._background is not None:
            self._background.submit(call, *args, **kwargs)
        else:
            call(*args, **kwargs)

    def _emit(self, entry: _Pending, stats: list[float], data: np.ndarray | None) -> None:
        self._call(
            self.writer.write_tensor,
            entry.name,
            module=entry.module,
            role=entry.role,
            dtype=entry.dtype,
            shape=entry.shape,
            stats=stats,
            data=data,
            kind=entry.kind,
            token_axis=entry.token_axis,
            inputs=entry.inputs,
        )

    def flush(self) -> None:
        """Write everything queued and wait for the background writes (end of a forward, or a failure:
        what was computed is kept). Raises the first error of a background write."""
        self._flush_summaries()
        if self._background is not None:
            background, self._background = self._background, None
            background.close()

    def _flush_summaries(self) -> None:
        if not self._pending:
            return
        summaries = self._summaries.resolve()
        for entry, summary in zip(self._pending, summaries):
            self._emit(entry, summary.stats, None)
        self._pending.clear()
        self._call(self.writer.flush_index)
