"""Streaming statistics: histograms count every token once, memory does not grow with the prompts, an
unchanged weight gives KL 0, and weight swaps are undone."""

from __future__ import annotations

import torch
from conftest import CALIB

from precdiff.capture.models import load_model
from precdiff.sensitivity import QuantScheme
from precdiff.sensitivity.calib import read_prompts, tokenize
from precdiff.sensitivity.collect import collect_layer_stats, collect_ranges
from precdiff.sensitivity.measures import histogram_kl
from precdiff.sensitivity.targets import find_targets, quantized_weights, swapped

CPU = torch.device("cpu")


def test_histograms_are_streaming_and_exact_for_an_unchanged_weight() -> None:
    loaded = load_model("tiny:llama", dtype=torch.float32, device=CPU)
    model = loaded.model
    sequences = tokenize(read_prompts(CALIB)[:3], loaded.tokenizer, 24)
    targets = [t for t in find_targets(model) if t.name in ("model.layers.0.mlp.up_proj", "lm_head")]
    assert [t.op for t in targets] == ["mlp.up_proj", "lm_head"]
    identity = {t.name: t.weight.detach().clone() for t in targets}  # "quantized" = the float weight
    sizes = {}
    for count in (1, 3):
        ranges = collect_ranges(model, targets, sequences[:count], CPU)
        stats = collect_layer_stats(
            model, targets, identity, ranges, sequences[:count], CPU, bins=8, quartile_bins=32
        )
        tokens = sum(len(s) for s in sequences[:count])
        for target in targets:
            entry = stats[target.name]
            channels = target.weight.shape[0]
            assert entry.float_hist.shape == (channels, 10)
            # Linear binning splits each value in two float32 shares: totals are exact to float32 rounding.
            torch.testing.assert_close(
                entry.float_hist.sum(dim=1), torch.full((channels,), float(tokens), dtype=torch.float64)
            )
            assert histogram_kl(entry.float_hist, entry.quant_hist) == 0.0
            assert entry.sum("error_sq") == 0.0 and entry.count == tokens * channels
        sizes[count] = sum(s.float_hist.numel() + s.pooled_hist.numel() for s in stats.values())
    assert sizes[1] == sizes[3]  # bounded memory: the statistics do not grow with the prompts
    assert all(not m._forward_hooks for m in model.modules())


def test_swaps_replace_one_module_of_a_tied_pair_and_are_undone() -> None:
    loaded = load_model("tiny:llama", dtype=torch.float32, device=CPU)
    model = loaded.model
    model.lm_head.weight = model.model.embed_tokens.weight  # tie them
    targets = find_targets(model)
    qweights = quantized_weights(targets, QuantScheme(4, "channel", None, True))
    assert qweights["lm_head"] is qweights["model.embed_tokens"]  # one computation per tensor
    embedding = model.model.embed_tokens.weight
    with swapped([(model.lm_head, qweights["lm_head"])]):
        assert torch.equal(model.lm_head.weight, qweights["lm_head"])
        assert model.model.embed_tokens.weight is embedding
    assert model.lm_head.weight is embedding
