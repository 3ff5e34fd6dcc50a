"""Built-in tiny models (``tiny:<arch>``): seeded, identical on every machine, no download.

Each is a real transformers architecture built from its config with small sizes, paired with an
offline byte-level tokenizer and a chat template of that model family's shape. Weights come from
precdiff's own seeded generator (one ``torch.Generator`` per parameter, keyed by seed and name), not
from transformers' initialisers, so they do not change with the transformers version either.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from torch import nn

from precdiff.errors import InputError

# Special tokens shared by every tiny tokenizer; ids follow the 256 byte tokens.
SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|im_start|>",
    "<|im_end|>",
    "<bos>",
    "<eos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|end|>",
    "<think>",
    "</think>",
    "<pad>",
)

LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
MISTRAL_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported') }}{%- endif %}{%- endfor %}"
)
GEMMA_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)
PHI3_TEMPLATE = (
    "{%- for message in messages %}{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- else %}{{- eos_token }}{%- endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """How to build one tiny architecture."""

    config_class: str
    template: str
    bos: str | None  # token the tokenizer prepends (None: adds nothing)
    eos: str
    overrides: dict[str, Any] = field(default_factory=dict)


_BASE: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    rms_norm_eps=1e-6,
)
_MOE: dict[str, Any] = dict(
    num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, decoder_sparse_step=1
)

TINY_ARCHS: dict[str, TinySpec] = {
    "llama": TinySpec("LlamaConfig", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>"),
    "mistral": TinySpec("MistralConfig", MISTRAL_TEMPLATE, "<s>", "</s>"),
    "qwen2": TinySpec("Qwen2Config", CHATML_TEMPLATE, None, "<|im_end|>"),
    "qwen3": TinySpec("Qwen3Config", QWEN3_TEMPLATE, None, "<|im_end|>", dict(head_dim=16)),
    "gemma2": TinySpec(
        "Gemma2Config",
        GEMMA_TEMPLATE,
        "<bos>",
        "<end_of_turn>",
        dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=64),
    ),
    "gemma3": TinySpec(
        "Gemma3TextConfig",
        GEMMA_TEMPLATE,
        "<bos>",
        "<end_of_turn>",
        dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=64),
    ),
    "phi3": TinySpec("Phi3Config", PHI3_TEMPLATE, None, "<|end|>"),
    "qwen2_moe": TinySpec(
        "Qwen2MoeConfig", CHATML_TEMPLATE, None, "<|im_end|>", dict(_MOE, shared_expert_intermediate_size=64)
    ),
    "qwen3_moe": TinySpec("Qwen3MoeConfig", QWEN3_TEMPLATE, None, "<|im_end|>", dict(_MOE, head_dim=16)),
    "mixtral": TinySpec(
        "MixtralConfig",
        LLAMA3_TEMPLATE,
        "<|begin_of_text|>",
        "<|eot_id|>",
        dict(num_local_experts=4, num_experts_per_tok=2),
    ),
}

DEFAULT_SEED = 0
WEIGHT_STD = 0.02


def build_tokenizer(arch: str) -> transformers.PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens + the special tokens) with ``arch``'s chat template."""
    spec = _spec(arch)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    if spec.bos is not None:
        bos_id = tokenizer.token_to_id(spec.bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token="<pad>",
        unk_token=None,
        chat_template=spec.template,
    )
    return fast


def vocab_size() -> int:
    """Size of every tiny tokenizer's vocabulary (the models' ``vocab_size`` by default)."""
    return 256 + len(SPECIAL_TOKENS)


def build_config(arch: str, overrides: dict[str, Any] | None = None) -> transformers.PretrainedConfig:
    """The config of ``tiny:<arch>``, with user ``overrides`` (e.g. ``hidden_size=2048``) applied last."""
    spec = _spec(arch)
    tokenizer_ids = {token: 256 + i for i, token in enumerate(SPECIAL_TOKENS)}
    values: dict[str, Any] = dict(_BASE, **spec.overrides)
    values.update(
        vocab_size=vocab_size(),
        pad_token_id=tokenizer_ids["<pad>"],
        eos_token_id=tokenizer_ids[spec.eos],
        bos_token_id=tokenizer_ids[spec.bos] if spec.bos else None,
    )
    values.update(overrides or {})
    config_class = getattr(transformers, spec.config_class)
    config: transformers.PretrainedConfig = config_class(**values)
    return config


def seeded_init(model: nn.Module, seed: int) -> None:
    """Fill every parameter from a generator keyed by (seed, parameter name): machine independent.

    Matrices ~ N(0, 0.02²); vectors named like biases ~ N(0, 0.02²); other vectors (norm weights)
    ~ 1 + N(0, 0.02²), so that a perturbed norm is visible and gemma-style (1 + w) norms stay sane.
    """
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            values = torch.randn(parameter.shape, generator=generator, dtype=torch.float32) * WEIGHT_STD
            if parameter.ndim == 1 and not name.endswith("bias"):
                values += 1.0
            parameter.copy_(values.to(parameter.dtype))


def build_model(
    arch: str, *, seed: int = DEFAULT_SEED, overrides: dict[str, Any] | None = None
) -> transformers.PreTrainedModel:
    """The float32 CPU model of ``tiny:<arch>``, with seeded weights."""
    config = build_config(arch, overrides)
    model: transformers.PreTrainedModel = transformers.AutoModelForCausalLM.from_config(
        config, dtype=torch.float32
    )
    seeded_init(model, seed)
    model.eval()
    return model


def _spec(arch: str) -> TinySpec:
    try:
        return TINY_ARCHS[arch]
    except KeyError:
        raise InputError(
            f"unknown tiny architecture {arch!r}; choose one of: {', '.join(TINY_ARCHS)}"
        ) from None
