"""Parsers of each engine's documented response schema into :class:`EngineResponse`.

Sources of the schemas (and of the test fixtures built from them, ``tests/fixtures/engines/``):

- ``openai-completion``: OpenAI legacy ``/v1/completions`` (``choices[0].logprobs`` with ``tokens``,
  ``token_logprobs``, ``top_logprobs``; ``echo`` puts the prompt first, its first entry null). vLLM
  adds ``prompt_logprobs`` (a list of ``{id: {logprob, rank, decoded_token}}``), ``prompt_token_ids``
  and ``token_ids`` (``return_token_ids``), and ``token_id:N`` strings (``return_tokens_as_token_ids``).
- ``openai-chat``: ``/v1/chat/completions`` ``choices[0].logprobs.content[]`` of
  ``{token, logprob, bytes, top_logprobs[]}``; generated tokens only (vLLM may add prompt fields).
- ``sglang``: SGLang native ``/generate`` with ``return_logprob``: ``meta_info.input_token_logprobs``
  / ``output_token_logprobs`` as ``[logprob, id, text]`` and ``*_top_logprobs`` lists of those.
- ``llamacpp``: llama.cpp server ``/completion`` with ``n_probs``: ``completion_probabilities[]`` of
  ``{id, token, bytes, logprob, top_logprobs[]}`` (server README, builds since the logprob rework).
- ``tgi``: Text Generation Inference ``/generate`` with ``details``: ``details.prefill[]``
  (``decoder_input_details``), ``details.tokens[]`` and ``details.top_tokens[][]`` (``top_n_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from precdiff.engines.records import EngineResponse, Reader, Step, Token
from precdiff.errors import EngineResponseError

# The request settings each format needs for precdiff to compare it (quoted in error messages).
REQUEST_FLAGS: dict[str, str] = {
    "openai-completion": '"logprobs": 5 and "echo": true (vLLM: "prompt_logprobs": 5, "return_token_ids": true)',
    "openai-chat": '"logprobs": true, "top_logprobs": 5',
    "sglang": '"return_logprob": true, "top_logprobs_num": 5, "logprob_start_len": 0',
    "llamacpp": '"n_probs": 5 (and "post_sampling_probs": false)',
    "tgi": '"details": true, "decoder_input_details": true, "top_n_tokens": 5',
}


def _openai_top(r: Reader, value: Any, field: str, own: str) -> tuple[Token, ...]:
    """A legacy ``{token: logprob}`` map (null at the first echoed position) as tokens, best first.

    The API adds the position's own token (``own``) when it is not among the top ``logprobs``
    ("up to logprobs + 1 elements"). Such an entry is not a top-k candidate and would make the k-th
    probability look tiny, so the own token is dropped when it ranks last: what remains is a true
    top-k (or top-(k-1)) prefix.
    """
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise r.fail(field, f"should be an object of token -> logprob, got {type(value).__name__}")
    tokens = []
    for text, logprob in value.items():
        if not isinstance(logprob, (int, float)) or isinstance(logprob, bool):
            raise r.fail(f"{field}[{text!r}]", f"should be a number, got {type(logprob).__name__}")
        tokens.append(Token(text, None, None, float(logprob)))
    ranked = sorted(tokens, key=lambda t: -(t.logprob or 0.0))
    if len(ranked) > 1 and ranked[-1].text == own:
        ranked.pop()
    return tuple(ranked)


def _vllm_prompt(r: Reader, holder: Mapping[str, Any], field: str) -> tuple[tuple[Step, ...] | None, Any]:
    """vLLM's ``prompt_logprobs`` + ``prompt_token_ids`` (either in the choice or at the top level)."""
    entries = r.optional(holder, "prompt_logprobs", f"{field}.prompt_logprobs", list)
    if entries is None:
        entries = r.optional(r.record, "prompt_logprobs", "prompt_logprobs", list)
    ids = r.optional(holder, "prompt_token_ids", f"{field}.prompt_token_ids", list)
    if ids is None:
        ids = r.optional(r.record, "prompt_token_ids", "prompt_token_ids", list)
    if entries is None:
        return None, ids
    if ids is None or len(ids) != len(entries):
        raise r.fail(
            "prompt_token_ids",
            'is needed beside prompt_logprobs with one id per entry (vLLM: send "return_token_ids": true)',
        )
    steps = []
    for position, (token_id, entry) in enumerate(zip(ids, entries)):
        where = f"prompt_logprobs[{position}]"
        if entry is None:
            steps.append(Step(Token(None, int(token_id), None, None), ()))
            continue
        if not isinstance(entry, Mapping):
            raise r.fail(where, f"should be an object of id -> logprob, got {type(entry).__name__}")
        top = []
        for key, item in entry.items():
            if not str(key).isdigit():
                raise r.fail(f"{where}[{key!r}]", "should be keyed by a token id")
            text = item.get("decoded_token") if isinstance(item, Mapping) else None
            top.append(Token(text, int(key), None, r.logprob(item, f"{where}[{key!r}]")))
        own = next((t.logprob for t in top if t.token_id == int(token_id)), None)
        steps.append(
            Step(Token(None, int(token_id), None, own), tuple(sorted(top, key=lambda t: -(t.logprob or 0.0))))
        )
    return tuple(steps), ids


