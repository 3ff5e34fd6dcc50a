"""The machine-readable comparison report (schema: ``docs/compare-json.md``)."""

from __future__ import annotations

from typing import Any

from precdiff._version import __version__
from precdiff.compare.results import Comparison
from precdiff.store.summary import CaptureSummary

# Bump on any change a consumer could notice (renamed/removed field, changed meaning); adding a
# field is not a change.
SCHEMA_VERSION = 1


def comparison_to_json(comparison: Comparison) -> dict[str, Any]:
    """The JSON document of a comparison: ``schema_version``, ``precdiff_version``, then ``to_dict()``."""
    return {"schema_version": SCHEMA_VERSION, "precdiff_version": __version__, **comparison.to_dict()}


def summary_to_json(summary: CaptureSummary) -> dict[str, Any]:
    """The JSON document of ``precdiff inspect --json``."""
    return {"schema_version": SCHEMA_VERSION, "precdiff_version": __version__, **summary.to_dict()}
