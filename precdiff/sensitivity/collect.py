"""Streaming per-layer statistics over the calibration prompts, in bounded memory.

Two passes over the prompts, one prompt at a time (no padding enters any statistic):

1. **ranges**: the float model runs alone; forward hooks keep, per target, the per-channel min and max
   of its float output, the pooled mean and the token count.
2. **measure**: the float model runs again; each target's hook also recomputes its output with the
   fake-quantized weight (same input) and adds both outputs to fixed-range histograms, one per output
   channel (``bins`` equal bins over that channel's float [min, max], plus an underflow and an overflow
   bin, filled by linear binning: see :func:`_add_linear_binned`), a pooled histogram of the float output
   (:data:`~precdiff.sensitivity.options.QUARTILE_BINS` bins over its [min, max]) for the activation
   quartiles, shifted power sums for the skewness and the error sums for rel-L2 and cosine.

Memory is ``O(channels × bins)`` per target whatever the number of prompts. Channels are the last axis of
the output (``out_features`` of a Linear, ``hidden`` of an embedding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from precdiff.devices import synchronize
from precdiff.sensitivity.targets import Target, swapped

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SUMS = ("s1", "s2", "s3", "error_sq", "float_sq", "quant_sq", "dot")


@dataclass
class RangeStats:
    """Pass 1 of one target: per-channel float output range, pooled sum and count."""

    low: torch.Tensor  # [channels] float32
    high: torch.Tensor  # [channels] float32
    total: torch.Tensor  # [] float64 on the device: no host synchronisation per call
    count: int = 0

    @property
    def mean(self) -> float:
        return float(self.total) / self.count if self.count else 0.0


@dataclass
class LayerStats:
    """Pass 2 of one target: histograms, shifted power sums and error sums (float64 on the host)."""

    float_hist: torch.Tensor  # [channels, bins + 2] float64 (linear binning splits samples)
    quant_hist: torch.Tensor  # [channels, bins + 2] float64
    pooled_hist: torch.Tensor  # [quartile_bins] int64 over [pooled_low, pooled_high]
    pooled_low: float
    pooled_high: float
    shift: float  # the pass-1 mean the power sums are taken around
    # Σd, Σd², Σd³ (d = y − shift), Σ(ŷ − y)², Σy², Σŷ², Σyŷ: float64, on the device during the pass
    sums: torch.Tensor
    count: int = 0

    def sum(self, name: str) -> float:
        return float(self.sums[SUMS.index(name)])


def _channels_last(output: torch.Tensor) -> torch.Tensor:
    """``[tokens, channels]`` view of an output ``[..., channels]``, as float32."""
    return output.detach().reshape(-1, output.shape[-1]).float()


@contextmanager
def _hooks(
    targets: Sequence[Target], hook: Callable[[Target, tuple[Any, ...], dict[str, Any], Any], None]
) -> Iterator[None]:
    handles = []
    try:
        for target in targets:

            def call(
                module: nn.Module,
                args: tuple[Any, ...],
                kwargs: dict[str, Any],
                output: Any,
                target: Target = target,
            ) -> None:
                if isinstance(output, torch.Tensor) and output.is_floating_point():
                    hook(target, args, kwargs, output)

            handles.append(target.module.register_forward_hook(call, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _run(
    model: nn.Module,
    sequences: Sequence[list[int]],
    device: torch.device,
    stage: str,
    progress: Progress | None,
) -> None:
    with torch.no_grad():
        for done, ids in enumerate(sequences):
            model(input_ids=torch.tensor([ids], device=device), use_cache=False)
            if progress is not None:
                progress(stage, done + 1, len(sequences))


def collect_ranges(
    model: nn.Module,
    targets: Sequence[Target],
    sequences: Sequence[list[int]],
    device: torch.device,
    progress: Progress | None = None,
) -> dict[str, RangeStats]:
    """Pass 1: per-channel min/max of each target's float output, pooled mean and count."""
    stats: dict[str, RangeStats] = {}

    def hook(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any], output: torch.Tensor) -> None:
        values = _channels_last(output)
        low, high = values.amin(dim=0), values.amax(dim=0)
        entry = stats.get(target.name)
        if entry is None:
            entry = stats[target.name] = RangeStats(
                low, high, torch.zeros((), dtype=torch.float64, device=low.device)
            )
        else:
            entry.low, entry.high = torch.minimum(entry.low, low), torch.maximum(entry.high, high)
        entry.total += values.sum(dtype=torch.float64)
        entry.count += values.numel()

    with _hooks(targets, hook):
        _run(model, sequences, device, "ranges", progress)
    synchronize(device)
    return stats