def _single_choice(r: Reader) -> Mapping[str, Any]:
    choices = r.get(r.record, "choices", "choices", list)
    if len(choices) != 1:
        raise r.fail("choices", f'holds {len(choices)} choices; precdiff compares one: send "n": 1')
    choice: Mapping[str, Any] = r.get(choices, 0, "choices[0]", dict)
    return choice


def _best(step: Step) -> str | None:
    return step.top[0].text if step.top else None


def _realign_shifted_echo(
    steps: list[Step], n_prompt: int, source: str
) -> tuple[list[Step], tuple[str, ...]]:
    """Undo a one-position shift of echoed logprobs, when the greedy tokens prove it.

    llama-cpp-python (0.3.x) pairs the logits *at* position i (the distribution of token i+1) with
    token i when it echoes a prompt that starts without BOS. Under greedy decoding each generated
    token is the best candidate of its own distribution; when every generated token is instead the
    best of the *previous* position's candidates (and not of its own), the candidates are moved one
    position later and the chosen tokens' logprobs are read from them.
    """
    generated = range(max(n_prompt, 1), len(steps))
    if len(generated) < 2 or any(not steps[i].top or not steps[i - 1].top for i in generated):
        return steps, ()
    previous_best = all(_best(steps[i - 1]) == steps[i].token.text for i in generated)
    own_best = all(_best(steps[i]) == steps[i].token.text for i in generated)
    if not previous_best or own_best:
        return steps, ()
    moved = [Step(Token(steps[0].token.text, steps[0].token.token_id, steps[0].token.raw, None), ())]
    for i in range(1, len(steps)):
        top = steps[i - 1].top
        own = next((t.logprob for t in top if t.text == steps[i].token.text), None)
        token = steps[i].token
        moved.append(Step(Token(token.text, token.token_id, token.raw, own), top))
    note = (
        f"{source}: the echoed logprobs were shifted by one position (each greedy token was the best "
        "candidate of the position before it, a known llama-cpp-python echo bug for prompts without "
        "BOS); precdiff moved the candidates one position later (those after the last token are dropped)"
    )
    return moved, (note,)


