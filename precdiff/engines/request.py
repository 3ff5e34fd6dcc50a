"""The request body that makes an engine's answer comparable with a precdiff capture.

Comparable means: the engine sees precdiff's exact token ids (rendered with the model's chat
template, so no server-side template can differ), decodes greedily (temperature 0, a fixed seed,
no penalties) and returns logprobs with top-k candidates for the prompt where the engine can, and
for every generated token. Each engine's own flag names are from its API documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precdiff.config import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SEED
from precdiff.errors import InputError

ENGINES = ("vllm", "sglang", "llamacpp", "openai")
# OpenAI's legacy completions API returns at most 5 candidates per position.
OPENAI_MAX_LOGPROBS = 5
DEFAULT_ENGINE_TOP_K = 5


@dataclass(frozen=True)
class EngineRequest:
    """Where to send it and what: ``route`` (path on the engine's server) and the JSON ``body``."""

    engine: str
    route: str
    body: dict[str, Any]
    token_ids: tuple[int, ...]
    text: str
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "route": self.route, "body": self.body, "notes": list(self.notes)}


def _body(
    engine: str, ids: list[int], steps: int, k: int, seed: int, model: str
) -> tuple[str, dict[str, Any]]:
    if engine == "vllm":
        return "/v1/completions", {
            "model": model,
            "prompt": ids,
            "max_tokens": steps,
            "temperature": 0.0,
            "seed": seed,
            "logprobs": k,
            "prompt_logprobs": k,
            "return_tokens_as_token_ids": True,
            "return_token_ids": True,
            "skip_special_tokens": False,
            "ignore_eos": True,
        }
    if engine == "sglang":
        return "/generate", {
            "input_ids": ids,
            "sampling_params": {"temperature": 0.0, "max_new_tokens": steps, "ignore_eos": True},
            "return_logprob": True,
            "logprob_start_len": 0,
            "top_logprobs_num": k,
            "return_text_in_logprobs": True,
        }
    if engine == "llamacpp":
        return "/completion", {
            "prompt": ids,
            "n_predict": steps,
            "temperature": 0.0,
            "seed": seed,
            "n_probs": k,
            "post_sampling_probs": False,
            "cache_prompt": False,
        }
    return "/v1/completions", {
        "model": model,
        "prompt": ids,
        "max_tokens": steps,
        "temperature": 0.0,
        "seed": seed,
        "logprobs": min(k, OPENAI_MAX_LOGPROBS),
        "echo": True,
    }


_NOTES = {
    "llamacpp": (
        "llama.cpp /completion returns no prompt logprobs: compare covers the generated tokens; no "
        "ignore_eos: llama.cpp implements it as a -inf logit bias on the end-of-generation tokens, which "
        "changes the greedy token wherever EOS wins (the engine stops there instead)"
    ),
    "openai": f"OpenAI's legacy API returns at most {OPENAI_MAX_LOGPROBS} candidates per position",
}


def engine_request(
    model: str,
    *,
    messages: str,
    engine: str,
    max_new_tokens: int | None = None,
    top_k: int | None = None,
    seed: int | None = None,
    served_name: str | None = None,
) -> EngineRequest:
    """Render ``messages`` with ``model``'s tokenizer and build ``engine``'s greedy logprob request.

    Args:
        model: a local model or tokenizer directory, or a GGUF file (its embedded tokenizer and template).
        messages: path of an OpenAI-style message list (JSON).
        engine: ``vllm``, ``sglang``, ``llamacpp`` or ``openai``.
        max_new_tokens: tokens to generate (default: precdiff capture's default).
        top_k: candidates per position (default 5).
        seed: sampling seed (default 0; greedy decoding does not use it, some engines require it).
        served_name: the ``model`` field for OpenAI-style servers (default: ``model``).

    Returns:
        An :class:`EngineRequest`.

    Raises:
        InputError: unknown engine or invalid counts.
        TemplateError: the messages or the model's tokenizer/template cannot be used.

    Example:
        >>> engine_request("SmolLM2/", messages="chat.json", engine="vllm").route  # doctest: +SKIP
        '/v1/completions'
    """
    from precdiff.templates import load_messages, render_conversation
    from precdiff.templates.sides import load_gguf, load_tokenizer

    if engine not in ENGINES:
        raise InputError(f"--engine / engine= must be one of {', '.join(ENGINES)}, got {engine!r}")
    steps = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
    k = DEFAULT_ENGINE_TOP_K if top_k is None else top_k
    if steps < 1 or k < 2:
        raise InputError(
            f"--max-new-tokens / max_new_tokens must be ≥ 1 and --top-k / top_k ≥ 2 (a margin needs two "
            f"candidates), got {steps} and {k}"
        )
    chat_template = None
    if Path(model).is_file() and Path(model).suffix.lower() == ".gguf":  # its embedded tokenizer and template
        tokenizer, templates = load_gguf(model)
        chat_template = templates.get("default")
    else:
        tokenizer = load_tokenizer(model)
    rendering = render_conversation(
        tokenizer, load_messages(messages), add_generation_prompt=True, chat_template=chat_template
    )
    ids = list(rendering.token_ids)
    route, body = _body(engine, ids, steps, k, DEFAULT_SEED if seed is None else seed, served_name or model)
    notes = (_NOTES[engine],) if engine in _NOTES else ()
    return EngineRequest(engine, route, body, tuple(ids), rendering.text, notes)
