"""``TensorSink``: where hooked tensors go, shared by ``capture()`` and the external (hooks/) capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from precdiff.capture.aliases import AliasIndex
from precdiff.capture.op_call import OpCall
from precdiff.capture.sketch import ROW_SEED, SIGN_BIT, WIDTH, sketch_and_checksum
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

# Recorded with the sketches (docs/format.md): compare estimates only between sketches of one function.
SKETCH_METHOD = f"countsketch width={WIDTH} row_seed={ROW_SEED:#x} sign_bit={SIGN_BIT}"

# A sketch and checksum still on the tensor's device (capture/sketch.py), copied to the host in a batch.
DeviceSketch = tuple[torch.Tensor, torch.Tensor]


class _Target(NamedTuple):
    """What an alias needs of the tensor it aliases."""

    name: str
    stats: PendingStats
    stored: bool


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
    sketch: DeviceSketch | None  # summary captures; None for an alias (it reads its target's)
    alias_of: str | None
    call: str | None = None  # the op's encoded call (JSON), op outputs stored in full only


def _host_sketches(entries: list[_Pending]) -> list[tuple[np.ndarray, int] | None]:
    """Copy a batch of device sketches and checksums to the host: two transfers for the batch."""
    present = [e.sketch for e in entries if e.sketch is not None]
    if not present:
        return [None] * len(entries)
    values = torch.stack([s for s, _ in present]).cpu().numpy()
    sums = torch.stack([c for _, c in present]).cpu().numpy().view(np.uint64)  # int64 bits mod 2⁶⁴
    host: list[tuple[np.ndarray, int] | None] = []
    found = 0
    for entry in entries:
        if entry.sketch is None:
            host.append(None)
        else:
            host.append((values[found], int(sums[found])))
            found += 1
    return host


class TensorSink:
    """Receives hooked tensors in forward order and streams them to the writer.

    Statistics are computed on the device. With full tensors, each is copied to the host and written
    at once; with ``summary`` only, statistics (and the summary sketch and checksum of every tensor,
    capture/sketch.py) stay on the device and a batch of :data:`~precdiff.config.STATS_FLUSH_EVERY`
    is copied and written at once (one synchronisation and one index append per batch).

    ``dedupe``: a tensor that exactly aliases one captured earlier (capture/aliases.py) is written as
    a reference to it (``alias_of``) with no data and no sketch of its own.
    """

    def __init__(
        self,
        writer: CaptureWriter,
        *,
        summary: bool,
        device: torch.device,
        num_tokens: int = 0,
        full: Callable[[str], bool] | None = None,
        dedupe: bool = True,
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
        self._aliases: AliasIndex[_Target] | None = AliasIndex() if dedupe else None
        if summary:
            writer.sketch_method = SKETCH_METHOD

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
        in_full = not self.summary or (self.full is not None and self.full(name))
        target = self._aliases.find(tensor) if self._aliases is not None else None
        if target is not None and (target.stored or not in_full):  # an alias has no data of its own
            stats, sketch, alias_of = target.stats, None, target.name
        else:
            stats = PendingStats(tensor)
            sketch = sketch_and_checksum(tensor) if self.summary else None
            alias_of = None
            if self._aliases is not None:
                self._aliases.add(tensor, _Target(name, stats, in_full))
        shape = tuple(tensor.shape)
        entry = _Pending(
            name,
            module,
            role,
            kind,
            tensor.dtype,
            shape,
            token_axis(shape, self.num_tokens),
            inputs,
            stats,
            sketch,
            alias_of,
        )
        if not in_full or alias_of is not None:
            self._pending.append(entry)
            if len(self._pending) >= self.flush_every:
                self.flush()
            return
        if call is not None:
            # Only for an op stored in full (replay needs its output): a summary row's call is never
            # encoded, so summary captures pay nothing for it; encoded now, while its tensors are alive.
            entry = entry._replace(call=call.encode())
        self.flush()  # keep forward order: pending summary rows first
        sketches = _host_sketches([entry])
        self._emit(entry, resolve([stats])[0], to_storage(tensor), sketches[0])  # synchronous copy

    def _emit(
        self,
        entry: _Pending,
        stats: list[float],
        data: np.ndarray | None,
        sketch: tuple[np.ndarray, int] | None,
    ) -> None:
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
            alias_of=entry.alias_of,
            sketch=sketch,
        )

    def flush(self) -> None:
        if not self._pending:
            return
        values = resolve([entry.stats for entry in self._pending])
        sketches = _host_sketches(self._pending)
        for entry, row, sketch in zip(self._pending, values, sketches):
            self._emit(entry, row, None, sketch)
        self._pending.clear()
        self.writer.flush_index()