def parse_openai_completion(r: Reader) -> EngineResponse:
    choice = _single_choice(r)
    logprobs = r.optional(choice, "logprobs", "choices[0].logprobs", dict)
    prompt, prompt_ids = _vllm_prompt(r, choice, "choices[0]")
    if logprobs is None:
        raise r.fail("choices[0].logprobs", f"is null; request {REQUEST_FLAGS['openai-completion']}")
    tokens = r.get(logprobs, "tokens", "choices[0].logprobs.tokens", list)
    values = r.get(logprobs, "token_logprobs", "choices[0].logprobs.token_logprobs", list)
    tops = r.get(logprobs, "top_logprobs", "choices[0].logprobs.top_logprobs", list)
    if not len(tokens) == len(values) == len(tops):
        raise r.fail(
            "choices[0].logprobs",
            f"has {len(tokens)} tokens, {len(values)} token_logprobs and {len(tops)} top_logprobs (truncated?)",
        )
    usage = r.get(r.record, "usage", "usage", dict)
    n_generated = r.get(usage, "completion_tokens", "usage.completion_tokens", int)
    n_prompt = r.optional(usage, "prompt_tokens", "usage.prompt_tokens", int)
    if len(tokens) > n_generated and n_prompt is not None:
        # Echoed: the prompt comes first. llama-cpp-python leaves out the last generated token (it
        # never evaluates it), so count the prompt from usage rather than from the end.
        n_echoed = min(n_prompt, len(tokens))
    else:
        n_echoed = max(0, len(tokens) - n_generated)
    generated_ids = r.optional(choice, "token_ids", "choices[0].token_ids", list)
    steps = []
    for i, (text, value, top) in enumerate(zip(tokens, values, tops)):
        where = f"choices[0].logprobs.tokens[{i}]"
        text = r.get(tokens, i, where, str)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise r.fail(f"choices[0].logprobs.token_logprobs[{i}]", "should be a number or null")
        token_id = None
        if generated_ids is not None and i >= n_echoed and i - n_echoed < len(generated_ids):
            token_id = int(generated_ids[i - n_echoed])
        token = Token(text, token_id, None, None if value is None else float(value))
        steps.append(Step(token, _openai_top(r, top, f"choices[0].logprobs.top_logprobs[{i}]", text)))
    steps, notes = _realign_shifted_echo(steps, n_echoed, r.source)
    echoed = tuple(steps[:n_echoed]) if n_echoed else None
    return EngineResponse(
        source=r.source,
        format="openai-completion",
        prompt=echoed if echoed is not None else prompt,
        prompt_ids=tuple(int(i) for i in prompt_ids) if prompt_ids is not None else None,
        generated=tuple(steps[n_echoed:]),
        model=r.record.get("model") if isinstance(r.record.get("model"), str) else None,
        notes=notes,
    )


def _chat_token(r: Reader, item: Any, field: str) -> Token:
    text = r.get(item, "token", f"{field}.token", str)
    raw = r.optional(item, "bytes", f"{field}.bytes", list)
    if raw is not None and not all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        raise r.fail(f"{field}.bytes", "should be a list of byte values 0..255")
    return Token(text, None, bytes(raw) if raw is not None else None, r.logprob(item, field))


def parse_openai_chat(r: Reader) -> EngineResponse:
    choice = _single_choice(r)
    logprobs = r.optional(choice, "logprobs", "choices[0].logprobs", dict)
    if logprobs is None:
        raise r.fail("choices[0].logprobs", f"is null; request {REQUEST_FLAGS['openai-chat']}")
    content = r.get(logprobs, "content", "choices[0].logprobs.content", list)
    generated_ids = r.optional(choice, "token_ids", "choices[0].token_ids", list)
    steps = []
    for i, item in enumerate(content):
        where = f"choices[0].logprobs.content[{i}]"
        token = _chat_token(r, item, where)
        if generated_ids is not None and i < len(generated_ids):
            token = Token(token.text, int(generated_ids[i]), token.raw, token.logprob)
        top_items = r.get(item, "top_logprobs", f"{where}.top_logprobs", list)
        top = tuple(_chat_token(r, t, f"{where}.top_logprobs[{j}]") for j, t in enumerate(top_items))
        steps.append(Step(token, tuple(sorted(top, key=lambda t: -(t.logprob or 0.0)))))
    prompt, prompt_ids = _vllm_prompt(r, choice, "choices[0]")
    return EngineResponse(
        source=r.source,
        format="openai-chat",
        prompt=prompt,
        prompt_ids=tuple(int(i) for i in prompt_ids) if prompt_ids is not None else None,
        generated=tuple(steps),
        model=r.record.get("model") if isinstance(r.record.get("model"), str) else None,
    )


