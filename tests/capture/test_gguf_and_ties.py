"""GGUF input (a tiny GGUF written here; the real SmolLM2 file under ``-m realmodel``) and greedy
generation that agrees with ``generate(do_sample=False)`` on exact ties."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from precdiff.capture import gguf_model, tiny
from precdiff.capture.kv_cache import returned_cache
from precdiff.capture.logits import greedy_generate
from precdiff.capture.models import load_model
from precdiff.errors import ModelLoadError


def test_greedy_generation_matches_generate_on_exact_ties() -> None:
    model = tiny.build_model("llama", seed=0).eval()
    with torch.no_grad():
        weight = torch.zeros_like(model.lm_head.weight)
        row = torch.randn(weight.shape[1], generator=torch.Generator().manual_seed(0))
        for token in (7, 3, 11):  # three identical rows: their logits tie exactly, whichever is largest
            weight[token] = row
        model.lm_head.weight.copy_(weight)
        ids = torch.tensor([[1, 5, 9, 2]])
        out = model(input_ids=ids, use_cache=True)
        record = greedy_generate(model, out.logits[0, -1], returned_cache(out), 4, 6, 5)
        expected = model.generate(ids, do_sample=False, max_new_tokens=6, min_new_tokens=6, pad_token_id=0)
    assert record.ids.tolist() == expected[0, 4:].tolist()
    assert set(record.ids.tolist()) <= {0, 3}  # the first maximum: token 3 of the tie, or 0 of the zeros
    assert record.margin.min() == 0.0  # an exact tie was decided
    assert float(record.top_logit[0]) == float(out.logits[0, -1].max())


def test_missing_gguf_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(ModelLoadError) as info:
        load_model(str(path), dtype=torch.float32, device=torch.device("cpu"))
    assert str(info.value) == (
        "reading a GGUF file needs the gguf and accelerate packages: pip install 'precdiff[gguf]'"
    )


def test_a_directory_with_two_gguf_files_is_refused(tmp_path: Path) -> None:
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError) as info:
        gguf_model.find_gguf(tmp_path)
    assert str(info.value) == (
        f"{tmp_path} holds 2 GGUF files (a.gguf, b.gguf); pass the one to load as MODEL / model="
    )


def write_tiny_gguf(path: Path) -> Path:
    """tiny:llama as an F32 GGUF (no tokenizer metadata), written with the gguf package's GGUFWriter."""
    gguf = pytest.importorskip("gguf")
    model = tiny.build_model("llama", seed=0)
    c = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    top = {"embed_tokens": "token_embd", "norm": "output_norm", "lm_head": "output"}
    layer = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for name, tensor in model.state_dict().items():
        parts = name.split(".")
        if parts[1] == "layers":
            gguf_name = f"blk.{parts[2]}.{layer['.'.join(parts[3:-1])]}.{parts[-1]}"
        else:
            gguf_name = f"{top[parts[-2]]}.{parts[-1]}"
        writer.add_tensor(gguf_name, tensor.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_capture_takes_a_gguf_file_or_its_directory(tmp_path: Path) -> None:
    from precdiff.capture import capture
    from precdiff.compare.compare import compare
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.store import open_capture

    folder = tmp_path / "model"
    folder.mkdir()
    path = write_tiny_gguf(folder / "tiny.gguf")
    options = CaptureOptions(device="cpu", max_new_tokens=2)
    capture(str(path), tmp_path / "file.h5", CaptureInput(input_ids=(1, 2, 3, 4)), options)
    capture(str(folder), tmp_path / "dir.h5", CaptureInput(input_ids=(1, 2, 3, 4)), options)
    with open_capture(tmp_path / "file.h5") as cap:
        assert cap.manifest is not None
        facts = cap.manifest.model
    digest = gguf_model.sha256_of_file(path)
    assert (facts.gguf_sha256, facts.gguf_quantization, facts.weights_sha256) == (digest, "ALL_F32", digest)
    assert compare(tmp_path / "file.h5", tmp_path / "dir.h5").verdict.status == "match"
    loaded = load_model(str(path), dtype=torch.float32, device=torch.device("cpu"))
    loaded.model.save_pretrained(tmp_path / "saved")  # the quantizer marks are gone: a plain float model
    assert (tmp_path / "saved" / "model.safetensors").is_file()
