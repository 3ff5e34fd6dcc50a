"""Printing an engine request: the JSON body on stdout (pipeable), notes on stderr."""

from __future__ import annotations

import json
import sys

from precdiff.engines.request import EngineRequest


def print_engine_request(request: EngineRequest) -> None:
    """The body as JSON on stdout; the route and notes as ``#`` lines on stderr."""
    print(
        f"# POST {request.route} ({request.engine}, {len(request.token_ids)} prompt tokens)", file=sys.stderr
    )
    for note in request.notes:
        print(f"# {note}", file=sys.stderr)
    print(json.dumps(request.body, indent=1))
