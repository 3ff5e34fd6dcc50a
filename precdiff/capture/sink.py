"""``TensorSink``: where hooked tensors go, shared by ``capture()`` and the external (hooks/) capture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from precdiff.capture.aliases import AliasIndex
from precdiff.capture.background import BackgroundCalls
from precdiff.capture.host_copy import HostCopies, Staged
from precdiff.capture.op_call import OpCall
from precdiff.capture.sketch import ROW_SEED, SIGN_BIT, WIDTH
from precdiff.capture.stats import Summary, SummaryBatch, SummaryBlock
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

_POLL_EVERY = 16  # queued rows between two looks for summaries already on the host
# Summary rows written between two index appends (each resizes, writes, flushes; the op level appends
# every OP_INDEX_BATCH). On this thread: h5py holds the GIL while it writes, so a writer thread would
# take the time from the forward, not overlap it.
_INDEX_EVERY = 256
# Writes queued behind the one in progress when full tensors are staged in pinned buffers (the pool
# bounds their memory): enough that the writer never waits for the forward between two tensors.
_STAGED_DEPTH = 16

# Recorded with the sketches (docs/format.md): compare estimates only between sketches of one function.
SKETCH_METHOD = f"countsketch width={WIDTH} row_seed={ROW_SEED:#x} sign_bit={SIGN_BIT}"


# Of a dtype and shape: the writer's reason to refuse it (None: it takes it), the shape, the token axis.
_Layout = tuple[str | None, tuple[int, ...], int | None]


class _Slot:
    """A tensor's statistics, filled when its summary reaches the host; an alias shares its target's."""

    __slots__ = ("stats",)

    def __init__(self) -> None:
        self.stats: Sequence[float] | None = None  # STAT_NAMES order


class _Target(NamedTuple):
    """What an alias needs of the tensor it aliases."""

    name: str
    slot: _Slot
    stored: bool


class _Pending(NamedTuple):
    # The first nine fields are an index row in the order of CaptureWriter.write_rows.
    name: str
    module: str
    role: str
    kind: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    token_axis: int | None
    inputs: tuple[str, ...] | None
    alias_of: str | None
    slot: _Slot
    queued: bool  # its summary is in the sink's batch; False: an alias reading its target's slot


class TensorSink:
    """Receives hooked tensors in forward order and streams them to the writer.

    Summaries (statistics, and in summary captures the sketch and checksum of capture/sketch.py) are
    computed on the device without waiting for it (capture/stats.py). Summary-only tensors stay
    there until a batch of :data:`~precdiff.config.STATS_FLUSH_EVERY` is copied and written at once,
    and at the end of each forward (:meth:`flush`). A tensor stored in full is written on a background
    thread, so the disk works while the forward goes on: an accelerator's tensor is copied into a
    pooled pinned buffer without waiting for the copy (capture/host_copy.py), a CPU tensor is copied at
    once. Call :meth:`flush` before finishing the writer.

    ``dedupe``: a tensor that exactly aliases one captured earlier (capture/aliases.py) is written as
    a reference to it (``alias_of``) with no data and no sketch of its own. ``sketches``: False
    leaves the sketch out of summary captures (benchmarks measure its cost).
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
        sketches: bool = True,
        host_copies: HostCopies | None = None,
    ):
        self.writer = writer
        self.summary = summary
        self.device = device
        self.num_tokens = num_tokens  # the prompt length, for each tensor's token axis
        self.full = full  # summary captures: names stored in full anyway (focus capture)
        self.keep_op: Callable[[str], bool] = lambda scope: True  # op level: which module scopes
        self.flush_every = STATS_FLUSH_EVERY
        self.index_every = _INDEX_EVERY  # summary rows written between two index appends
        self._kept_scopes: dict[str, bool] = {}  # keep_op per module call, memoised (regexes per op cost µs)
        self._layouts: dict[tuple[torch.dtype, torch.Size], _Layout] = {}
        self._pending: list[_Pending] = []
        self._unindexed = 0  # summary rows given to the writer since its last index append
        self._sketches = summary and sketches  # full captures store the data, no sketch
        self._summaries = SummaryBatch(sketches=self._sketches)  # the queued entries of _pending
        self._single = SummaryBatch(sketches=self._sketches, slots=1)  # a full tensor's, resolved at once
        self._aliases: AliasIndex[_Target] | None = AliasIndex() if dedupe else None
        self._background: BackgroundCalls | None = None  # full tensors: writes overlap the forward
        # Device tensors stored in full go through pinned buffers (None: a CPU capture); tests pass
        # one with plain buffers.
        self._host = host_copies if host_copies is not None else HostCopies.for_device(device)
        if self._sketches:
            writer.sketch_method = SKETCH_METHOD
        if summary:
            # The sink appends the index itself every index_every summary rows: the writer's own
            # append + file flush every INDEX_BATCH rows was most of the host time of writing summary
            # rows, for no gain in what an interruption keeps.
            writer.index_batch = max(writer.index_batch, self.flush_every)

    def defer_summaries(self) -> Callable[[], None]:
        """Op level: the summaries of tensors of up to 64 MiB may wait to share a kernel launch (a
        forward hands the sink thousands of tensors, and the host's time per tensor bounds the
        capture). Returns what must run before anything writes to a tensor the sink was given: the
        op tracer calls it before every in-place or ``out=`` op, the caller once the traced forward
        is over."""
        assert not self._pending, "defer_summaries before the first tensor"
        self._summaries = SummaryBatch(sketches=self._sketches, defer=True)
        return self._summaries.launch_waiting

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
        dtype = tensor.dtype
        shape = tensor.shape  # a torch.Size: a tuple, hashed and compared as one
        layout = self._layouts.get((dtype, shape))
        if layout is None:
            layout = self._layout(dtype, shape)
        reason, dims, axis = layout
        if reason is not None:  # e.g. complex rotary tables: recorded, and the capture goes on
            self._call(self.writer.skip, name, reason)
            return
        in_full = not self.summary or (self.full is not None and self.full(name))
        target = self._aliases.find(tensor) if self._aliases is not None else None
        if target is not None and (target.stored or not in_full):  # an alias has no data of its own
            self._queue(
                _Pending(name, module, role, kind, dtype, dims, axis, inputs, target.name, target.slot, False)
            )
            return
        slot = _Slot()
        if self._aliases is not None:
            self._aliases.add(tensor, _Target(name, slot, in_full))
        entry = _Pending(name, module, role, kind, dtype, dims, axis, inputs, None, slot, True)
        if not in_full:
            self._summaries.add(tensor)
            self._queue(entry)
            return
        # Only for an op stored in full (replay needs its output): a summary row's call is never
        # encoded, so summary captures pay nothing for it; encoded now, while its tensors are alive.
        encoded = call.encode() if call is not None else None
        self._flush_summaries()  # keep forward order: pending summary rows first
        self._single.add(tensor)
        (summary,) = self._single.resolve()
        slot.stats = summary.stats
        if self._background is None:
            # The pool bounds the host memory of staged copies; fresh host copies only the queue does.
            self._background = BackgroundCalls(depth=_STAGED_DEPTH if self._host is not None else 2)
        data: np.ndarray | Staged
        if self._host is not None and self._host.handles(tensor):
            data = self._host.stage(tensor)
        else:
            data = to_storage(tensor)  # synchronous device-to-host copy
            if tensor.device.type == "cpu":  # no copy was made, and the forward may change it in place
                data = data.copy()
        self._emit(entry, summary, encoded, data)

    def _layout(self, dtype: torch.dtype, size: torch.Size) -> _Layout:
        """Whether the writer takes a dtype and shape, the shape as ints and its token axis: decided
        once per pair (an op-level forward repeats a few dozen of them thousands of times)."""
        shape = tuple(size)
        layout = (self.writer.accepts(dtype, shape), shape, token_axis(shape, self.num_tokens))
        self._layouts[(dtype, size)] = layout
        return layout

    def _queue(self, entry: _Pending) -> None:
        self._pending.append(entry)
        if len(self._pending) >= self.flush_every:
            self._flush_summaries()
        elif len(self._pending) % _POLL_EVERY == 0:
            # Rows whose summaries already reached the host are written now, while the device still
            # runs the forward, instead of all after the device has finished.
            self._emit_pending(self._summaries.take_ready())

    def _call(self, call: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """A writer call, on the background thread while it runs (one order for every write)."""
        if self._background is not None:
            self._background.submit(call, *args, **kwargs)
        else:
            call(*args, **kwargs)

    def _emit(self, entry: _Pending, summary: Summary, call: str | None, data: np.ndarray | Staged) -> None:
        """Write a tensor stored in full, with its summary and its op's encoded call."""
        sketch = None
        if summary.sketch is not None and summary.checksum is not None:
            sketch = (summary.sketch, summary.checksum)
        row: dict[str, Any] = dict(
            module=entry.module,
            role=entry.role,
            dtype=entry.dtype,
            shape=entry.shape,
            stats=summary.stats,
            kind=entry.kind,
            token_axis=entry.token_axis,
            inputs=entry.inputs,
            call=call,
            sketch=sketch,
        )
        if isinstance(data, Staged):
            assert self._background is not None, "a staged copy without the writer thread"
            # The buffer goes back to the pool once written, and also when the call is skipped after
            # an earlier error, so that the forward never waits for a buffer that will not come.
            try:
                self._background.submit(self._write_staged, entry.name, data, row, after=data.release)
            except BaseException:  # not queued (an earlier write failed, or an interrupt)
                data.release()
                raise
        else:
            self._call(self.writer.write_tensor, entry.name, data=data, **row)

    def _write_staged(self, name: str, staged: Staged, row: dict[str, Any]) -> None:
        """On the writer thread: wait for the device-to-host copy, then write the tensor."""
        self.writer.write_tensor(name, data=staged.host(), **row)

    def flush(self) -> None:
        """Write everything queued and wait for the background writes (end of a forward, or a failure:
        what was computed is kept). Raises the first error of a background write."""
        self._flush_summaries()
        if self._background is not None:
            background, self._background = self._background, None
            try:
                background.close()
            finally:
                if self._host is not None:
                    self._host.pool.clear()  # every buffer came back: torch's host allocator keeps them

    def _flush_summaries(self) -> None:
        if not self._pending:
            return
        # Batch by batch as each reaches the host: the rows of one are written while the device
        # still reduces the next (at the end of a forward the device runs tens of ms behind).
        while self._pending:
            before = len(self._pending)
            block = self._summaries.take_ready()
            if not block.size:
                # About to wait for the device: append the rows written so far meanwhile, so that
                # once it finishes only the last batch's rows are left to write.
                if self._unindexed:
                    self._call(self.writer.flush_index)
                    self._unindexed = 0
                block = self._summaries.take_next()
            self._emit_pending(block)
            assert len(self._pending) < before, "a pending summary row without its queued summary"
        self._call(self.writer.flush_index)
        self._unindexed = 0

    def _emit_pending(self, block: SummaryBlock) -> None:
        """Write the oldest pending rows, in order, as far as ``block`` (the next queued summaries) goes:
        one writer call for all of them, the statistics and sketches as arrays."""
        available = block.size
        stats = block.stats
        used = written = 0
        aliases = False
        for entry in self._pending:
            if entry.queued:
                if used == available:
                    break
                entry.slot.stats = stats[used]  # for aliases of it, later
                used += 1
            else:
                aliases = True  # its target came earlier: its slot is filled
            written += 1
        assert used == available, "a resolved summary without its pending row"
        if not written:
            return
        rows = self._pending[:written]
        del self._pending[:written]
        sketched = None  # the rows that have a sketch: every row, unless some are aliases
        if aliases:
            stats = np.array([entry.slot.stats for entry in rows], dtype=np.float64)
            sketched = np.flatnonzero([entry.queued for entry in rows])
        sketches = None
        if self._sketches and block.sketches is not None and block.checksums is not None:
            sketches = (block.sketches, block.checksums)
        self._call(self.writer.write_rows, rows, stats, sketches, sketched)
        self._unindexed += written
        if self._unindexed >= self.index_every:
            self._call(self.writer.flush_index)
            self._unindexed = 0
