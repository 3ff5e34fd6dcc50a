"""``precdiff tokens``: diff how two tokenizers / chat templates render the same conversation."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, command, wrote

_SPEC_HELP = (
    "a tokenizer DIR (its own chat template), DIR:TEMPLATE.jinja, DIR:tokenizer_config, a MODEL.gguf "
    "(its embedded template and tokenizer), a rendered-text file, a token-id file (JSON list, /tokenize "
    "response, or whitespace/comma separated) or a precdiff capture RUN.h5"
)


@command("tokens")
def tokens(
    messages: Path = typer.Option(
        ..., "--messages", help='OpenAI-style messages JSON (a list, or {"messages": [...]}).'
    ),
    a: str = typer.Option(..., "--a", help=f"Side A: {_SPEC_HELP}."),
    b: str = typer.Option(..., "--b", help=f"Side B: {_SPEC_HELP}."),
    tools: Path | None = typer.Option(None, "--tools", help="Tool schemas JSON passed to template sides."),
    a_kwarg: list[str] = typer.Option(
        [], "--a-kwarg", help="Template variable for side A, KEY=VALUE (JSON value)."
    ),
    b_kwarg: list[str] = typer.Option(
        [], "--b-kwarg", help="Template variable for side B, KEY=VALUE (JSON value)."
    ),
    no_generation_prompt: bool = typer.Option(
        False, "--no-generation-prompt", help="Render template sides with add_generation_prompt=False."
    ),
    a_add_special_tokens: bool = typer.Option(
        False,
        "--a-add-special-tokens",
        help="Tokenize side A with add_special_tokens=True (what a completions endpoint does to a prompt).",
    ),
    b_add_special_tokens: bool = typer.Option(
        False, "--b-add-special-tokens", help="Tokenize side B with add_special_tokens=True."
    ),
    a_renderer: str | None = typer.Option(
        None,
        "--a-renderer",
        help="Jinja environment of a template side A: transformers (default, as apply_chat_template) or "
        "plain-jinja2 (as jinja2.Template(source): trim_blocks off, Jinja2's HTML-escaping tojson).",
    ),
    b_renderer: str | None = typer.Option(
        None, "--b-renderer", help="Jinja environment of a template side B (see --a-renderer)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the result as JSON (docs/tokens-json.md)."
    ),
    html_out: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML report (docs/html-report.md)."
    ),
) -> int:
    """Diff two renders of one conversation at token level and name the pitfall.

    Exit 0 identical, 1 different, 2 usage or input error.
    """
    from precdiff.report import tokens as report
    from precdiff.report.html import write_html
    from precdiff.report.output import check_output_path
    from precdiff.templates import diff_conversation, parse_template_kwargs

    # Side specs may be DIR:TEMPLATE.jinja; every existing path among them is an input.
    inputs = [messages, tools, *(p for spec in (a, b) for p in (spec, *spec.split(":")) if Path(p).exists())]
    for path, flag in ((json_out, "--json"), (html_out, "--html")):
        if path is not None:
            check_output_path(path, inputs=inputs, flag=flag)
    result = diff_conversation(
        messages,
        a,
        b,
        tools=tools,
        a_kwargs=parse_template_kwargs(a_kwarg, "--a-kwarg"),
        b_kwargs=parse_template_kwargs(b_kwarg, "--b-kwarg"),
        add_generation_prompt=not no_generation_prompt,
        a_add_special_tokens=a_add_special_tokens or None,
        b_add_special_tokens=b_add_special_tokens or None,
        a_renderer=a_renderer,
        b_renderer=b_renderer,
    )
    report.print_result(result)
    if json_out is not None:
        wrote(report.write_json(result, json_out))
    if html_out is not None:
        wrote(write_html(result.to_dict(), html_out, inputs=inputs))
    return EXIT_OK if result.identical else EXIT_DIVERGED
