"""Engine tokens to token ids, exactly, and an engine response as the arrays a capture holds.

Engines name tokens by id (SGLang, llama.cpp ``/completion``, TGI, vLLM with
``return_tokens_as_token_ids`` — ``"token_id:N"`` — or ``return_token_ids``), by bytes (OpenAI
chat ``bytes``) or only by their decoded string. Strings and bytes are mapped through the tokenizer
of the other side: every id of the vocabulary is decoded once, and a string (or byte string) that
more than one id decodes to is refused — guessing would compare the wrong token. Byte strings of
byte-level BPE tokenizers are read from the token's own symbols, so a partial UTF-8 sequence still
names one id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from precdiff.engines.formats import REQUEST_FLAGS
from precdiff.engines.records import EngineResponse, Step, Token
from precdiff.errors import EngineResponseError
from precdiff.store.reader import Generation, TopK

_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


@cache
def byte_level_table() -> dict[str, int]:
    """GPT-2's byte -> printable symbol table, inverted (the symbols byte-level BPE vocabularies use)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


class TokenMap:
    """Token -> id through a tokenizer loaded only when a token comes without an id."""

    def __init__(self, load_tokenizer: Callable[[], Any], tokenizer_name: str):
        self._load = load_tokenizer
        self.tokenizer_name = tokenizer_name
        self._texts: dict[str, list[int]] | None = None
        self._bytes: dict[bytes, list[int]] | None = None

    def _build(self) -> None:
        tokenizer = self._load()
        if tokenizer is None:
            raise EngineResponseError(
                f"the engine named tokens by their text, and {self.tokenizer_name} has no tokenizer to map "
                "them to ids; pass --tokenizer DIR / tokenizer=DIR, or ask the engine for token ids"
            )
        size = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(size)], clean_up_tokenization_spaces=False)
        symbols = tokenizer.convert_ids_to_tokens(list(range(size)))
        table = byte_level_table()
        self._texts, self._bytes = {}, {}
        for token_id, (text, symbol) in enumerate(zip(texts, symbols)):
            self._texts.setdefault(text, []).append(token_id)
            if isinstance(symbol, str) and symbol and all(ch in table for ch in symbol):
                raw = bytes(table[ch] for ch in symbol)
            else:
                raw = text.encode("utf-8")
            self._bytes.setdefault(raw, []).append(token_id)

    def id_of(self, token: Token, where: str) -> int:
        """The one id ``token`` names; ``where`` says which position for messages.

        Raises:
            EngineResponseError: no id or several ids decode to the token.
        """
        if token.token_id is not None:
            return token.token_id
        match = _TOKEN_ID.match(token.text or "")
        if match:
            return int(match.group(1))
        if self._texts is None:
            self._build()
        assert self._texts is not None and self._bytes is not None
        if token.raw is not None:
            key: str | bytes = token.raw
            ids = self._bytes.get(token.raw, [])
        else:
            key = token.text or ""
            ids = self._texts.get(key, [])
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise EngineResponseError(
                f"{where}: token {key!r} is not a token of {self.tokenizer_name}; the engine serves another "
                "tokenizer, or pass the right one with --tokenizer DIR / tokenizer=DIR"
            )
        shown = ", ".join(str(i) for i in ids[:4]) + (", ..." if len(ids) > 4 else "")
        raise EngineResponseError(
            f"{where}: token {key!r} decodes from {len(ids)} ids of {self.tokenizer_name} ({shown}), so its id is "
            'ambiguous; ask the engine for ids (vLLM: "return_tokens_as_token_ids": true; SGLang, llama.cpp '
            "/completion and TGI return ids) or bytes (chat logprobs)"
        )


@dataclass(frozen=True)
class EngineSide:
    """An engine response as a capture's arrays.

    Attributes:
        response: the parsed response.
        prompt_ids: the prompt's ids, or ``None`` when the engine returned no prompt tokens.
        prompt_logprobs: like a capture's: row ``j`` holds the top-k candidates for token
            ``prompt_logprobs_start + j + 1`` (the last row: for the first generated token), ``k``
            the smallest count the engine gave at any row; ``None`` without prompt candidates.
        prompt_logprobs_start: the capture row the first row stands for (leading positions the
            engine gave no candidates for are left out).
        notes: what was corrected or left out, for the report's warnings.
        generation: ids, top-k and top-1/top-2 margins per generated step.
    """

    response: EngineResponse
    prompt_ids: tuple[int, ...] | None
    prompt_logprobs: TopK | None
    prompt_logprobs_start: int
    generation: Generation | None
    notes: tuple[str, ...]


