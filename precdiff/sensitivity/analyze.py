"""``find_sensitive_layers``: the one library call behind ``precdiff sensitivity``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from precdiff.capture.models import load_model, parse_dtype
from precdiff.devices import backend_versions, resolve_device
from precdiff.errors import InputError
from precdiff.sensitivity import calib, rank
from precdiff.sensitivity.collect import Progress, collect_layer_stats, collect_ranges
from precdiff.sensitivity.options import QUARTILE_BINS, SensitivityOptions
from precdiff.sensitivity.quantizers import bits_label
from precdiff.sensitivity.results import RunInfo, SensitivityReport
from precdiff.sensitivity.targets import find_targets, quantized_weights
from precdiff.sensitivity.verify import verify


def find_sensitive_layers(
    model: str | nn.Module,
    calib_path: str | Path,
    options: SensitivityOptions | None = None,
    *,
    tokenizer: Any = None,
    progress: Progress | None = None,
) -> SensitivityReport:
    """Fake-quantize every Linear and embedding weight, measure each layer on the calibration prompts,
    flag the layers that must stay in float, and (``options.verify``) check that this is enough.

    Args:
        model: a local HF directory or ``tiny:<arch>`` (loaded on ``options.device`` in
            ``options.dtype``), or an ``nn.Module`` already on its device (e.g. a GGUF model loaded with
            transformers), used in its own dtype; pass its ``tokenizer`` too.
        calib_path: one prompt per line, text or chat JSONL (see :mod:`precdiff.sensitivity.calib`).
        options: scheme, thresholds or budget, histogram bins, verification.
        tokenizer: the tokenizer of a module passed as ``model`` (ignored for a source string).
        progress: called as ``progress(stage, done, total)`` after each prompt, stage
            ``ranges|measure|verify``.

    Returns:
        The per-layer measures, the flagged set and, with ``verify``, the verification table.

    Raises:
        InputError, ModelLoadError, DeviceUnavailableError.

    Example:
        >>> report = find_sensitive_layers("tiny:llama", "data/calibration/pride_and_prejudice.txt",
        ...                                SensitivityOptions(device="cpu", max_prompts=4))
        >>> [layer.name for layer in report.flagged]  # doctest: +SKIP
    """
    options = options or SensitivityOptions()
    options.validate()
    started = time.perf_counter()
    scheme = options.scheme
    if isinstance(model, nn.Module):
        module = model
        first = next(module.parameters())
        device, dtype, source = first.device, first.dtype, type(model).__name__
    else:
        device, dtype, source = resolve_device(options.device), parse_dtype(options.dtype), model
        torch.manual_seed(options.seed)
        loaded = load_model(
            model, dtype=dtype, device=device, trust_remote_code=options.trust_remote_code, seed=options.seed
        )
        module, tokenizer = loaded.model, loaded.tokenizer
    module.eval()
    sequences = calib.tokenize(calib.read_prompts(calib_path), tokenizer, options.max_tokens)
    calibration, held_out = calib.split(
        sequences, verify=options.verify, holdout=options.holdout, max_prompts=options.max_prompts
    )
    targets = find_targets(module)
    if not targets:
        raise InputError(f"{source} has no nn.Linear or nn.Embedding weight to quantize")
    with torch.no_grad():
        qweights = quantized_weights(targets, scheme)
        ranges = collect_ranges(module, targets, calibration, device, progress)
        stats = collect_layer_stats(
            module,
            targets,
            qweights,
            ranges,
            calibration,
            device,
            bins=options.bins,
            quartile_bins=QUARTILE_BINS,
            progress=progress,
        )
    measured = [t for t in targets if t.name in stats]
    weights = rank.weight_measures(measured)
    layers = rank.flag(
        [rank.layer_measures(t, stats[t.name], weights[t.name], options.smoothing) for t in measured],
        options.thresholds(),
        options.budget,
    )
    verification = None
    if options.verify:
        verification = verify(
            module,
            measured,
            qweights,
            [layer.name for layer in layers if layer.flagged],
            held_out,
            device,
            new_tokens=options.new_tokens,
            progress=progress,
        )
    versions = dict(backend_versions())
    versions["transformers"] = transformers.__version__
    run = RunInfo(
        model=source,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        calib=str(calib_path),
        prompts=len(calibration),
        tokens=sum(len(ids) for ids in calibration),
        max_tokens=options.max_tokens,
        versions=versions,
        runtime_s=round(time.perf_counter() - started, 3),
    )
    return SensitivityReport(
        run=run,
        scheme=scheme.to_dict(),
        quantized_flag=bits_label(scheme),
        thresholds=options.thresholds(),
        budget=options.budget,
        bins=options.bins,
        smoothing=options.smoothing,
        layers=layers,
        verification=verification,
    )
