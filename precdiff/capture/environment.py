"""The run's environment: determinism switches (applied and restored) and the manifest.

Everything that can change numerics is recorded, whether or not precdiff changed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import h5py
import numpy as np
import torch
import transformers

from precdiff._version import __version__
from precdiff.capture.models import LoadedModel
from precdiff.config import CaptureOptions
from precdiff.devices import backend_versions, device_facts
from precdiff.errors import TemplateError
from precdiff.store.format import FORMAT_VERSION
from precdiff.store.manifest import (
    RUN_CONFIG_KEYS,
    CaptureSettings,
    HostFacts,
    InputFacts,
    Manifest,
    ModelFacts,
    TokenizerFacts,
)
from precdiff.templates.render import resolve_template, tokenizer_info
from precdiff.templates.render import template_sha256 as template_sha256_of

CUBLAS_WORKSPACE = ":4096:8"


def _new_tf32_api() -> bool:
    """torch ≥ 2.9 sets TF32 through ``fp32_precision``; mixing it with the legacy ``allow_tf32`` flags
    makes the legacy getters raise, so only one API is ever used, the new one when it exists."""
    return hasattr(torch.backends.cuda.matmul, "fp32_precision")


# (name in the manifest, owner object, attribute) of the new-API switches.
def _precision_switches() -> list[tuple[str, Any, str]]:
    b: Any = torch.backends  # the cudnn.conv / cudnn.rnn namespaces are added at run time
    return [
        ("matmul", b.cuda.matmul, "fp32_precision"),
        ("cudnn_conv", b.cudnn.conv, "fp32_precision"),
        ("cudnn_rnn", b.cudnn.rnn, "fp32_precision"),
    ]


def determinism_state() -> dict[str, Any]:
    """The global switches that decide whether kernels are deterministic and whether fp32 is TF32."""
    state: dict[str, Any] = {
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if _new_tf32_api():
        precision = {name: str(getattr(owner, attr)) for name, owner, attr in _precision_switches()}
        state["fp32_precision"] = precision
        state["allow_tf32_matmul"] = precision["matmul"] == "tf32" or (
            precision["matmul"] == "none" and state["float32_matmul_precision"] != "highest"
        )
        state["allow_tf32_cudnn"] = precision["cudnn_conv"] == "tf32"
    else:
        state["allow_tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        state["allow_tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
    return state


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms, cuBLAS workspace, TF32 off; every switch restored on exit."""
    if not enabled:
        yield
        return
    saved = determinism_state()
    saved_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    saved_precision = (
        [(owner, attr, getattr(owner, attr)) for _, owner, attr in _precision_switches()]
        if _new_tf32_api()
        else []
    )
    try:
        # cuBLAS reads this when its handle is created; set before the first CUDA matmul.
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
        torch.use_deterministic_algorithms(True)
        if saved_precision:
            for owner, attr, _ in saved_precision:
                setattr(owner, attr, "ieee")
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.set_float32_matmul_precision("highest")
        yield
    finally:
        torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved_warn_only)
        if saved["cublas_workspace_config"] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved["cublas_workspace_config"]
        # First: in torch ≥ 2.9 it also writes matmul.fp32_precision, which the next lines restore.
        torch.set_float32_matmul_precision(saved["float32_matmul_precision"])
        if saved_precision:
            for owner, attr, value in saved_precision:
                setattr(owner, attr, value)
        else:
            torch.backends.cuda.matmul.allow_tf32 = saved["allow_tf32_matmul"]
            torch.backends.cudnn.allow_tf32 = saved["allow_tf32_cudnn"]
        torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]


def sha256_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_ids(ids: list[int]) -> str:
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()


def tokenizer_facts(tokenizer: Any, template_sha256: str | None) -> TokenizerFacts | None:
    """What identifies a tokenizer (its full serialised state) and the template that rendered the input.

    The tokenizer hash is the one ``precdiff tokens`` reports (templates.render.tokenizer_info), so the
    two never disagree about whether two tokenizers are the same.
    """
    if tokenizer is None:
        return None
    info = tokenizer_info(tokenizer, source="")
    if template_sha256 is None and getattr(tokenizer, "chat_template", None):
        # The template ``precdiff tokens`` would render with (named templates: "default"), hashed alike.
        with contextlib.suppress(TemplateError):
            template_sha256 = template_sha256_of(resolve_template(tokenizer))
    return TokenizerFacts(
        class_name=info.class_name,
        sha256=info.sha256,
        chat_template_sha256=template_sha256,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        bos_token_id=info.bos_token_id,
        eos_token_id=info.eos_token_id,
    )


def architecture_config(config: Any) -> dict[str, Any]:
    """The model config as a JSON-able dict, without the entries that only say how it was run."""
    values: dict[str, Any] = json.loads(config.to_json_string(use_diff=False))
    return {key: value for key, value in sorted(values.items()) if key not in RUN_CONFIG_KEYS}


def build_manifest(
    loaded: LoadedModel,
    options: CaptureOptions,
    device: torch.device,
    *,
    input_source: str,
    input_ids: list[int],
    kernel_settings: dict[str, Any] | None,
    template_sha256: str | None,
) -> Manifest:
    """The environment manifest stored in every capture (see docs/format.md)."""
    config = loaded.model.config
    return Manifest(
        precdiff_version=__version__,
        format_version=FORMAT_VERSION,
        command_line=tuple(options.command_line or sys.argv),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        host=HostFacts(
            hostname=socket.gethostname(), platform=platform.platform(), python=platform.python_version()
        ),
        device=device_facts(device),
        versions={
            **backend_versions(),
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "h5py": h5py.__version__,
        },
        dtype=str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        attn_implementation=getattr(config, "_attn_implementation", None),
        kernels=options.kernels,
        kernel_settings=kernel_settings,
        determinism=determinism_state(),
        seed=options.seed,
        model=ModelFacts(
            source=loaded.source,
            architecture=type(loaded.model).__name__,
            model_type=getattr(config, "model_type", None),
            config=architecture_config(config),
            weights_sha256=loaded.weights_sha256,
            num_parameters=sum(p.numel() for p in loaded.model.parameters()),
            layers_path=loaded.layers_path,
            num_layers=loaded.num_layers,
            gguf_sha256=loaded.gguf_sha256,
            gguf_quantization=loaded.gguf_quantization,
        ),
        tokenizer=tokenizer_facts(loaded.tokenizer, template_sha256),
        input=InputFacts(source=input_source, num_tokens=len(input_ids), ids_sha256=sha256_ids(input_ids)),
        capture=CaptureSettings(
            summary=options.summary or bool(options.focus),
            focus=tuple(options.focus),
            save_inputs=options.save_inputs,
            level=options.level,
            all_ops=options.all_ops,
            include=tuple(options.include),
            exclude=tuple(options.exclude),
            top_k=options.top_k,
            max_new_tokens=options.max_new_tokens,
            compression=options.compression,
        ),
    )