def _sglang_token(r: Reader, item: Any, field: str, *, logprob_may_be_null: bool = False) -> Token:
    if not isinstance(item, list) or len(item) < 2:
        raise r.fail(field, "should be [logprob, token_id, text]")
    logprob, token_id = item[0], item[1]
    text = item[2] if len(item) > 2 and isinstance(item[2], str) else None
    if not isinstance(token_id, int) or isinstance(token_id, bool):
        raise r.fail(f"{field}[1]", "should be a token id")
    if logprob is None and logprob_may_be_null:
        return Token(text, token_id, None, None)
    if not isinstance(logprob, (int, float)) or isinstance(logprob, bool):
        raise r.fail(f"{field}[0]", "should be a logprob")
    return Token(text, token_id, None, float(logprob))


def _sglang_steps(r: Reader, meta: Mapping[str, Any], which: str, required: bool) -> tuple[Step, ...] | None:
    chosen = r.optional(meta, f"{which}_token_logprobs", f"meta_info.{which}_token_logprobs", list)
    if chosen is None:
        if required:
            raise r.fail(
                f"meta_info.{which}_token_logprobs", f"is missing; request {REQUEST_FLAGS['sglang']}"
            )
        return None
    tops = r.optional(meta, f"{which}_top_logprobs", f"meta_info.{which}_top_logprobs", list) or []
    steps = []
    for i, item in enumerate(chosen):
        token = _sglang_token(r, item, f"meta_info.{which}_token_logprobs[{i}]", logprob_may_be_null=True)
        top_items = tops[i] if i < len(tops) and tops[i] is not None else []
        top = tuple(
            _sglang_token(r, t, f"meta_info.{which}_top_logprobs[{i}][{j}]") for j, t in enumerate(top_items)
        )
        steps.append(Step(token, tuple(sorted(top, key=lambda t: -(t.logprob or 0.0)))))
    return tuple(steps)


def parse_sglang(r: Reader) -> EngineResponse:
    meta = r.get(r.record, "meta_info", "meta_info", dict)
    prompt = _sglang_steps(r, meta, "input", required=False)
    n_prompt = r.optional(meta, "prompt_tokens", "meta_info.prompt_tokens", int)
    if prompt is not None and n_prompt is not None and len(prompt) != n_prompt:
        raise r.fail(
            "meta_info.input_token_logprobs",
            f'covers {len(prompt)} of the {n_prompt} prompt tokens; send "logprob_start_len": 0',
        )
    generated = _sglang_steps(r, meta, "output", required=True)
    return EngineResponse(r.source, "sglang", prompt, None, generated or (), None)


def _llamacpp_token(r: Reader, item: Any, field: str) -> Token:
    if isinstance(item, Mapping) and "prob" in item and "logprob" not in item:
        raise r.fail(field, 'holds probabilities after sampling; send "post_sampling_probs": false')
    token_id = r.get(item, "id", f"{field}.id", int)
    text = r.optional(item, "token", f"{field}.token", str)
    raw = r.optional(item, "bytes", f"{field}.bytes", list)
    return Token(text, token_id, bytes(raw) if raw is not None else None, r.logprob(item, field))


def parse_llamacpp(r: Reader) -> EngineResponse:
    probabilities = r.get(r.record, "completion_probabilities", "completion_probabilities", list)
    steps = []
    for i, item in enumerate(probabilities):
        where = f"completion_probabilities[{i}]"
        token = _llamacpp_token(r, item, where)
        top_items = r.get(item, "top_logprobs", f"{where}.top_logprobs", list)
        top = tuple(_llamacpp_token(r, t, f"{where}.top_logprobs[{j}]") for j, t in enumerate(top_items))
        steps.append(Step(token, tuple(sorted(top, key=lambda t: -(t.logprob or 0.0)))))
    model = r.record.get("model")
    masked = _llamacpp_masked(r.record)
    notes = (
        (
            f"llama.cpp masked token ids {', '.join(map(str, masked))} (logit bias -inf, as its ignore_eos "
            "sets on the end-of-generation tokens): B could not choose them, so a difference where A "
            "chose one is the request's doing, not numerics; send the request without ignore_eos / "
            "logit_bias (precdiff engine-request does)",
        )
        if masked
        else ()
    )
    return EngineResponse(
        r.source, "llamacpp", None, None, tuple(steps), model if isinstance(model, str) else None, notes
    )


