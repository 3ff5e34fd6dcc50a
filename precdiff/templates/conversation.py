"""``diff_conversation``: render one conversation on two sides and say how, where and why they differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from precdiff.errors import InputError
from precdiff.templates.bounds import DEFAULT_LIMITS
from precdiff.templates.diff import (
    Chunk,
    align_tokens,
    first_difference,
    make_visible,
    render_window,
    text_chunks,
)
from precdiff.templates.environment_check import check_renderer
from precdiff.templates.pitfalls import PitfallContext, SideFacts, recognise
from precdiff.templates.render import load_messages, load_tools, render_with_template, tokenizer_info
from precdiff.templates.renderers import DEFAULT_RENDERER, resolve_renderer
from precdiff.templates.results import AlignmentRow, SideReport, TokenizerInfo, TokensDiff, Verdict
from precdiff.templates.sandbox import SandboxLimits
from precdiff.templates.sides import LoadedSide, load_side

__all__ = ["diff_conversation"]


@dataclass(frozen=True)
class _Resolved:
    report: SideReport
    facts: SideFacts


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))


def _resolve(
    side: LoadedSide,
    other: LoadedSide,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    kwargs: Mapping[str, Any],
    add_generation_prompt: bool,
    add_special_tokens: bool | None,
    limits: SandboxLimits | None,
    renderer: str | None,
) -> _Resolved:
    lower = side.label.lower()
    flag = f"--{lower}-kwarg"
    if kwargs and side.kind != "template":
        raise InputError(
            f"{flag} was given but side {side.label} ('{side.spec}') is {side.kind} input, not a template; "
            "template kwargs apply only to a tokenizer directory or DIR:TEMPLATE side"
        )
    if renderer is not None and side.kind != "template":
        raise InputError(
            f"--{lower}-renderer / {lower}_renderer= was given but side {side.label} ('{side.spec}') is "
            f"{side.kind} input, not a template; a renderer applies only to a tokenizer directory, "
            "DIR:TEMPLATE or GGUF side"
        )
    settings = resolve_renderer(renderer, f"--{lower}-renderer / {lower}_renderer=")
    if add_special_tokens is not None and side.kind in ("ids", "capture"):
        raise InputError(
            f"--{side.label.lower()}-add-special-tokens was given but side {side.label} ('{side.spec}') is "
            "already token ids; it applies only to sides that precdiff tokenizes"
        )
    own = side.tokenizer is not None
    tokenizer = side.tokenizer if own else other.tokenizer
    source = side.tokenizer_source if own else other.tokenizer_source
    info: TokenizerInfo | None = None if tokenizer is None else tokenizer_info(tokenizer, source or "?")
    notes = list(side.notes)
    if tokenizer is not None and not own:
        notes.append(f"no tokenizer of its own: uses side {other.label}'s tokenizer ('{source}')")
    ast = bool(add_special_tokens)
    text, ids, gen_prompt, retokenized = side.text, side.ids, None, None
    ignored: tuple[str, ...] = ()
    gen_flag: bool | None = None
    text_origin, ids_origin = "given", "given"
    if side.kind == "template":
        assert side.template is not None
        rendering = render_with_template(
            tokenizer,
            side.template,
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            template_kwargs=kwargs,
            add_special_tokens=ast,
            kwarg_flag=flag,
            limits=limits,
            renderer=settings,
        )
        if settings.name != DEFAULT_RENDERER:
            notes.append(f"rendered by the {settings.name} renderer ({settings.describe()})")
        toggled = render_with_template(
            tokenizer,
            side.template,
            messages,
            tools=tools,
            template_kwargs={**kwargs, "add_generation_prompt": not rendering.add_generation_prompt},
            kwarg_flag=flag,
            limits=limits,
            tokenize=False,
            renderer=settings,
        )
        with_prompt, without = (
            (rendering.text, toggled.text)
            if rendering.add_generation_prompt
            else (toggled.text, rendering.text)
        )
        if with_prompt.startswith(without) and with_prompt != without:
            gen_prompt = with_prompt[len(without) :]
        ignored = rendering.ignored_switches
        gen_flag = rendering.add_generation_prompt
        text, ids, text_origin, ids_origin = rendering.text, rendering.token_ids, "rendered", "tokenized"
    elif side.kind == "text":
        assert text is not None
        cap = (limits or DEFAULT_LIMITS).max_input_chars
        if len(text) > cap:
            raise InputError(
                f"side {side.label}: '{side.spec}' holds {len(text):,} characters, above precdiff's input "
                f"limit of {cap:,}; compare a shorter prompt, or raise the limit (Python: "
                "limits=SandboxLimits(max_input_chars=...))"
            )
        if tokenizer is None:
            ids, ids_origin = None, "none"
            notes.append("no tokenizer on either side: compared as text only")
        else:
            ids, ids_origin = (
                [int(i) for i in tokenizer(text, add_special_tokens=ast)["input_ids"]],
                "tokenized",
            )
    if side.kind in ("ids", "capture") and text is None:
        if tokenizer is None:
            text_origin = "none"
            notes.append("no tokenizer on either side to decode the ids: compared as ids only")
        else:
            assert ids is not None
            text, text_origin = _decode(tokenizer, ids), "decoded"
            whose = "its own" if own else f"side {other.label}'s"
            notes.append(f"text decoded from the ids with {whose} tokenizer")
    if side.kind in ("ids", "capture") and tokenizer is not None and text is not None:
        retokenized = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if ids_origin == "tokenized":
        notes.append(
            f"tokenized with add_special_tokens={ast}"
            + (" (as apply_chat_template does)" if not ast else " (the tokenizer adds its BOS/EOS)")
        )
    report = SideReport(
        label=side.label,
        spec=side.spec,
        kind=side.kind,
        text=text,
        token_ids=ids,
        text_origin=text_origin,  # type: ignore[arg-type]
        ids_origin=ids_origin,  # type: ignore[arg-type]
        tokenizer=info,
        tokenizer_borrowed=tokenizer is not None and not own,
        add_special_tokens=ast if ids_origin == "tokenized" else None,
        add_generation_prompt=gen_flag,
        template_sha256=side.template_sha256,
        template_kwargs=dict(kwargs),
        notes=tuple(notes),
        renderer=settings.name if side.kind == "template" else None,
    )
    facts = SideFacts(
        label=side.label,  # type: ignore[arg-type]
        kind=side.kind,
        text=text,
        ids=ids,
        tokenizer=tokenizer,
        tokenizer_sha256=None if info is None else info.sha256,
        tokenizer_borrowed=report.tokenizer_borrowed,
        template=side.template,
        template_sha256=side.template_sha256,
        template_kwargs=dict(kwargs),
        add_generation_prompt=report.add_generation_prompt,
        generation_prompt=gen_prompt,
        add_special_tokens=report.add_special_tokens,
        ignored_switches=ignored,
        template_conflict=side.template_conflict,
        bos_token_id=side.bos_token_id,
        given_ids_retokenize=retokenized,
        text_decoded=text_origin == "decoded",
        renderer=report.renderer,
    )
    return _Resolved(report, facts)


def _with_renderer_check(
    facts: SideFacts,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    limits: SandboxLimits | None,
) -> SideFacts:
    """A template side's facts with its render under the other renderer (for ``jinja_environment``)."""
    if facts.kind != "template" or facts.template is None or facts.text is None or facts.renderer is None:
        return facts
    check = check_renderer(
        facts.tokenizer,
        facts.template,
        messages,
        renderer=facts.renderer,
        own_text=facts.text,
        tools=tools,
        template_kwargs=facts.template_kwargs,
        add_generation_prompt=bool(facts.add_generation_prompt),
        limits=limits,
    )
    return replace(facts, renderer_check=check)


