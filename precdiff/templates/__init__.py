"""Chat-template rendering in a bounded sandbox, and token-level diffs of two renders (``precdiff tokens``).

Public API: :func:`render_conversation` (what ``capture --messages`` uses), :func:`diff_conversation`
(what ``precdiff tokens`` uses), :func:`load_messages`, and the frozen result types.
"""

from __future__ import annotations

from precdiff.templates.conversation import diff_conversation
from precdiff.templates.pitfalls import PITFALLS
from precdiff.templates.render import (
    load_messages,
    load_tools,
    parse_template_kwargs,
    render_conversation,
    template_sha256,
)
from precdiff.templates.results import (
    SCHEMA_VERSION,
    AlignmentRow,
    Pitfall,
    Rendering,
    RenderWindow,
    Segment,
    SideReport,
    TokenizerInfo,
    TokensDiff,
)
from precdiff.templates.sandbox import SandboxLimits

__all__ = [
    "PITFALLS",
    "SCHEMA_VERSION",
    "AlignmentRow",
    "Pitfall",
    "RenderWindow",
    "Rendering",
    "SandboxLimits",
    "Segment",
    "SideReport",
    "TokenizerInfo",
    "TokensDiff",
    "diff_conversation",
    "load_messages",
    "load_tools",
    "parse_template_kwargs",
    "render_conversation",
    "template_sha256",
]