def _llamacpp_masked(record: Mapping[str, Any]) -> tuple[int, ...]:
    """Token ids the server's ``generation_settings.logit_bias`` forbade: a bias of -inf, which llama.cpp
    reports as ``null`` (JSON has no infinity) or ``false``."""
    settings = record.get("generation_settings")
    biases = settings.get("logit_bias") if isinstance(settings, Mapping) else None
    if not isinstance(biases, list):
        return ()
    masked = []
    for entry in biases:
        if isinstance(entry, Mapping) and isinstance(entry.get("token"), int):
            bias = entry.get("bias")
            if bias is None or bias is False or (isinstance(bias, float) and bias == float("-inf")):
                masked.append(int(entry["token"]))
    return tuple(sorted(masked))


def _tgi_token(r: Reader, item: Any, field: str, *, logprob_may_be_null: bool = False) -> Token:
    token_id = r.get(item, "id", f"{field}.id", int)
    text = r.optional(item, "text", f"{field}.text", str)
    if logprob_may_be_null and isinstance(item, Mapping) and item.get("logprob") is None:
        return Token(text, token_id, None, None)
    return Token(text, token_id, None, r.logprob(item, field))


def parse_tgi(r: Reader) -> EngineResponse:
    details = r.get(r.record, "details", "details", dict)
    tokens = r.get(details, "tokens", "details.tokens", list)
    tops = r.optional(details, "top_tokens", "details.top_tokens", list) or []
    generated = []
    for i, item in enumerate(tokens):
        token = _tgi_token(r, item, f"details.tokens[{i}]")
        top_items = tops[i] if i < len(tops) else []
        top = tuple(_tgi_token(r, t, f"details.top_tokens[{i}][{j}]") for j, t in enumerate(top_items))
        generated.append(Step(token, tuple(sorted(top, key=lambda t: -(t.logprob or 0.0)))))
    prefill = r.optional(details, "prefill", "details.prefill", list)
    prompt = None
    if prefill:
        prompt = tuple(
            Step(_tgi_token(r, item, f"details.prefill[{i}]", logprob_may_be_null=True), ())
            for i, item in enumerate(prefill)
        )
    return EngineResponse(r.source, "tgi", prompt, None, tuple(generated), None)


def detect(record: Mapping[str, Any]) -> str | None:
    """The format of one response object, from the keys its schema requires."""
    meta = record.get("meta_info")
    if isinstance(meta, Mapping) and "output_token_logprobs" in meta:
        return "sglang"
    if "completion_probabilities" in record:
        return "llamacpp"
    if isinstance(record.get("details"), Mapping):
        return "tgi"
    choices = record.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        if record.get("object") == "chat.completion" or "message" in choices[0]:
            return "openai-chat"
        if record.get("object") == "text_completion" or "text" in choices[0]:
            return "openai-completion"
    return None


PARSERS: dict[str, Callable[[Reader], EngineResponse]] = {
    "openai-completion": parse_openai_completion,
    "openai-chat": parse_openai_chat,
    "sglang": parse_sglang,
    "llamacpp": parse_llamacpp,
    "tgi": parse_tgi,
}


def parse_record(source: str, record: Mapping[str, Any]) -> EngineResponse:
    """Parse one response object of any supported format.

    Raises:
        EngineResponseError: unknown format, or a field the format requires is missing or malformed.
    """
    if isinstance(record.get("error"), (Mapping, str)):
        raise EngineResponseError(
            f"{source} is an error answer of the engine, not a response: {record['error']}"
        )
    name = detect(record)
    if name is None:
        keys = ", ".join(sorted(str(k) for k in record)[:8]) or "none"
        raise EngineResponseError(
            f"{source}: unknown engine response format (top-level keys: {keys}); precdiff reads OpenAI "
            "/v1/completions and /v1/chat/completions, SGLang /generate, llama.cpp /completion and "
            "TGI /generate responses (docs/engines.md)"
        )
    return PARSERS[name](Reader(source, record))