def _verdict(a: SideReport, b: SideReport) -> Verdict:
    texts_equal = a.text is not None and b.text is not None and a.text == b.text
    if a.token_ids is not None and b.token_ids is not None:
        if a.token_ids == b.token_ids:
            return "identical"
        return "same_text_different_ids" if texts_equal else "different"
    return "identical" if texts_equal else "different"


def _specials(*tokenizers: Any) -> list[str]:
    out: set[str] = set()
    for tok in tokenizers:
        decoder = getattr(tok, "added_tokens_decoder", None) or {}
        out.update(t.content for t in decoder.values() if getattr(t, "special", False) and t.content.strip())
    return sorted(out)


def _piece(tokenizer: Any) -> Any:
    def piece(token_id: int) -> str:
        if tokenizer is None:
            return "?"
        return make_visible(_decode(tokenizer, [token_id]))

    return piece


def diff_conversation(
    messages: str | Path | Sequence[Mapping[str, Any]],
    a: str,
    b: str,
    *,
    tools: str | Path | Sequence[Mapping[str, Any]] | None = None,
    a_kwargs: Mapping[str, Any] | None = None,
    b_kwargs: Mapping[str, Any] | None = None,
    add_generation_prompt: bool = True,
    a_add_special_tokens: bool | None = None,
    b_add_special_tokens: bool | None = None,
    limits: SandboxLimits | None = None,
    a_renderer: str | None = None,
    b_renderer: str | None = None,
) -> TokensDiff:
    """Render ``messages`` on side ``a`` and side ``b`` and diff the results at text and token level.

    Args:
        messages: a messages JSON file, or the message list itself.
        a, b: side SPECs (see ``precdiff.templates.sides``): tokenizer dir, ``DIR:TEMPLATE``, rendered-text
            file, token-id file or precdiff capture.
        tools: a tools JSON file or list, passed to template sides.
        a_kwargs, b_kwargs: template variables per side (``--a-kwarg`` / ``--b-kwarg``).
        add_generation_prompt: for template sides (``--no-generation-prompt`` sets ``False``).
        a_add_special_tokens, b_add_special_tokens: tokenize that side with ``add_special_tokens=True``;
            ``None``/``False`` tokenizes as ``apply_chat_template`` does (``False``).
        limits: sandbox limits for template rendering.
        a_renderer, b_renderer: the Jinja environment of a template side: ``"transformers"`` (``None``, as
            ``apply_chat_template``) or ``"plain-jinja2"`` (as ``jinja2.Template(source)``; see
            ``renderers.py``).

    Returns:
        A :class:`TokensDiff`; ``result.identical`` is true when both sides give the model the same ids.

    Raises:
        InputError: unreadable or malformed inputs, or an option that does not apply to a side.
        TemplateError: a missing or failing template, an unknown template kwarg, a bad tokenizer dir.
        TemplateSandboxError: a template broke a sandbox rule.

    Example:
        >>> r = diff_conversation("chat.json", "tok_dir", "engine_prompt.txt")
        >>> r.verdict, [p.name for p in r.pitfalls]
        ('different', ['default_system_prompt'])
    """
    chat = load_messages(messages) if isinstance(messages, (str, Path)) else [dict(m) for m in messages]
    tool_list = (
        load_tools(tools)
        if isinstance(tools, (str, Path))
        else (None if tools is None else [dict(t) for t in tools])
    )
    side_a, side_b = load_side(a, "A", tool_list is not None), load_side(b, "B", tool_list is not None)
    ra = _resolve(
        side_a, side_b, chat, tool_list, a_kwargs or {}, add_generation_prompt, a_add_special_tokens, limits,
        a_renderer,
    )  # fmt: skip
    rb = _resolve(
        side_b, side_a, chat, tool_list, b_kwargs or {}, add_generation_prompt, b_add_special_tokens, limits,
        b_renderer,
    )  # fmt: skip
    rep_a, rep_b = ra.report, rb.report
    verdict = _verdict(rep_a, rep_b)
    first_char = first_difference(rep_a.text, rep_b.text)
    decoded_only = verdict == "identical" and first_char is not None
    if decoded_only:
        # Equal ids: a text decoded from ids differs only by the decoder's spacing, which the model never sees.
        first_char = None
    first_token = first_difference(rep_a.token_ids, rep_b.token_ids)
    specials = _specials(ra.facts.tokenizer, rb.facts.tokenizer)
    window_a = window_b = None
    chunks: tuple[Chunk, ...] = ()
    if first_char is not None and rep_a.text is not None and rep_b.text is not None:
        window_a = render_window(rep_a.text, first_char, specials)
        window_b = render_window(rep_b.text, first_char, specials)
        chunks = text_chunks(rep_a.text, rep_b.text)
    alignment: tuple[AlignmentRow, ...] = ()
    if first_token is not None and rep_a.token_ids is not None and rep_b.token_ids is not None:
        alignment = align_tokens(
            rep_a.token_ids, rep_b.token_ids, _piece(ra.facts.tokenizer), _piece(rb.facts.tokenizer)
        )
    facts_a, facts_b = ra.facts, rb.facts
    if chunks:
        facts_a, facts_b = (_with_renderer_check(f, chat, tool_list, limits) for f in (facts_a, facts_b))
    pitfalls = recognise(PitfallContext(facts_a, facts_b, chat, chunks))
    notes: list[str] = []
    if decoded_only:
        notes.append("the texts differ but tokenize to the same ids (one text was decoded from ids)")
    if verdict != "identical" and not pitfalls:
        notes.append("no known pitfall explains this difference; read the windows and the alignment")
    return TokensDiff(
        verdict=verdict,
        first_diff_char=first_char,
        first_diff_token=first_token,
        a=rep_a,
        b=rep_b,
        window_a=window_a,
        window_b=window_b,
        alignment=alignment,
        pitfalls=pitfalls,
        notes=tuple(notes),
    )