def _lossy(token: Token) -> bool:
    """A candidate named by a string the engine decoded lossily (a partial UTF-8 sequence)."""
    return token.raw is None and token.token_id is None and (not token.text or "\ufffd" in token.text)


def _topk(rows: Sequence[tuple[Token, ...]], mapping: TokenMap, where: str) -> tuple[TopK, int]:
    """Rows of candidates as a TopK (``k``: the shortest row), and how many were lossy.

    A candidate whose string lost its bytes in the engine's decoding ("" or U+FFFD) names no single
    id, but its mass is known: it keeps its rank under a negative id that matches nothing, so the
    KL counts it as a bucket of its own. Any other unmappable candidate is refused.
    """
    k = min(len(row) for row in rows)
    ids = np.zeros((len(rows), k), dtype=np.int64)
    logprobs = np.zeros((len(rows), k), dtype=np.float64)
    lossy = 0
    for r, row in enumerate(rows):
        best = sorted(row, key=lambda t: -(t.logprob if t.logprob is not None else -np.inf))[:k]
        for c, token in enumerate(best):
            if _lossy(token):
                lossy += 1
                ids[r, c] = -1 - c
            else:
                ids[r, c] = mapping.id_of(token, f"{where} row {r}")
            logprobs[r, c] = token.logprob if token.logprob is not None else np.nan
    return TopK(ids, logprobs), lossy


def _generation(
    steps: tuple[Step, ...], mapping: TokenMap, source: str, fmt: str
) -> tuple[Generation | None, int]:
    if not steps:
        return None, 0
    if any(len(step.top) < 2 for step in steps):
        raise EngineResponseError(
            f"{source}: generated tokens come with fewer than 2 candidates, so no top-1/top-2 margin "
            f"exists; request {REQUEST_FLAGS[fmt]}"
        )
    ids = np.asarray([mapping.id_of(s.token, f"{source} generated token {i}") for i, s in enumerate(steps)])
    topk, dropped = _topk([s.top for s in steps], mapping, f"{source} generated candidates")
    margin = topk.logprobs[:, 0] - topk.logprobs[:, 1]
    return Generation(ids=ids.astype(np.int64), topk=topk, margin=margin), dropped


def prompt_ids(response: EngineResponse, mapping: TokenMap) -> tuple[int, ...] | None:
    """The prompt's ids (``None`` when the engine returned no prompt tokens)."""
    if response.prompt_ids is not None or response.prompt is None:
        return response.prompt_ids
    return tuple(
        mapping.id_of(step.token, f"{response.source} prompt token {i}")
        for i, step in enumerate(response.prompt)
    )


def resolve(response: EngineResponse, mapping: TokenMap) -> EngineSide:
    """Map every token of ``response`` to its id and arrange the logprobs as a capture does."""
    prompt = response.prompt
    rows: list[tuple[Token, ...]] = [step.top for step in (prompt or ())[1:]]
    if prompt and response.generated:
        rows.append(response.generated[0].top)
    # Engines that null the first candidates (OpenAI echo) or give none for the prompt (TGI prefill):
    # compare from the first row that has candidates, when every later row has them too.
    start = next((j for j, row in enumerate(rows) if row), len(rows))
    prompt_logprobs, dropped = None, 0
    if rows[start:] and all(rows[start:]):
        prompt_logprobs, dropped = _topk(rows[start:], mapping, f"{response.source} prompt candidates")
    generation, dropped_generated = _generation(response.generated, mapping, response.source, response.format)
    notes = response.notes
    if dropped + dropped_generated:
        notes += (
            f"{response.source}: {dropped + dropped_generated} candidate(s) named by a lossily decoded string "
            "('' or U+FFFD) have no id: each counts as a bucket of its own (id -1, -2, ... in the report)",
        )
    return EngineSide(response, prompt_ids(response, mapping), prompt_logprobs, start, generation, notes)
