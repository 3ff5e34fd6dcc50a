"""Render a conversation through a chat template and tokenize it, exactly as ``apply_chat_template`` does.

transformers 5.x ``apply_chat_template(conversation, tokenize=True)``:

1. drops every message key whose value is ``None`` (OpenAI returns ``content: null`` with tool calls);
2. copies ``reasoning_content`` / ``thinking`` / ``reasoning`` onto each other (templates read one name);
3. renders with ``messages``, ``tools``, ``documents``, ``add_generation_prompt`` and
   ``{**tokenizer.special_tokens_map, **kwargs}`` (so ``bos_token`` & co. are template variables);
4. tokenizes the text with ``add_special_tokens=False`` (the template writes its own BOS).

:func:`render_conversation` does the same in precdiff's bounded sandbox (``sandbox.py``), and is what
``precdiff capture --messages`` and ``precdiff tokens`` both call, so their renders are comparable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from precdiff.config import parse_key_values
from precdiff.errors import InputError, PrecdiffError, TemplateError
from precdiff.templates.bounds import DEFAULT_LIMITS, flat_size
from precdiff.templates.renderers import TRANSFORMERS, JinjaSettings, resolve_renderer
from precdiff.templates.results import Rendering, TokenizerInfo
from precdiff.templates.sandbox import SandboxLimits, render_template, template_variables

__all__ = [
    "load_messages",
    "load_tools",
    "parse_template_kwargs",
    "render_conversation",
    "render_with_template",
    "resolve_template",
    "template_sha256",
    "tokenizer_info",
]

# Names a message's reasoning is passed under; transformers copies them onto each other.
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
#: Switches that change what a prompt ends with. A template that does not read one of them renders the
#: same either way: that is a finding about the template (``pitfalls.ignored_switch``), not a typo.
SWITCHES = ("add_generation_prompt", "enable_thinking", "thinking", "reasoning_effort")
# apply_chat_template's own parameters that reach the template as variables.
_NAMED = ("add_generation_prompt", "documents")


def _read_json(path: Path, what: str, flag: str) -> Any:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file not found: '{path}'; check the path given to {flag}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {what} file '{path}': {exc}; pass a UTF-8 JSON file to {flag}"
        ) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what} file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
            f"fix the file given to {flag}"
        ) from None


def _check_messages(messages: Any, where: str, error: type[PrecdiffError]) -> list[dict[str, Any]]:
    shape = 'a JSON list of objects like {"role": "user", "content": "Hello"}'
    if not isinstance(messages, list):
        raise error(f"{where} must be {shape}, got a JSON {type(messages).__name__}")
    if not messages:
        raise error(f"{where} is an empty list; give at least one message, as {shape}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise error(
                f"{where}: message {i} is a {type(message).__name__}, not an object; each must be {shape}"
            )
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise error(f"{where}: message {i} has no string 'role'; each message must be {shape}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise error(
                f"{where}: message {i} ({role}) has 'content' of type {type(content).__name__}; "
                "content must be a string, a list of content parts, or null"
            )
        if "content" not in message and not message.get("tool_calls"):
            raise error(f"{where}: message {i} ({role}) has neither 'content' nor 'tool_calls'")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise error(f"{where}: message {i} ({role}) has 'tool_calls' that is not a list")
    return messages


def load_messages(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate an OpenAI-style message list from a JSON file.

    The file holds either the list itself or a request body with a ``messages`` key.

    Raises:
        InputError: the file is missing, not JSON, or not a list of ``{"role": ..., "content": ...}``.

    Example:
        >>> load_messages("examples/03_chat_template_diff/chat.json")[0]["role"]
        'system'
    """
    path = Path(path)
    data = _read_json(path, "messages", "--messages")
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    return _check_messages(data, f"messages file '{path}'", InputError)


