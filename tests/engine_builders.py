"""Engine responses built from a capture's own numbers, in each engine's documented response schema.

Where each shape comes from (field names and nesting as documented, values from the capture):

- ``openai_completion``: OpenAI API reference, legacy Completions object (``choices[].logprobs`` with
  ``tokens``/``token_logprobs``/``top_logprobs``/``text_offset``, ``echo`` puts the prompt first
  with a null first entry); ``as_ids`` uses vLLM's ``return_tokens_as_token_ids`` (``"token_id:N"``).
- ``vllm_prompt_logprobs``: vLLM OpenAI-compatible server, ``prompt_logprobs`` extra parameter
  (``[null, {"<id>": {"logprob", "rank", "decoded_token"}}, ...]``) and ``return_token_ids``
  (``prompt_token_ids``, ``token_ids`` in the choice).
- ``openai_chat``: OpenAI API reference, Chat Completion object ``choices[].logprobs.content[]`` of
  ``{token, logprob, bytes, top_logprobs[]}``.
- ``sglang``: SGLang native API ``/generate`` with ``return_logprob``, ``logprob_start_len: 0``,
  ``top_logprobs_num``, ``return_text_in_logprobs``: ``meta_info.{input,output}_token_logprobs`` of
  ``[logprob, id, text]`` and ``{input,output}_top_logprobs``.
- ``llamacpp``: llama.cpp ``tools/server/README.md``, ``POST /completion`` with ``n_probs``:
  ``completion_probabilities[]`` of ``{id, token, bytes, logprob, top_logprobs[]}``.
- ``tgi``: Text Generation Inference OpenAPI, ``POST /generate`` with ``details``,
  ``decoder_input_details`` and ``top_n_tokens``: ``details.prefill[]``, ``details.tokens[]``,
  ``details.top_tokens[][]`` of ``{id, text, logprob, special}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precdiff.store import open_capture


@dataclass
class Numbers:
    """A capture's ids and logprobs in the engine convention: ``tops[i]`` = candidates for token i."""

    prompt: list[int]
    generated: list[int]
    tops: list[list[tuple[int, float]]]  # one per prompt token (first empty) and generated token
    own: list[float | None]  # logprob of the token at each position


def numbers(capture: Path, k: int = 5) -> Numbers:
    with open_capture(capture) as cap:
        prompt, top, gen = cap.input_ids, cap.prompt_logprobs, cap.generation
        assert top is not None and gen is not None
        rows = [
            list(zip(top.ids[r, :k].tolist(), top.logprobs[r, :k].astype(float).tolist()))
            for r in range(len(prompt))
        ]
        gen_rows = [
            list(zip(gen.topk.ids[s, :k].tolist(), gen.topk.logprobs[s, :k].astype(float).tolist()))
            for s in range(len(gen.ids))
        ]
        generated = gen.ids.tolist()
    # Capture row r holds the candidates for token r + 1; the last prompt row is the first step's.
    tops = [[], *rows[:-1], *gen_rows]
    sequence = prompt + generated
    own = [None] + [dict(t).get(tok) for t, tok in zip(tops[1:], sequence[1:])]
    return Numbers(prompt, generated, tops, own)


def flip(n: Numbers, step: int) -> Numbers:
    """Generated token ``step`` becomes its second candidate (the candidates' logprobs swapped)."""
    position = len(n.prompt) + step
    tops = [list(t) for t in n.tops]
    (id1, lp1), (id2, lp2) = tops[position][0], tops[position][1]
    tops[position][0], tops[position][1] = (id2, lp1), (id1, lp2)
    generated = list(n.generated)
    generated[step] = id2
    own = list(n.own)
    own[position] = lp1
    return Numbers(n.prompt, generated, tops, own)


def off_greedy(n: Numbers, step: int) -> Numbers:
    """Generated token ``step`` becomes its second candidate, the candidates left as they were: what an
    engine returns when a logit bias (llama.cpp's ignore_eos) or sampling overrode its best candidate."""
    position = len(n.prompt) + step
    generated = list(n.generated)
    generated[step] = n.tops[position][1][0]
    own = list(n.own)
    own[position] = n.tops[position][1][1]
    return Numbers(n.prompt, generated, [list(t) for t in n.tops], own)


def _text(tokenizer: Any, token_id: int) -> str:
    return str(tokenizer.decode([token_id], clean_up_tokenization_spaces=False))


def openai_completion(n: Numbers, tokenizer: Any = None, *, as_ids: bool = False) -> dict[str, Any]:
    sequence = n.prompt + n.generated
    name = (lambda i: f"token_id:{i}") if as_ids else (lambda i: _text(tokenizer, i))
    tops: list[dict[str, float] | None] = [None]
    for row in n.tops[1:]:
        tops.append({name(i): lp for i, lp in row})
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "text": "",
                "logprobs": {
                    "tokens": [name(i) for i in sequence],
                    "token_logprobs": n.own,
                    "top_logprobs": tops,
                    "text_offset": list(range(len(sequence))),
                },
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": len(n.prompt),
            "completion_tokens": len(n.generated),
            "total_tokens": len(sequence),
        },
    }


