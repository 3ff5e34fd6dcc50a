"""The package version (single source: pyproject reads nothing from here, keep both in step)."""

__version__ = "0.1.0"
