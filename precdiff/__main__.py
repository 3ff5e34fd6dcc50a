"""``python -m precdiff`` runs the CLI."""

from precdiff.cli import main

main()
