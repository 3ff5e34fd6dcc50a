"""Pitfall detectors that read token ids and tokenizers (see ``pitfalls.PITFALLS``)."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

from precdiff.templates.facts import Finding, PitfallContext, SideFacts, both, special_ids

__all__ = ["different_tokenizer", "double_bos", "special_token_ids", "special_tokens_as_text"]


def _bos(side: SideFacts) -> tuple[str | None, int | None]:
    tok = side.tokenizer
    bos, bos_id = getattr(tok, "bos_token", None), getattr(tok, "bos_token_id", None)
    if side.bos_token_id is not None:
        bos_id = side.bos_token_id  # a capture's own tokenizer, from its manifest
    return (bos if isinstance(bos, str) else None), bos_id


def double_bos(ctx: PitfallContext) -> list[Finding]:
    found: list[Finding] = []
    for side in ctx.sides():
        bos, bos_id = _bos(side)
        if side.ids and bos_id is not None and side.ids[:2] == [bos_id, bos_id]:
            why = ""
            if side.add_special_tokens and side.text and isinstance(bos, str) and side.text.startswith(bos):
                why = ": the text already starts with it and add_special_tokens=True adds another"
            found.append((side.label, f"{side.label} starts with {bos} twice (ids {bos_id}, {bos_id}){why}"))
        elif side.text and isinstance(bos, str) and bos and side.text.startswith(bos * 2):
            found.append((side.label, f"{side.label}'s text starts with {bos} twice"))
    return both(found)


def special_token_ids(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a, ctx.b
    if a.tokenizer is None or b.tokenizer is None or a.tokenizer_sha256 == b.tokenizer_sha256:
        return []
    ids_a, ids_b = special_ids(a.tokenizer), special_ids(b.tokenizer)
    texts = (a.text or "") + "\0" + (b.text or "")
    found: list[str] = []
    for token in sorted(set(ids_a) | set(ids_b)):
        if token not in texts:
            continue
        if token in ids_a and token in ids_b and ids_a[token] != ids_b[token]:
            found.append(f"{token} is id {ids_a[token]} in A's tokenizer and {ids_b[token]} in B's")
        elif (token in ids_a) != (token in ids_b):
            owner, other = (a, b) if token in ids_a else (b, a)
            splitter: Any = other.tokenizer
            pieces = len(splitter(token, add_special_tokens=False)["input_ids"])
            found.append(
                f"{token} is a special token for {owner.label} but {other.label}'s tokenizer "
                f"splits it into {pieces} pieces"
            )
    return (
        [(None, "; ".join(found[:3]) + (f" (+{len(found) - 3} more)" if len(found) > 3 else ""))]
        if found
        else []
    )


def different_tokenizer(ctx: PitfallContext) -> list[Finding]:
    a, b = ctx.a, ctx.b
    if (
        a.tokenizer is not None
        and b.tokenizer is not None
        and not a.tokenizer_borrowed
        and not b.tokenizer_borrowed
        and a.tokenizer_sha256 != b.tokenizer_sha256
    ):
        sizes = (
            f"{type(a.tokenizer).__name__} ({len(a.tokenizer)} tokens) vs "
            f"{type(b.tokenizer).__name__} ({len(b.tokenizer)} tokens)"
        )
        return [
            (
                None,
                f"A and B use different tokenizers: {sizes}, sha256 {(a.tokenizer_sha256 or '')[:12]} vs "
                f"{(b.tokenizer_sha256 or '')[:12]}",
            )
        ]
    for side in ctx.sides():
        other = ctx.other(side).text
        if side.text_decoded and side.tokenizer_borrowed and side.text and other:
            alike = SequenceMatcher(None, side.text[:2000], other[:2000]).ratio()
            if alike < 0.5:
                return [
                    (
                        side.label,
                        f"{side.label}'s ids decoded with {ctx.other(side).label}'s tokenizer give "
                        f"text only {alike:.0%} like {ctx.other(side).label}'s render: the ids "
                        "were made by a different tokenizer",
                    )
                ]
        if (
            side.given_ids_retokenize is not None
            and side.ids is not None
            and side.given_ids_retokenize != side.ids
        ):
            return [
                (
                    side.label,
                    f"{side.label}'s given ids are not what the other side's tokenizer makes of the "
                    f"same text ({len(side.ids)} vs {len(side.given_ids_retokenize)} tokens): the "
                    "engine's tokenizer or its tokenization options differ",
                )
            ]
    return []


def special_tokens_as_text(ctx: PitfallContext) -> list[Finding]:
    for side in ctx.sides():
        other = ctx.other(side)
        tok = side.tokenizer
        if side.kind not in ("ids", "capture") or tok is None or not side.ids or not other.text:
            continue
        if side.ids == other.ids:
            continue
        plain = [
            int(i) for i in tok(other.text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        ]
        if plain and side.ids[-len(plain) :] == plain and len(side.ids) - len(plain) <= 1:
            count = sum(1 for t in special_ids(tok) if t in other.text)
            return [
                (
                    side.label,
                    f"{side.label}'s ids are {other.label}'s text with its {count} kind(s) of special-token "
                    "text split into ordinary pieces: the engine tokenized the prompt with "
                    "parse_special=False / split_special_tokens=True",
                )
            ]
    return []