def load_tools(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON list of tool schemas (or a request body with a ``tools`` key).

    Raises:
        InputError: the file is missing, not JSON, or not a list of objects.
    """
    path = Path(path)
    data = _read_json(path, "tools", "--tools")
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise InputError(
            f"tools file '{path}' must be a JSON list of tool schemas like "
            '{"type": "function", "function": {"name": ..., "parameters": ...}}'
        )
    return data


def parse_template_kwargs(pairs: Sequence[str], flag: str = "--a-kwarg") -> dict[str, Any]:
    """Parse template-variable ``k=v`` pairs (see :func:`precdiff.config.parse_key_values`).

    Raises:
        InputError: a pair has no ``=`` or an empty key.
    """
    return parse_key_values(pairs, flag, "enable_thinking=false")


def template_sha256(source: str) -> str:
    """SHA-256 of a template's UTF-8 text: the identity stored in capture manifests."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def resolve_template(
    tokenizer: Any, chat_template: str | None = None, tools: Sequence[Any] | None = None
) -> str:
    """The template text to use, with transformers' rules for named templates (``default``, ``tool_use``).

    Raises:
        TemplateError: the tokenizer has no chat template and none was given.
    """
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):
        if chat_template is not None and chat_template in own:
            return str(own[chat_template])
        if chat_template is None:
            if tools is not None and "tool_use" in own:
                return str(own["tool_use"])
            if "default" in own:
                return str(own["default"])
            raise TemplateError(
                f"tokenizer has several chat templates and none is named 'default' (names: {sorted(own)}); "
                "pick one with DIR:template.jinja / chat_template="
            )
    if chat_template is not None:
        return chat_template
    if isinstance(own, str) and own:
        return own
    source = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    raise TemplateError(
        f"no chat template: '{source}' has no chat_template.jinja and no chat_template in its "
        "tokenizer_config.json; give one as DIR:template.jinja (CLI) / chat_template= (Python)"
    )


def _plain(value: Any) -> Any:
    # Like transformers' _plain_template_data: the template sees only plain JSON-like data, never an
    # object with methods the sandbox does not know about.
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return f"<{type(value).__name__}>"


def _normalise(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        plain = {k: v for k, v in _plain(message).items() if v is not None}
        reasoning = next((plain[k] for k in _REASONING_FIELDS if plain.get(k) is not None), None)
        if reasoning is not None:
            plain = {"thinking": reasoning, **plain, "reasoning_content": reasoning}
        out.append(plain)
    return out


def _special_tokens(tokenizer: Any) -> dict[str, Any]:
    mapping = getattr(tokenizer, "special_tokens_map", None) or {}
    return {k: v for k, v in dict(mapping).items() if isinstance(k, str)}


def render_with_template(
    tokenizer: Any,
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    template_kwargs: Mapping[str, Any] | None = None,
    add_special_tokens: bool = False,
    kwarg_flag: str = "template_kwargs=",
    limits: SandboxLimits | None = None,
    tokenize: bool = True,
    renderer: str | JinjaSettings = TRANSFORMERS,
) -> Rendering:
    """Render ``messages`` with the template text ``template`` and tokenize with ``tokenizer``.

    ``renderer`` is the Jinja environment: ``"transformers"`` (``apply_chat_template``'s) or
    ``"plain-jinja2"`` (a ``jinja2.Template(template)``; see ``renderers.py``).

    ``tokenizer`` gives the special-token variables (``bos_token``, ...) and the ids. It may be ``None``
    (no special-token variables, no ids); with ``tokenize=False`` the rendering has no ids either
    (``token_ids == []``).

    A kwarg named ``add_generation_prompt`` or ``documents`` overrides the keyword of that name, as in
    ``apply_chat_template``. A switch of :data:`SWITCHES` the template does not read is not an error: it is
    listed in ``Rendering.ignored_switches`` (``add_generation_prompt`` when it is true).

    Raises:
        InputError: the conversation is larger than ``limits.max_input_chars``, or an unknown renderer.
        TemplateError: bad messages, a kwarg the template does not read, or a failing template.
        TemplateSandboxError: the template broke a sandbox rule.
    """
    chat = _normalise(_check_messages(list(messages), "messages", TemplateError))
    kwargs = dict(template_kwargs or {})
    cap = (limits or DEFAULT_LIMITS).max_input_chars
    if flat_size([chat, tools, kwargs], cap) > cap:
        raise InputError(
            f"the conversation (messages, tools and template kwargs as JSON) is more than {cap:,} characters, "
            "precdiff's input limit; shorten it, or raise the limit (Python: "
            "limits=SandboxLimits(max_input_chars=...))"
        )
    settings = renderer if isinstance(renderer, JinjaSettings) else resolve_renderer(renderer)
    reads = template_variables(template, settings)
    unknown = sorted(k for k in kwargs if k not in reads and k not in SWITCHES and k not in _NAMED)
    if unknown:
        readable = ", ".join(sorted(reads)) or "none"
        raise TemplateError(
            f"the chat template does not read {', '.join(repr(k) for k in unknown)}; it reads: {readable}; "
            f"check the spelling of {kwarg_flag}"
        )
    # A user kwarg wins over precdiff's defaults, as a keyword argument of apply_chat_template does.
    gen_prompt = kwargs.pop("add_generation_prompt", add_generation_prompt)
    documents = kwargs.pop("documents", None)
    asked = {"add_generation_prompt": True} if gen_prompt else {}
    ignored = tuple(k for k in SWITCHES if (k in kwargs or k in asked) and k not in reads)
    context: dict[str, Any] = {**_special_tokens(tokenizer), **_plain(kwargs)}
    context.update(
        messages=chat,
        tools=None if tools is None else _plain(list(tools)),
        documents=None if documents is None else _plain(documents),
        add_generation_prompt=gen_prompt,
    )
    text = render_template(template, context, limits, settings)
    ids: list[int] = []
    if tokenizer is not None and tokenize:
        ids = [int(i) for i in tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]]
    return Rendering(
        text=text,
        token_ids=ids,
        template_sha256=template_sha256(template),
        add_special_tokens=add_special_tokens,
        add_generation_prompt=bool(gen_prompt),
        template_kwargs=dict(template_kwargs or {}),
        template_source=template,
        ignored_switches=ignored,
    )


