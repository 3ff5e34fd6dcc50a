"""``precdiff engine-request MODEL --messages chat.json --engine vllm``: a comparable request body."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_OK, command


@command("engine-request")
def engine_request_command(
    model: str = typer.Argument(
        ..., help="Model or tokenizer directory, or a GGUF file (its chat template renders the messages)."
    ),
    messages: Path = typer.Option(..., "--messages", help="OpenAI-style message list (JSON)."),
    engine: str = typer.Option(..., "--engine", help="vllm, sglang, llamacpp or openai."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="Tokens to generate (default 16)."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="Candidates per position (default 5)."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed (default 0)."),
    served_name: str | None = typer.Option(
        None, "--served-name", help="The server's model name (OpenAI-style)."
    ),
) -> int:
    """Print the request body (greedy, seed, logprobs, precdiff's token ids) that makes an engine's
    answer comparable with `precdiff compare`; save the answer as JSON and pass it to compare."""
    from precdiff.engines import engine_request
    from precdiff.report.engines import print_engine_request

    request = engine_request(
        model,
        messages=str(messages),
        engine=engine,
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        seed=seed,
        served_name=served_name,
    )
    print_engine_request(request)
    return EXIT_OK
