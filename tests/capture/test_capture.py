"""End-to-end capture on CPU: golden layout, statistics, inputs, architectures, settings restored."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from precdiff.capture import capture
from precdiff.capture.environment import determinism_state
from precdiff.capture.tiny import TINY_ARCHS
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import InputError
from precdiff.store import open_capture

GOLDEN = Path(__file__).parents[1] / "golden"
sys.path.insert(0, str(GOLDEN))
import layout  # noqa: E402  (tests/golden/layout.py)

CPU = CaptureOptions(device="cpu", max_new_tokens=2, top_k=4)


def test_golden_layout_and_names(tmp_path: Path) -> None:
    path = tmp_path / "golden.h5"
    layout.make_golden_capture(path)
    assert layout.describe(path) == (GOLDEN / "capture_layout.txt").read_text()
    assert layout.tensor_names(path) == (GOLDEN / "tensor_names.txt").read_text()


def test_statistics_match_the_stored_tensors(llama_capture: Path) -> None:
    with open_capture(llama_capture) as cap:
        for info in cap.tensor_infos():
            values = cap.tensor(info.name).astype(np.float64)
            finite = values[np.isfinite(values)]
            assert info.stats["nan_count"] == 0 and info.stats["inf_count"] == 0
            assert info.stats["min"] == finite.min() and info.stats["max"] == finite.max()
            np.testing.assert_allclose(info.stats["mean"], finite.mean(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(info.stats["std"], finite.std(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(info.stats["l2"], np.linalg.norm(finite), rtol=1e-9)


def test_manifest_logprobs_and_generation(llama_capture: Path) -> None:
    with open_capture(llama_capture) as cap:
        manifest = cap.manifest
        assert manifest.model.layers_path == "model.layers" and manifest.model.num_layers == 4
        assert manifest.dtype == "float32" and manifest.device["type"] == "cpu"
        assert manifest.input.num_tokens == len(cap.input_ids)
        assert "dtype" not in manifest.model.config
        logprobs = cap.prompt_logprobs
        generation = cap.generation
        assert logprobs is not None and generation is not None
        assert logprobs.ids.shape == (len(cap.input_ids), 20)
        # Top-k logprobs are sorted, and step 0 of the generation is the prompt's last-position top-1.
        assert np.all(np.diff(logprobs.logprobs, axis=1) <= 0)
        assert generation.ids[0] == logprobs.ids[-1, 0]
        np.testing.assert_allclose(
            generation.margin, generation.topk.logprobs[:, 0] - generation.topk.logprobs[:, 1]
        )


@pytest.mark.parametrize("arch", sorted(TINY_ARCHS))
def test_every_tiny_architecture_captures(tmp_path: Path, arch: str) -> None:
    result = capture(f"tiny:{arch}", tmp_path / "a.h5", CaptureInput(prompt="Hi there"), CPU)
    with open_capture(result.path) as cap:
        names = cap.tensor_names()
        assert cap.complete and f"model.layers.{cap.manifest.model.num_layers - 1}" in names
        assert len(cap.generation.ids) == 2  # type: ignore[union-attr]


def test_directory_model_summary_bf16_and_filters(tmp_path: Path, tiny_dir) -> None:  # type: ignore[no-untyped-def]
    options = CaptureOptions(
        device="cpu",
        dtype="bfloat16",
        summary=True,
        include=("layers\\.1\\.",),
        exclude=("rotary",),
        max_new_tokens=1,
    )
    result = capture(str(tiny_dir("llama")), tmp_path / "s.h5", CaptureInput(prompt="Hi"), options)
    with open_capture(result.path) as cap:
        infos = cap.tensor_infos()
        assert infos and all(".layers.1." in i.name or i.name == "model.layers.1" for i in infos)
        assert all(not i.stored and i.dtype == "BF16" and i.stats["l2"] > 0 for i in infos)
        assert cap.manifest.dtype == "bfloat16"


def test_same_weights_hash_for_directory_in_any_dtype(tmp_path: Path, tiny_dir) -> None:  # type: ignore[no-untyped-def]
    model = str(tiny_dir("qwen3"))
    a = capture(model, tmp_path / "a.h5", CaptureInput(input_ids=(5, 6, 7)), CPU)
    b = capture(
        model,
        tmp_path / "b.h5",
        CaptureInput(input_ids=(5, 6, 7)),
        CaptureOptions(device="cpu", dtype="float16", max_new_tokens=0),
    )
    with open_capture(a.path) as ca, open_capture(b.path) as cb:
        assert ca.manifest.model.weights_sha256 == cb.manifest.model.weights_sha256
        assert ca.manifest.model.config == cb.manifest.model.config
        assert cb.generation is None


def test_tokens_from_reuses_exact_ids_and_text(tmp_path: Path, llama_capture: Path) -> None:
    result = capture("tiny:llama", tmp_path / "b.h5", CaptureInput(tokens_from=str(llama_capture)), CPU)
    with open_capture(llama_capture) as ref:
        assert result.input_ids == ref.input_ids and result.input_text == ref.input_text


def test_save_inputs_records_module_inputs(tmp_path: Path) -> None:
    options = CaptureOptions(
        device="cpu", save_inputs=True, include=("layers\\.0\\.mlp\\.down_proj$",), max_new_tokens=0
    )
    capture("tiny:llama", tmp_path / "i.h5", CaptureInput(input_ids=(1, 2)), options)
    with open_capture(tmp_path / "i.h5") as cap:
        assert cap.tensor_names() == ["model.layers.0.mlp.down_proj:input[0]", "model.layers.0.mlp.down_proj"]
        assert cap.info("model.layers.0.mlp.down_proj:input[0]").role == "input"


def test_deterministic_switches_are_restored(tmp_path: Path) -> None:
    before = determinism_state()
    capture(
        "tiny:llama",
        tmp_path / "d.h5",
        CaptureInput(input_ids=(1, 2)),
        CaptureOptions(device="cpu", deterministic=True, max_new_tokens=0),
    )
    with open_capture(tmp_path / "d.h5") as cap:
        recorded = cap.manifest.determinism
    assert recorded["deterministic"] is True and recorded["cublas_workspace_config"] == ":4096:8"
    assert recorded["allow_tf32_matmul"] is False
    assert determinism_state() == before


@pytest.mark.parametrize(
    "inputs, message",
    [
        (
            CaptureInput(),
            "give exactly one input among --prompt, --prompt-file, --messages, --input-ids, "
            "--tokens-from; none was given",
        ),
        (
            CaptureInput(prompt="a", input_ids=(1,)),
            "give exactly one input among --prompt, --prompt-file, "
            "--messages, --input-ids, --tokens-from; got --prompt, --input-ids",
        ),
        (
            CaptureInput(input_ids=(1, 100000)),
            "token id 100000 is outside the model's vocabulary (size 278); "
            "check --input-ids, or that --tokens-from came from the same model",
        ),
        (CaptureInput(prompt=""), "the input from --prompt is empty: nothing to run the model on"),
    ],
)
def test_bad_inputs(tmp_path: Path, inputs: CaptureInput, message: str) -> None:
    with pytest.raises(InputError) as info:
        capture("tiny:llama", tmp_path / "x.h5", inputs, CPU)
    assert str(info.value) == message
    assert not (tmp_path / "x.h5").exists()


def test_failed_forward_keeps_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from precdiff.capture import hooks
    from precdiff.errors import CaptureError

    real_attach = hooks.attach
    calls = {"n": 0}

    def failing_sink_attach(model, keep, sink, save_inputs=False):  # type: ignore[no-untyped-def]
        def sink_then_fail(name: str, module: str, role: str, tensor: torch.Tensor) -> None:
            calls["n"] += 1
            if calls["n"] == 10:
                raise RuntimeError("CUDA out of memory (simulated)")
            sink(name, module, role, tensor)

        return real_attach(model, keep, sink_then_fail, save_inputs=save_inputs)

    from precdiff.capture import runner

    monkeypatch.setattr(runner, "attach", failing_sink_attach)
    with pytest.raises(CaptureError) as info:
        capture("tiny:llama", tmp_path / "f.h5", CaptureInput(input_ids=(1, 2)), CPU)
    partial = Path(str(tmp_path / "f.h5") + ".partial")
    assert str(info.value) == (
        "the device ran out of memory (CUDA out of memory (simulated)); lower --max-new-tokens / "
        "max_new_tokens= or the prompt length, or pass --summary / summary=True; the tensors captured "
        f"before the failure are in {partial}"
    )
    with open_capture(partial) as cap:
        assert not cap.complete and len(cap.tensor_names()) == 9


def test_messages_render_through_templates_and_capture_is_a_tokens_side(tmp_path: Path, tiny_dir) -> None:  # type: ignore[no-untyped-def]
    import json

    from precdiff.templates import diff_conversation

    model = tiny_dir("qwen3")
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "Is 0.1 + 0.2 == 0.3?"}]))
    result = capture(
        str(model),
        tmp_path / "m.h5",
        CaptureInput(messages=str(chat), template_kwargs={"enable_thinking": False}),
        CPU,
    )
    assert result.input_text is not None and result.input_text.endswith("<think>\n\n</think>\n\n")
    with open_capture(result.path) as cap:
        assert cap.input_text == result.input_text
        assert cap.manifest.input.source == "messages"
        assert len(cap.manifest.tokenizer.chat_template_sha256) == 64
    same = diff_conversation(
        str(chat), str(model), str(result.path), b_kwargs={}, a_kwargs={"enable_thinking": False}
    )
    assert same.identical, same.to_dict()["verdict"]
    thinking = diff_conversation(str(chat), str(model), str(result.path))
    assert not thinking.identical


def test_batch_invariant_kernels_are_recorded_and_restored(tmp_path: Path) -> None:
    from precdiff.kernels import ATTENTION_IMPLEMENTATION

    before = determinism_state()
    capture(
        "tiny:llama",
        tmp_path / "bi.h5",
        CaptureInput(input_ids=(1, 2, 3)),
        CaptureOptions(device="cpu", kernels="batch-invariant", max_new_tokens=2),
    )
    with open_capture(tmp_path / "bi.h5") as cap:
        manifest = cap.manifest
    assert manifest.kernels == "batch-invariant"
    assert manifest.attn_implementation == ATTENTION_IMPLEMENTATION
    assert manifest.kernel_settings["backend"] == "torch" and manifest.kernel_settings["ops_overridden"]
    assert determinism_state() == before
    with pytest.raises(InputError) as info:
        capture(
            "tiny:llama",
            tmp_path / "x.h5",
            CaptureInput(input_ids=(1,)),
            CaptureOptions(device="cpu", kernels="batch-invariant", attn_implementation="eager"),
        )
    assert str(info.value) == (
        "--kernels batch-invariant uses its own attention (precdiff_batch_invariant); drop --attn-impl eager"
    )


def test_low_precision_keeps_float32_buffers_like_transformers(tiny_dir) -> None:  # type: ignore[no-untyped-def]
    import transformers

    from precdiff.capture.models import load_model

    stock = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_dir("llama")), dtype=torch.bfloat16)
    expected = {name: b.dtype for name, b in stock.named_buffers()}
    for source in (str(tiny_dir("llama")), "tiny:llama"):
        loaded = load_model(source, dtype=torch.bfloat16, device=torch.device("cpu"))
        assert {name: b.dtype for name, b in loaded.model.named_buffers()} == expected
        assert expected["model.rotary_emb.inv_freq"] == torch.float32
        assert all(p.dtype == torch.bfloat16 for p in loaded.model.parameters())


def test_bad_attention_implementation_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^--attn-impl 'bogus' cannot be used: "):
        capture(
            "tiny:llama",
            tmp_path / "x.h5",
            CaptureInput(input_ids=(1,)),
            CaptureOptions(device="cpu", attn_implementation="bogus"),
        )


def test_include_matching_nothing_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        capture(
            "tiny:llama",
            tmp_path / "x.h5",
            CaptureInput(input_ids=(1,)),
            CaptureOptions(device="cpu", include=("nomatch",)),
        )
    assert str(info.value) == (
        "--include / --exclude selected no module of the model; `precdiff capture` "
        "needs at least one (module names look like model.layers.0.mlp.down_proj)"
    )


def test_unsupported_tensors_are_recorded_not_fatal(tmp_path: Path) -> None:
    from precdiff.capture.sink import TensorSink
    from precdiff.store import CaptureWriter

    with CaptureWriter(tmp_path / "s.h5") as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cpu"))
        sink("rope.freqs_cis", "rope", "output", torch.polar(torch.ones(4), torch.zeros(4)))
        sink("x", "x", "output", torch.ones(2))
        sink.flush()  # full tensors are written on a background thread: flush before finish
        writer.finish()
    with open_capture(tmp_path / "s.h5") as cap:
        assert cap.tensor_names() == ["x"]
        assert cap.skipped == [
            {"name": "rope.freqs_cis", "reason": "dtype complex64 has no storage code in the format"}
        ]


def test_bug_in_forward_is_not_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RuntimeError that is not a device condition is a bug: it keeps its type (exit 3 in the CLI)."""
    from precdiff.capture import hooks, runner

    real_attach = hooks.attach

    def failing_attach(model, keep, sink, save_inputs=False):  # type: ignore[no-untyped-def]
        def fail(name: str, module: str, role: str, tensor: torch.Tensor) -> None:
            raise RuntimeError("")  # an empty message must not break the error path either

        return real_attach(model, keep, fail, save_inputs=save_inputs)

    monkeypatch.setattr(runner, "attach", failing_attach)
    with pytest.raises(RuntimeError) as info:
        capture("tiny:llama", tmp_path / "f.h5", CaptureInput(input_ids=(1, 2)), CPU)
    assert type(info.value) is RuntimeError
    assert Path(str(tmp_path / "f.h5") + ".partial").exists()