def render_conversation(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    chat_template: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> Rendering:
    """Render and tokenize a conversation as ``tokenizer.apply_chat_template(..., tokenize=True)`` would.

    Args:
        tokenizer: a loaded ``transformers`` tokenizer.
        messages: OpenAI-style messages (``role``, ``content``, optional ``tool_calls``,
            ``reasoning_content``).
        tools: JSON tool schemas, or ``None``.
        add_generation_prompt: append the assistant header the model continues from.
        chat_template: template text (or the name of one of the tokenizer's templates); ``None`` = its own.
        template_kwargs: extra template variables, e.g. ``{"enable_thinking": False}``.

    Returns:
        A :class:`Rendering` with the text, ids (``add_special_tokens=False``) and the template's SHA-256.

    Raises:
        TemplateError: bad messages, no template, a kwarg the template does not read, a failing template.
        TemplateSandboxError: the template broke a sandbox rule.

    Example:
        >>> r = render_conversation(tok, [{"role": "user", "content": "Hi"}])
        >>> r.text.endswith("<|im_start|>assistant\\n")
        True
    """
    template = resolve_template(tokenizer, chat_template, tools)
    return render_with_template(
        tokenizer,
        template,
        messages,
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        template_kwargs=template_kwargs,
    )


def tokenizer_info(tokenizer: Any, source: str) -> TokenizerInfo:
    """Identity of a loaded tokenizer; ``sha256`` hashes its full ``tokenizer.json`` (or its vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        blob = backend.to_str()
    else:
        blob = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    bos, eos = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "eos_token", None)
    return TokenizerInfo(
        source=source,
        class_name=type(tokenizer).__name__,
        vocab_size=len(tokenizer),
        sha256=hashlib.sha256(blob.encode("utf-8")).hexdigest(),
        bos_token=bos if isinstance(bos, str) else None,
        bos_token_id=getattr(tokenizer, "bos_token_id", None),
        eos_token=eos if isinstance(eos, str) else None,
        eos_token_id=getattr(tokenizer, "eos_token_id", None),
    )
