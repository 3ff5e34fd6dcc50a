"""``TensorSink``: where hooked tensors go, shared by ``capture()`` and the external (hooks/) capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from precdiff.capture.op_call import OpCall
from precdiff.capture.stats import PendingStats, resolve
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
    stats: PendingStats
    call: str | None = None  # the op's encoded call (JSON), op outputs only


class TensorSink:
    """Receives hooked tensors in forward order and streams them to the writer.

    Statistics are computed on the device. With full tensors, each is copied to the host and written
    at once; with ``summary`` only, statistics stay on the device and a batch of
    :data:`~precdiff.config.STATS_FLUSH_EVERY` is copied and written at once (one synchronisation
    and one index append per batch).
    """

    def __init__(
        self,
        writer: CaptureWriter,
        *,
        summary: bool,
        device: torch.device,
        num_tokens: int = 0,
        full: Callable[[str], bool] | None = None,
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

    def __call__(self, name: str, module: str, role: str, tensor: torch.Tensor) -> None:
        """A module's output or input (``role``), from :func:`~precdiff.capture.hooks.attach`."""
        kind = KIND_MODULE_INPUT if role == ROLE_INPUT else KIND_MODULE_OUTPUT
        self._write(name, module, role, kind, tensor, None)

    def op(
        self,
        name: str,
        scope: str,
        op: str,
        tensor: torch.Tensor,
        inputs: tuple[str, ...],
        call: OpCall | None,
    ) -> None:
        """An op output with its input references and call, from :class:`~precdiff.capture.op_trace.OpTracer`."""
        kept = self._kept_scopes.get(scope)
        if kept is None:
            kept = self._kept_scopes[scope] = self.keep_op(scope)
        if kept:
            self._write(name, scope, ROLE_OUTPUT, KIND_OP_OUTPUT, tensor, inputs, call)

    def _write(
        self,
        name: str,
        module: str,
        role: str,
        kind: str,
        tensor: torch.Tensor,
        inputs: tuple[str, ...] | None,
        call: OpCall | None = None,
    ) -> None:
        reason = self.writer.accepts(tensor.dtype, tensor.shape)
        if reason is not None:  # e.g. complex rotary tables: recorded, and the capture goes on
            self.writer.skip(name, reason)
            return
        stats = PendingStats(tensor)
        shape = tuple(tensor.shape)
        entry = _Pending(
            name, module, role, kind, tensor.dtype, shape, token_axis(shape, self.num_tokens), inputs, stats
        )
        if self.summary and not (self.full is not None and self.full(name)):
            self._pending.append(entry)
            if len(self._pending) >= self.flush_every:
                self.flush()
            return
        if call is not None:
            # Only for an op stored in full (replay needs its output): a summary row's call is never
            # encoded, so summary captures pay nothing for it; encoded now, while its tensors are alive.
            entry = entry._replace(call=call.encode())
        self._emit(entry, resolve([stats])[0], to_storage(tensor))  # synchronous device-to-host copy

    def _emit(self, entry: _Pending, stats: list[float], data: np.ndarray | None) -> None:
        self.writer.write_tensor(
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
            call=entry.call,
        )

    def flush(self) -> None:
        if not self._pending:
            return
        values = resolve([entry.stats for entry in self._pending])
        for entry, row in zip(self._pending, values):
            self._emit(entry, row, None)
        self._pending.clear()
        self.writer.flush_index()