def test_summary_rows_written_during_the_forward_equal_rows_written_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink writes summary rows as soon as their summaries reach the host; the file must be the
    same as when every row is written at the end of the forward."""
    import h5py

    from precdiff.capture import sink as sink_module
    from precdiff.store import format as fmt

    def index_and_sketches(path: Path) -> tuple[object, ...]:
        with h5py.File(path, "r") as handle:
            index = handle[fmt.TENSOR_INDEX][()]
            return (
                [index[field].tolist() for field in index.dtype.names],
                handle[fmt.SKETCHES][()].tobytes(),
                handle[fmt.SKETCH_CHECKSUMS][()].tolist(),
            )

    options = CaptureOptions(summary=True, max_new_tokens=0)
    early = capture("tiny:llama", tmp_path / "early.h5", CaptureInput(input_ids=list(range(5, 30))), options)
    poll_every = sink_module._POLL_EVERY
    monkeypatch.setattr(sink_module, "_POLL_EVERY", 1 << 30)
    late = capture("tiny:llama", tmp_path / "late.h5", CaptureInput(input_ids=list(range(5, 30))), options)
    assert early.tensor_count == late.tensor_count > 2 * poll_every  # rows were written early
    assert index_and_sketches(early.path) == index_and_sketches(late.path)