def _add_linear_binned(
    hist: torch.Tensor, values: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, offsets: torch.Tensor
) -> None:
    """Add ``[tokens, channels]`` values to ``hist`` (float64, ``[channels × (bins + 3)]``) by linear binning.

    Bin ``k`` (0 = underflow, 1..bins regular, bins + 1 = overflow) is centred at ``u = k − 0.5`` in units
    of the channel's bin width, ``u = (v − low) / width``. Each value splits its unit mass between the two
    nearest centres in proportion to its distance (values past the outer centres count fully in the tail
    bin). A value that moves by ``δ`` thus moves ``δ / width`` of its mass, never a whole sample, so the KL
    grows smoothly with the quantization error instead of jumping when a value crosses a bin edge. The
    last slot of each row only ever receives zero mass (it saves a clamp); :func:`collect_layer_stats`
    drops it. ``scale = 1/width`` and ``bias = 0.5 − low/width`` per channel.
    """
    stride = hist.numel() // offsets.numel()
    position = torch.addcmul(bias, values, scale).clamp_(0.0, stride - 2)  # u + 0.5, in [0, bins + 1]
    lower = position.floor()
    upper_share = position.sub_(lower)
    index = lower.long().add_(offsets)
    # Counts per prompt are small, so float32 holds them exactly enough; the run total is float64.
    step = torch.zeros(hist.numel(), dtype=torch.float32, device=hist.device)
    step.index_add_(0, index.view(-1), (1.0 - upper_share).view(-1))
    step.index_add_(0, index.add_(1).view(-1), upper_share.view(-1))
    hist += step


def _widths(low: torch.Tensor, high: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin width per channel; a constant channel gets a width of 1e-6 of its magnitude (or 1e-30 at
    zero) so that float rounding noise stays in its bin."""
    floor = torch.clamp(1e-6 * torch.maximum(low.abs(), high.abs()), min=1e-30)
    return torch.maximum((high - low) / bins, floor)


def collect_layer_stats(
    model: nn.Module,
    targets: Sequence[Target],
    qweights: dict[str, torch.Tensor],
    ranges: dict[str, RangeStats],
    sequences: Sequence[list[int]],
    device: torch.device,
    *,
    bins: int,
    quartile_bins: int,
    progress: Progress | None = None,
) -> dict[str, LayerStats]:
    """Pass 2: histograms of the float and the fake-quantized output of each target, and running sums."""
    stats: dict[str, LayerStats] = {}
    geometry: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # 1/width, bias, row offset
    for target in targets:
        r = ranges.get(target.name)
        if r is None:  # never called on these prompts
            continue
        channels = r.low.numel()
        pooled_low, pooled_high = float(r.low.min()), float(r.high.max())
        stats[target.name] = LayerStats(
            float_hist=torch.zeros(channels * (bins + 3), dtype=torch.float64, device=r.low.device),
            quant_hist=torch.zeros(channels * (bins + 3), dtype=torch.float64, device=r.low.device),
            pooled_hist=torch.zeros(quartile_bins, dtype=torch.int64, device=r.low.device),
            pooled_low=pooled_low,
            pooled_high=pooled_high,
            shift=r.mean,
            sums=torch.zeros(len(SUMS), dtype=torch.float64, device=r.low.device),
        )
        offsets = torch.arange(channels, device=r.low.device) * (bins + 3)
        inverse = 1.0 / _widths(r.low, r.high, bins)
        geometry[target.name] = (inverse, 0.5 - r.low * inverse, offsets)

    def hook(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any], output: torch.Tensor) -> None:
        entry = stats.get(target.name)
        if entry is None:
            return
        with swapped([(target.module, qweights[target.name])]):
            quant_output = target.module.forward(*args, **kwargs)  # forward(): no hooks, no recursion
        y, q = _channels_last(output), _channels_last(quant_output)
        scale, bias, offsets = geometry[target.name]
        _add_linear_binned(entry.float_hist, y, scale, bias, offsets)
        _add_linear_binned(entry.quant_hist, q, scale, bias, offsets)
        per_bin = quartile_bins / max(entry.pooled_high - entry.pooled_low, 1e-30)
        pooled = ((y - entry.pooled_low) * per_bin).clamp_(0, quartile_bins - 1).long()
        entry.pooled_hist += torch.bincount(pooled.view(-1), minlength=quartile_bins)
        # Per-prompt sums as float32 dot products (BLAS; relative error ~1e-6), accumulated in float64.
        y1, q1 = y.reshape(-1), q.reshape(-1)
        d = y1 - entry.shift
        d2 = d * d
        diff = q1 - y1
        entry.sums += torch.stack(
            [
                d.sum(),
                d2.sum(),
                torch.dot(d2, d),
                torch.dot(diff, diff),
                torch.dot(y1, y1),
                torch.dot(q1, q1),
                torch.dot(y1, q1),
            ]
        ).double()
        entry.count += y.numel()

    with _hooks(targets, hook):
        _run(model, sequences, device, "measure", progress)
    synchronize(device)
    for entry in stats.values():
        channels = entry.float_hist.numel() // (bins + 3)
        entry.float_hist = entry.float_hist.view(channels, bins + 3)[:, : bins + 2].cpu()
        entry.quant_hist = entry.quant_hist.view(channels, bins + 3)[:, : bins + 2].cpu()
        entry.pooled_hist = entry.pooled_hist.cpu()
        entry.sums = entry.sums.cpu()
    return stats
