"""Serving engines seen from outside: their logprob responses, and the requests that make them comparable.

A stage beside ``capture``: an engine cannot be hooked, so its response file plays the part of a
capture's logprobs and generation (``compare`` reads it through :func:`read_responses` and
:func:`resolve`; ``capture --tokens-from RESPONSE.json`` through :func:`prompt_ids_from`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from precdiff.engines.formats import parse_record
from precdiff.engines.records import RESPONSE_SUFFIXES, EngineResponse, load_records
from precdiff.engines.request import ENGINES, EngineRequest, engine_request
from precdiff.engines.tokenmap import EngineSide, TokenMap, prompt_ids, resolve
from precdiff.errors import EngineResponseError

__all__ = [
    "ENGINES",
    "RESPONSE_SUFFIXES",
    "EngineRequest",
    "EngineResponse",
    "EngineSide",
    "TokenMap",
    "engine_request",
    "is_response_file",
    "prompt_ids_from",
    "read_responses",
    "resolve",
]


def is_response_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an engine response (by its suffix: ``.json`` / ``.jsonl``)."""
    return Path(path).suffix.lower() in RESPONSE_SUFFIXES


def read_responses(path: str | Path) -> list[EngineResponse]:
    """Every response in a file (one JSON object, a JSON list or JSON Lines), parsed.

    Raises:
        EngineResponseError: unreadable, truncated or malformed file, or an unknown format.
    """
    return [parse_record(source, record) for source, record in load_records(path)]


def prompt_ids_from(path: str | Path, tokenizer: Any) -> list[int]:
    """The prompt ids an engine saw, from a file holding one response (``capture --tokens-from``).

    Raises:
        EngineResponseError: the file holds several responses, or one without prompt tokens.
    """
    responses = read_responses(path)
    if len(responses) != 1:
        raise EngineResponseError(
            f"{path} holds {len(responses)} responses; --tokens-from / tokens_from= needs a file with one"
        )
    response = responses[0]
    ids = prompt_ids(response, TokenMap(lambda: tokenizer, "the model's tokenizer"))
    if ids is None:
        from precdiff.engines.formats import REQUEST_FLAGS

        raise EngineResponseError(
            f"{path} ({response.format}) holds no prompt tokens; request {REQUEST_FLAGS[response.format]}, "
            "or give the prompt with --messages / --input-ids"
        )
    return list(ids)
