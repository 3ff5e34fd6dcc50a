"""``TensorSink``: where hooked tensors go, shared by ``capture()`` and the external (hooks/) capture."""

from __future__ import annotations

from collections.abc import Callable

import torch

from precdiff.capture.stats import PendingStats, resolve
from precdiff.config import STATS_FLUSH_EVERY
from precdiff.store import CaptureWriter
from precdiff.store.dtypes import to_storage


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
        full: Callable[[str], bool] | None = None,
    ):
        self.writer = writer
        self.summary = summary
        self.device = device
        self.full = full  # summary captures: names stored in full anyway (focus capture)
        self._pending: list[tuple[str, str, str, torch.dtype, tuple[int, ...], PendingStats]] = []

    def __call__(self, name: str, module: str, role: str, tensor: torch.Tensor) -> None:
        reason = self.writer.accepts(tensor.dtype, tensor.shape)
        if reason is not None:  # e.g. complex rotary tables: recorded, and the capture goes on
            self.writer.skip(name, reason)
            return
        stats = PendingStats(tensor)
        if self.summary and not (self.full is not None and self.full(name)):
            self._pending.append((name, module, role, tensor.dtype, tuple(tensor.shape), stats))
            if len(self._pending) >= STATS_FLUSH_EVERY:
                self.flush()
            return
        data = to_storage(tensor)  # synchronous device-to-host copy
        self.writer.write_tensor(
            name,
            module=module,
            role=role,
            dtype=tensor.dtype,
            shape=tuple(tensor.shape),
            stats=resolve([stats])[0],
            data=data,
        )

    def flush(self) -> None:
        if not self._pending:
            return
        values = resolve([entry[5] for entry in self._pending])
        for (name, module, role, dtype, shape, _), row in zip(self._pending, values):
            self.writer.write_tensor(
                name, module=module, role=role, dtype=dtype, shape=shape, stats=row, data=None
            )
        self._pending.clear()
        self.writer.flush_index()
