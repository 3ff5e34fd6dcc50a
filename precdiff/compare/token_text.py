"""Token ids as readable text for the reports: one id at a time, byte pieces and special tokens visible.

The text of a token comes from the tokenizer a capture names in its manifest (``model.source``: a
``tiny:<arch>`` model, a local tokenizer directory or a ``.gguf`` file, or a directory holding one), or
``--tokenizer``. It is loaded only from local files and never with ``trust_remote_code`` (see
:func:`precdiff.templates.sides.load_tokenizer`); a source that does not exist on this machine (a capture
made elsewhere) or cannot be loaded that way gives no texts, and the report says why.

Each id is decoded on its own, so the texts line up with the positions: special tokens keep their
name (``<|im_start|>``), and a token that is only part of a UTF-8 character (byte-level BPE splits
``—`` into three) shows its bytes as ``<0xE2>`` instead of U+FFFD.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from precdiff.engines.tokenmap import byte_level_table
from precdiff.errors import PrecdiffError

_REPLACEMENT = "\ufffd"


def tokenizer_loader(source: str) -> Callable[[], Any]:
    """A function loading the tokenizer of ``source`` (``tiny:<arch>``, a local directory or ``.gguf``).

    The loader raises :class:`~precdiff.errors.PrecdiffError` subclasses (``TemplateError``, ``InputError``)
    when the source holds no tokenizer that loads from local files without running its code.
    """

    def load() -> Any:
        if source.startswith("tiny:"):
            from precdiff.capture.models import _parse_tiny
            from precdiff.capture.tiny import build_tokenizer

            return build_tokenizer(_parse_tiny(source))
        from precdiff.capture.gguf_model import find_gguf
        from precdiff.templates.sides import load_gguf, load_tokenizer

        gguf = find_gguf(Path(source))
        if gguf is not None:
            return load_gguf(str(gguf.resolve()))[0]
        return load_tokenizer(str(Path(source).resolve()))

    return load


def display_tokenizer(source: str | None) -> tuple[Any | None, str | None]:
    """The tokenizer to show token texts with, or ``(None, why not)`` (``why`` None without a source).

    Args:
        source: ``--tokenizer``, else the capture's ``model.source``; None when neither is known.
    """
    if source is None:
        return None, None  # nothing names a model (synthetic or external captures): nothing to explain
    if not source.startswith("tiny:") and not Path(source).exists():
        return None, f"token texts: the tokenizer source {source} does not exist here (pass --tokenizer DIR)"
    try:
        return tokenizer_loader(source)(), None
    except PrecdiffError as exc:
        return None, f"token texts: cannot load the tokenizer of {source} from local files ({exc})"


def shown_bytes(raw: bytes) -> str:
    """Bytes as text where they are whole UTF-8 characters, ``<0xNN>`` for every other byte."""
    out, i = [], 0
    while i < len(raw):
        for width in (1, 2, 3, 4):
            try:
                out.append(raw[i : i + width].decode("utf-8"))
            except UnicodeDecodeError:
                continue
            i += width
            break
        else:
            out.append(f"<0x{raw[i]:02X}>")
            i += 1
    return "".join(out)


def token_text(tokenizer: Any, token_id: int) -> str:
    """The text of one token id; see the module docstring for byte pieces and special tokens."""
    text = str(tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False))
    if text and _REPLACEMENT not in text:
        return text
    symbol = tokenizer.convert_ids_to_tokens(token_id)
    if not isinstance(symbol, str) or not symbol:
        return text
    table = byte_level_table()
    if all(ch in table for ch in symbol):
        return shown_bytes(bytes(table[ch] for ch in symbol))
    return symbol  # SentencePiece byte fallback names its pieces <0xE2> already


def token_texts(tokenizer: Any | None, ids: Sequence[int]) -> tuple[str, ...] | None:
    """The text of each id (None without a tokenizer); ids outside the vocabulary show as ``<id N>``."""
    if tokenizer is None:
        return None
    size = len(tokenizer)
    return tuple(token_text(tokenizer, i) if 0 <= i < size else f"<id {i}>" for i in ids)