def vllm_prompt_logprobs(n: Numbers) -> dict[str, Any]:
    """vLLM ``/v1/completions`` without echo: ``prompt_logprobs`` + ids, generated as token_id strings."""
    prompt_entries: list[dict[str, Any] | None] = [None]
    for position in range(1, len(n.prompt)):
        entry = {
            str(i): {"logprob": lp, "rank": r + 1, "decoded_token": None}
            for r, (i, lp) in enumerate(n.tops[position])
        }
        token = n.prompt[position]
        if str(token) not in entry:  # vLLM adds the prompt token itself with its rank
            entry[str(token)] = {"logprob": -30.0, "rank": 1000, "decoded_token": None}
        prompt_entries.append(entry)
    generated = n.generated
    gen_tops = n.tops[len(n.prompt) :]
    return {
        "id": "cmpl-2",
        "object": "text_completion",
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "text": "",
                "logprobs": {
                    "tokens": [f"token_id:{i}" for i in generated],
                    "token_logprobs": n.own[len(n.prompt) :],
                    "top_logprobs": [{f"token_id:{i}": lp for i, lp in row} for row in gen_tops],
                    "text_offset": list(range(len(generated))),
                },
                "prompt_logprobs": prompt_entries,
                "prompt_token_ids": n.prompt,
                "token_ids": generated,
            }
        ],
        "usage": {"prompt_tokens": len(n.prompt), "completion_tokens": len(generated)},
    }


def _chat_item(tokenizer: Any, token_id: int, logprob: float) -> dict[str, Any]:
    raw = tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(token_id)])
    symbols = tokenizer.convert_ids_to_tokens(token_id)
    from precdiff.engines.tokenmap import byte_level_table

    table = byte_level_table()
    data = [table[ch] for ch in symbols] if all(ch in table for ch in symbols) else list(raw.encode())
    return {"token": raw, "logprob": logprob, "bytes": data}


def openai_chat(n: Numbers, tokenizer: Any) -> dict[str, Any]:
    start = len(n.prompt)
    content = []
    for step, token in enumerate(n.generated):
        top = n.tops[start + step]
        item = _chat_item(tokenizer, token, n.own[start + step] or top[0][1])
        item["top_logprobs"] = [_chat_item(tokenizer, i, lp) for i, lp in top]
        content.append(item)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "tiny",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": {"content": content}}
        ],
        "usage": {"prompt_tokens": len(n.prompt), "completion_tokens": len(n.generated)},
    }


def sglang(n: Numbers) -> dict[str, Any]:
    start = len(n.prompt)
    sequence = n.prompt + n.generated
    triples = [[n.own[p], sequence[p], None] for p in range(len(sequence))]
    tops = [None if not row else [[lp, i, None] for i, lp in row] for row in n.tops]
    return {
        "text": "",
        "meta_info": {
            "prompt_tokens": start,
            "completion_tokens": len(n.generated),
            "input_token_logprobs": triples[:start],
            "output_token_logprobs": triples[start:],
            "input_top_logprobs": tops[:start],
            "output_top_logprobs": tops[start:],
        },
    }


def llamacpp(n: Numbers) -> dict[str, Any]:
    start = len(n.prompt)
    probabilities = []
    for step, token in enumerate(n.generated):
        top = n.tops[start + step]
        probabilities.append(
            {
                "id": token,
                "token": "",
                "bytes": [],
                "logprob": n.own[start + step],
                "top_logprobs": [{"id": i, "token": "", "bytes": [], "logprob": lp} for i, lp in top],
            }
        )
    return {"content": "", "tokens_evaluated": start, "completion_probabilities": probabilities}


def tgi(n: Numbers) -> dict[str, Any]:
    start = len(n.prompt)
    prefill = [{"id": i, "text": "", "logprob": n.own[p]} for p, i in enumerate(n.prompt)]
    tokens = [
        {"id": i, "text": "", "logprob": n.own[start + s], "special": False}
        for s, i in enumerate(n.generated)
    ]
    top_tokens = [
        [{"id": i, "text": "", "logprob": lp, "special": False} for i, lp in n.tops[start + s]]
        for s in range(len(n.generated))
    ]
    return {
        "generated_text": "",
        "details": {
            "finish_reason": "length",
            "generated_tokens": len(n.generated),
            "seed": None,
            "prefill": prefill,
            "tokens": tokens,
            "top_tokens": top_tokens,
        },
    }


def largest_margin_step(n: Numbers) -> int:
    start = len(n.prompt)
    margins = [n.tops[start + s][0][1] - n.tops[start + s][1][1] for s in range(len(n.generated))]
    return int(np.argmax(margins))
