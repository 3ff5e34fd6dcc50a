"""A tiny model with planted outlier channels in two layers: exactly those two are flagged, and keeping
them float brings the quantized model closer to float."""

from __future__ import annotations

import torch
from conftest import CALIB, plant_outlier_channels

from precdiff.capture.models import load_model
from precdiff.sensitivity import SensitivityOptions, find_sensitive_layers

SMALL = dict(max_prompts=4, max_tokens=40, holdout=2, new_tokens=3)


def test_planted_outlier_layers_are_flagged_and_verify_shows_mixed_closer() -> None:
    loaded = load_model("tiny:llama", dtype=torch.float32, device=torch.device("cpu"))
    ids = torch.tensor([list(range(40, 80))])
    with torch.no_grad():
        before = loaded.model(input_ids=ids).logits
        planted = set(plant_outlier_channels(loaded.model))
        after = loaded.model(input_ids=ids).logits
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)  # the float model is unchanged

    report = find_sensitive_layers(
        loaded.model, CALIB, SensitivityOptions(verify=True, **SMALL), tokenizer=loaded.tokenizer
    )
    assert {layer.name for layer in report.flagged} == planted
    assert not report  # something is flagged
    by_name = {layer.name: layer for layer in report.layers}
    for name in planted:
        assert "R" in by_name[name].reasons and by_name[name].weight_r > 100
    quiet = [layer for layer in report.layers if layer.name not in planted]
    assert max(x.rel_l2 for x in quiet) * 2 < min(by_name[name].rel_l2 for name in planted)
    assert len(report.layers) == 4 * 7 + 2  # every Linear, the embedding and the LM head
    # The two planted layers also lead the combined rank that --budget uses.
    leaders = sorted(report.layers, key=lambda layer: layer.combined_rank)[:2]
    assert {layer.name for layer in leaders} == planted

    verification = report.verification
    assert verification is not None and verification.prompts == 2
    float_row, quantized, mixed = verification.rows
    assert (float_row.variant, quantized.variant, mixed.variant) == ("float", "quantized", "mixed")
    assert (float_row.quantized_layers, quantized.quantized_layers, mixed.quantized_layers) == (0, 30, 28)
    assert float_row.mean_kl == 0.0 and float_row.top1_agreement == 1.0 and float_row.greedy_agreement == 1.0
    assert verification.mixed_closer
    assert mixed.mean_kl * 2 < quantized.mean_kl
    assert abs(mixed.perplexity - float_row.perplexity) < abs(quantized.perplexity - float_row.perplexity)
